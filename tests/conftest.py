"""Test bench fixtures: RedisGears, MongoDB and plain Redis for the run (see tests/README.md)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from pymongo.database import Database

from testbench import describe, gears_ops, selection
from testbench.cluster import GearsCluster
from testbench.deployment import TOPOLOGIES, Deployment
from testbench.restart import RestartableGears, appendonly, restart_command, run_restart_command
from testbench.servers import ServerProcess
from testbench.session import Bench
from testbench.targets import GearsTarget, MongoTarget

BENCH_KEY = pytest.StashKey[Bench]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[BENCH_KEY] = Bench()


def pytest_unconfigure(config: pytest.Config) -> None:
    bench = config.stash.get(BENCH_KEY, None)
    if bench is not None:
        bench.close()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """Start the bench up front and say which servers (and versions) this run uses."""
    if config.option.collectonly or "not e2e" in (config.option.markexpr or ""):
        return None
    bench = config.stash[BENCH_KEY]
    lines = [f"bench logs: {bench.root}"]
    for label, start, versions in (
        ("gears", lambda: bench.gears, lambda t: describe.redis_versions(t.url)),
        ("mongo", lambda: bench.mongo, describe.mongo_version),
    ):
        try:
            target = start()
        except Exception as exc:
            lines.append(f"bench {label}: FAILED TO START: {exc}")
            continue
        try:
            detail = versions(target)
        except Exception as exc:
            detail = f"version unknown ({exc})"
        lines.append(f"bench {label}: {target.kind}: {target.description}; {detail}")
    return lines


def _uses_bench(item: pytest.Item) -> bool:
    """Marked e2e, or got a bench server from a fixture (whatever the fixture is called)."""
    if item.get_closest_marker("e2e") is not None:
        return True
    values = getattr(item, "funcargs", {}).values()
    return any(isinstance(v, (Bench, GearsTarget, GearsCluster, Deployment, MongoTarget,
                              ServerProcess)) for v in values)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The cluster starts lazily, after the header: say here which one the run used."""
    bench = config.stash.get(BENCH_KEY, None)
    if bench is not None and bench.started("gears cluster"):
        cluster = bench.gears_cluster
        terminalreporter.write_line(f"bench gears cluster: {cluster.kind}: {cluster.description}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failing e2e test, append the tail of every server log to the report."""
    report = yield
    if report.failed and _uses_bench(item):
        bench = item.config.stash[BENCH_KEY]
        for name, text in bench.log_tails():
            report.sections.append((f"bench log: {name} (last lines; all in {bench.root})", text))
    return report


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> Bench:
    return pytestconfig.stash[BENCH_KEY]


@pytest.fixture(scope="session")
def gears(bench: Bench) -> GearsTarget:
    """Redis + RedisGears 1.2 + RedisJSON: `.url`, `.kind`, `.description`, `.client()`."""
    return bench.gears


@pytest.fixture(scope="session")
def gears_cluster(bench: Bench) -> GearsCluster:
    """A 3-master RedisGears cluster (started on first use): `.url`, `.nodes`, `.kind`,
    `.description`, `.client()` (RedisCluster), `.node_client(i)`, `.restart_node(i)`."""
    return bench.gears_cluster


@pytest.fixture(scope="session")
def mongo(bench: Bench) -> MongoTarget:
    """MongoDB-wire: `.url`, `.url_from_redis`, `.kind`; `.stop()`/`.start()` if `.can_restart`."""
    return bench.mongo


@pytest.fixture(scope="session")
def plain_redis(bench: Bench) -> ServerProcess:
    """Redis + RedisJSON without Gears (`.url`), shared by the session."""
    return bench.plain_redis


@pytest.fixture(scope="session")
def redis_factory(bench: Bench) -> Callable[..., ServerProcess]:
    """`redis_factory(name, appendonly=True, workdir=None, json=True)`: extra restartable Redis
    with RedisJSON (`json=False`: without)."""
    return bench.redis


@pytest.fixture
def gears_clean(gears: GearsTarget) -> Iterator[redis.Redis]:
    """A client (str replies, RESP2) of the gears Redis, emptied of registrations and keys."""
    client = gears.client()
    gears_ops.reset(client)
    yield client
    gears_ops.reset(client)  # no recipe of this test keeps retrying behind later tests
    client.close()


@pytest.fixture(params=TOPOLOGIES, ids=TOPOLOGIES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The test once on one node and once on the cluster (`.topology`, `.url`, `.client()`,
    `.primary_clients()`), reset before and after like gears_clean."""
    bench: Bench = request.getfixturevalue("bench")
    target = bench.gears if request.param == "node" else bench.gears_cluster
    deployment = Deployment(request.param, target)
    deployment.reset()
    yield deployment
    deployment.reset()


@pytest.fixture
def mongo_db(mongo: MongoTarget) -> Iterator[Database[dict[str, Any]]]:
    """A fresh, uniquely named database (`.name`), dropped after the test."""
    mongo.ensure_running()
    client = mongo.client()
    db = client[f"wbtest_{uuid.uuid4().hex[:12]}"]
    yield db
    client.close()
    mongo.ensure_running()
    with mongo.client() as fresh:  # a restarted container may have moved to another port
        fresh.drop_database(db.name)


@pytest.fixture
def restartable_gears(bench: Bench, redis_factory: Callable[..., ServerProcess]
                      ) -> Iterator[RestartableGears]:
    """A RedisGears with AOF that `.restart()` restarts, keeping its data: the stand-in in
    front of a Redis of its own, or the WBLOAD_TEST_REDIS_URL server restarted by
    WBLOAD_TEST_RESTART_CMD (emptied of registrations and keys before and after)."""
    kind = bench.gears_kind
    if kind == "testcontainers":
        pytest.skip("environment: RedisGears in a testcontainers container; the bench cannot "
                    "restart it with appendonly yes")
    if kind == "real":
        url = bench.gears.url
        command = restart_command(url, bench.env)
        if command is None:
            pytest.skip(f"environment: RedisGears given by {selection.REDIS_URL} and no "
                        f"{selection.RESTART_CMD}; the bench cannot restart it")
        if not appendonly(url):
            pytest.skip(f"environment: the RedisGears at {selection.REDIS_URL} has appendonly "
                        "no; a restart would not keep its keys")
        client = bench.gears.client()
        gears_ops.reset(client)

        def close() -> None:
            gears_ops.reset(client)
            client.close()

        target = RestartableGears(url, lambda: run_restart_command(command), kind, close)
    else:
        standin = bench.standin(redis_factory(f"aof-{uuid.uuid4().hex[:8]}", appendonly=True))

        def stop() -> None:
            standin.stop()
            standin.upstream.stop()

        target = RestartableGears(standin.url, standin.restart, kind, stop)
    yield target
    target.close()
