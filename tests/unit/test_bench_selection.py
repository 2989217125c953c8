"""How the bench picks its servers from the environment (no server is started here)."""

from __future__ import annotations

import pytest

from testbench import selection
from testbench.polling import wait_for


def test_a_given_redis_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "docker_engine_answers", lambda: True)
    env = {selection.REDIS_URL: "redis://gears:6379", selection.GEARS_CHOICE: "standin"}
    assert selection.gears_kind(env) == "real"


@pytest.mark.parametrize(("docker", "kind"), [(True, "testcontainers"), (False, "standin")])
def test_auto_uses_docker_only_when_an_engine_answers(
    monkeypatch: pytest.MonkeyPatch, docker: bool, kind: str
) -> None:
    monkeypatch.setattr(selection, "docker_engine_answers", lambda: docker)
    assert selection.gears_kind({}) == kind
    assert selection.gears_kind({selection.GEARS_CHOICE: "standin"}) == "standin"


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="WBLOAD_TEST_GEARS"):
        selection.gears_kind({selection.GEARS_CHOICE: "docker"})


@pytest.mark.parametrize(
    ("gears", "env", "source"),
    [
        ("standin", {selection.MONGO_URL: "mongodb://m:27017"}, "external"),
        ("testcontainers", {selection.MONGO_URL: "mongodb://m:27017"}, "external"),
        ("testcontainers", {}, "testcontainers"),
        ("real", {}, "local"),
        ("standin", {}, "local"),
    ],
)
def test_mongo_follows_the_url_then_where_redis_runs(
    gears: str, env: dict[str, str], source: str
) -> None:
    assert selection.mongo_source(gears, env) == source


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("mongodb://user:p@ss@h:27017/db", "mongodb://user:***@h:27017/db"),
        ("redis://h:6379", "redis://h:6379"),
        ("mongodb://user@h", "mongodb://user@h"),
    ],
)
def test_printed_urls_hide_passwords(url: str, shown: str) -> None:
    assert selection.redact(url) == shown


def test_wait_for_returns_the_first_truthy_value_or_names_what_it_waited_for() -> None:
    values = iter([None, 0, "done"])
    assert wait_for(lambda: next(values), 5, "x", interval=0) == "done"
    with pytest.raises(AssertionError, match="waited 0s for the thing"):
        wait_for(lambda: None, 0, "the thing", interval=0)
