"""Operator connection options become the right redis-py client, and secrets stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from wbload.connection import RedisTarget
from wbload.errors import UsageError
from wbload.redact import mask_url, redact


def test_url_user_password_and_db_reach_the_client() -> None:
    client = RedisTarget("redis://ops:s3cret@cache.example:6380/3").client()
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("ops", "s3cret")
    assert kwargs["retry"]._retries == 0  # a resent RG.PYEXECUTE would run the recipe twice


def test_tls_files_reach_the_client(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    client = RedisTarget("rediss://cache.example:6380", str(ca), str(cert), str(key)).client()
    pool = client.connection_pool
    assert pool.connection_class.__name__ == "SSLConnection"
    kwargs = pool.connection_kwargs
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        str(ca), str(cert), str(key))


@pytest.mark.parametrize("url", ["http://u:pw@h:1", "mongodb://h", "localhost:6379"])
def test_unknown_schemes_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(UsageError) as error:
        RedisTarget(url)
    assert "pw" not in str(error.value) and "redis://" in str(error.value)


def test_display_and_redaction_hide_passwords() -> None:
    target = RedisTarget("redis://:p%40ss@h:1")
    assert target.display == "redis://:****@h:1"
    assert mask_url("mongodb://user:pw@h/db?x=1") == "mongodb://user:****@h/db?x=1"
    assert mask_url("mongodb://h/db") == "mongodb://h/db"
    assert redact("auth failed for redis://:pw@h", ["pw", None, ""]) == "auth failed for redis://:****@h"
    assert redact("auth failed for pw at h", ["pw"]) == "auth failed for pw at h"  # not a URL
