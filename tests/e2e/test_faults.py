"""Faults while the application keeps writing: Mongo down, Mongo slow, Redis restarted, the
loader killed mid-deploy. Every test ends the same way: for every key written, Mongo holds
exactly Redis's final document (or nothing, if deleted), and `wbload status --json` shows the
backlog back at 0.

Skips are for environments only: a MongoDB given by URL cannot be stopped by the bench; a
Redis on another host (or in a container) cannot reach a proxy on this machine's loopback; a
RedisGears in a container, or given by URL without WBLOAD_TEST_RESTART_CMD, cannot be
restarted by the bench.

The version bump under writes is tests/e2e/test_upgrade.py; a write made at the very moment of
a bump is `test_no_write_is_lost_at_a_version_bump` below (a known failure, see its reason).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from pymongo.database import Database

from testbench import gears_ops, selection
from testbench.delay_proxy import DelayProxy, mongo_host_port, proxied_mongo_url
from testbench.movies import MOVIES, backlog, deploy, status, wait_drained, wait_mirrored
from testbench.polling import wait_for
from testbench.targets import GearsTarget, MongoTarget, redis_client
from testbench.writer import Writer, redis_documents

pytestmark = pytest.mark.e2e

NAME = "MoviesWriteBehind"
QUICK_RETRY = ("--param", "RETRY_INTERVAL_S=1")
WBLOAD = str(Path(sys.executable).with_name("wbload"))


@pytest.fixture
def writers() -> Iterator[Callable[[str], Writer]]:
    """Start Writers; any still running when the test ends is stopped (never left writing)."""
    started: list[Writer] = []

    def start(url: str) -> Writer:
        writer = Writer(url)
        writer.start()
        started.append(writer)
        return writer

    yield start
    for writer in started:
        writer.stop_event.set()
        writer.join(30)


def first_writes_arrive(db: Database[Any]) -> None:
    wait_for(lambda: db.movies.count_documents({}) > 0, 30, "the first writes to reach Mongo")


def finish_and_check(writer: Writer, client: redis.Redis, db: Database[Any],
                     gears_url: str) -> dict[str, dict[str, Any] | None]:
    """Stop writing; Redis holds what the writer wrote, Mongo mirrors it, nothing is left."""
    final = writer.finish()
    assert writer.writes > 200, f"only {writer.writes} writes"
    assert redis_documents(client, list(final)) == final, "Redis lost writes"
    wait_mirrored(db, final)
    wait_drained(gears_url)
    return final


def redis_reaches_this_host(gears: GearsTarget) -> None:
    """Skip unless Redis runs on this machine (it must reach a proxy on our loopback)."""
    if gears.kind == "standin":
        return
    host = urlsplit(gears.url).hostname or ""
    if gears.kind == "real" and host in ("127.0.0.1", "localhost", "::1"):
        return
    where = (f"{selection.REDIS_URL} names {host}, another host"
             if gears.kind == "real" else "RedisGears runs in a testcontainers container")
    pytest.skip(f"environment: {where}; Redis cannot reach a proxy on this machine's loopback")


def proxied(mongo: MongoTarget) -> tuple[str, int]:
    try:
        return mongo_host_port(mongo.url)
    except ValueError as e:
        pytest.skip(f"environment: {selection.MONGO_URL}: {e}")


# --- Mongo stopped -------------------------------------------------------------------------
def test_mongo_stopped_then_started(deployment, mongo, mongo_db, writers) -> None:
    if not mongo.can_restart:
        pytest.skip(f"environment: MongoDB given by {selection.MONGO_URL} "
                    f"({mongo.description}); the bench cannot stop and start it")
    gears = deployment
    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY)
    assert deployed.exit_code == 0, deployed.output
    writer = writers(gears.url)
    first_writes_arrive(mongo_db)
    mongo.stop()
    try:
        time.sleep(4)
        report = status(gears.url)
    finally:
        mongo.start()
    (wb,) = [w for w in report["write_behinds"] if w["name"] == NAME]
    waiting = wb["backlog"]
    assert waiting >= 100, f"only {waiting} change(s) waited while Mongo was down"
    # The totals are over every shard, and every shard had changes waiting.
    assert waiting == sum(shard["backlog"] for shard in wb["shards"])
    assert all(shard["backlog"] for shard in wb["shards"]), wb["shards"]
    time.sleep(1)
    # A container may come back on another port: look at Mongo with a new client.
    client = deployment.client()
    with mongo.client() as mongo_client:
        finish_and_check(writer, client, mongo_client[mongo_db.name], gears.url)
    client.close()
    (wb,) = [w for w in status(gears.url)["write_behinds"] if w["name"] == NAME]
    reader = next(r for r in wb["readers"] if r["reader"] == "StreamReader")
    assert reader["failures"] > 0, "the StreamReader never saw Mongo down"


# --- Mongo slow ----------------------------------------------------------------------------
def test_slow_mongo_backlog_grows_then_drains(gears, mongo, mongo_db, gears_clean,
                                              writers) -> None:
    redis_reaches_this_host(gears)
    with DelayProxy(*proxied(mongo)) as proxy:
        deployed = deploy(gears.url, proxied_mongo_url(mongo.url, proxy.port), mongo_db,
                          *QUICK_RETRY, "--param", "BATCH_SIZE=20")
        assert deployed.exit_code == 0, deployed.output
        writer = writers(gears.url)
        first_writes_arrive(mongo_db)
        proxy.delay = 0.3
        samples = []
        for _ in range(6):
            time.sleep(0.5)
            samples.append(backlog(gears.url))
        assert samples[-1] >= 100 and samples[-1] > samples[0], \
            f"the backlog did not grow while Mongo was slow: {samples}"
        proxy.delay = 0
        peak = samples[-1]
        wait_for(lambda: backlog(gears.url) < peak / 4, 30,
                 "the backlog to drain while the writes go on")
        finish_and_check(writer, gears_clean, mongo_db, gears.url)
        assert proxy.connections > 0


# --- Redis restarted ---------------------------------------------------------------------
def registered(client: redis.Redis) -> list[tuple[str, str, str]]:
    return sorted((r["id"], r["name"] or "", r["desc"] or "")
                  for r in gears_ops.registrations(client))


def test_redis_restart_keeps_registrations_and_backlog(restartable_gears, mongo, mongo_db,
                                                       writers) -> None:
    gears = restartable_gears
    redis_reaches_this_host(GearsTarget(gears.url, gears.kind, ""))
    restart_while_entries_wait(gears.url, gears.restart, mongo, mongo_db, writers)


def restart_while_entries_wait(url: str, restart: Callable[[], None], mongo: MongoTarget,
                               db: Database[Any], writers: Callable[[str], Writer]) -> None:
    """Mongo unreachable (a proxy that refuses), changes wait in the stream, Redis restarts:
    the same registrations, the same entries waiting; Mongo back: everything arrives."""
    client = redis_client(url, socket_timeout=30)
    with DelayProxy(*proxied(mongo)) as proxy:
        deployed = deploy(url, proxied_mongo_url(mongo.url, proxy.port), db, *QUICK_RETRY)
        assert deployed.exit_code == 0, deployed.output
        writer = writers(url)
        first_writes_arrive(db)
        proxy.down()
        time.sleep(1.5)
        with writer.paused():
            before = registered(client)
            waiting = backlog(url)
            assert waiting > 0
            restart()
            client.connection_pool.disconnect()
            assert registered(client) == before
            assert backlog(url) == waiting
            assert redis_documents(client, list(writer.final)) == writer.final
        time.sleep(0.5)
        proxy.up()
        time.sleep(1)
        finish_and_check(writer, client, db, url)
    client.close()


# --- the loader killed mid-deploy ----------------------------------------------------------
def start_deploy(gears: GearsTarget, mongo_url: str, db: Database[Any],
                 version: str) -> subprocess.Popen[str]:
    """`wbload deploy` as a separate process, as an operator (or CI job) runs it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "MONGODB_URL") and not k.startswith("WBLOAD_PARAM_")}
    env["PYTHONUNBUFFERED"] = "1"
    argv = [WBLOAD, "deploy", MOVIES, "--redis-url", gears.url, "--mongo-url", mongo_url,
            "--param", f"MONGO_DATABASE={db.name}", "--param", "BATCH_DURATION_MS=50",
            *QUICK_RETRY, "--param", f"VERSION={version}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def wait_for_line(proc: subprocess.Popen[str], ending: str, timeout: float) -> list[str]:
    """Read proc's output until a line ends with `ending` (or it exits, or `timeout`)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.rstrip().endswith(ending):
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    found.wait(timeout)
    return lines


def current_version(client: redis.Redis) -> str | None:
    """The version of the complete KeysReader + StreamReader pair registered, if any."""
    versions = {}
    for r in gears_ops.registrations(client):
        if r["name"] in (f"{NAME}.KeysReader", f"{NAME}.StreamReader"):
            versions.setdefault(r["name"], set()).add(json.loads(r["desc"])["version"])
    keys = versions.get(f"{NAME}.KeysReader", set())
    streams = versions.get(f"{NAME}.StreamReader", set())
    if len(keys) != 1:
        return None
    (version,) = keys
    return version if version in streams else None


def test_loader_killed_mid_deploy(gears, mongo, mongo_db, gears_clean, writers) -> None:
    client = gears_clean
    started = time.monotonic()
    first = start_deploy(gears, mongo.url_from_redis, mongo_db, "1.0.0")
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    whole = time.monotonic() - started  # how long a deploy takes here, process start included
    writer = writers(gears.url)
    first_writes_arrive(mongo_db)
    rng = random.Random(5)
    previous = "1.0.0"
    for bump in range(1, 7):
        version = f"1.{bump}.0"
        # The writer keeps writing: no write may fall between two versions.
        proc = start_deploy(gears, mongo.url_from_redis, mongo_db, version)
        try:
            if bump % 2:  # "... upgrade (...) ..." is printed just before RG.PYEXECUTE
                lines = wait_for_line(proc, "...", 30)
                time.sleep(rng.uniform(0, 0.03))
            else:  # anywhere: starting, connecting, planning, pushing, draining
                lines = []
                time.sleep(rng.uniform(0, whole))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        # Whatever the kill interrupted, one complete version is registered...
        now = wait_for(lambda: current_version(client), 10,
                       f"a complete registration after killing the deploy of {version} "
                       f"(its output: {lines})")
        assert now in (previous, version), now
        # ...and syncing, under the writer's traffic.
        probe = f"probe{bump}"
        client.execute_command("JSON.SET", f"MovieEntity:{probe}", "$", '{"alive": true}')
        wait_mirrored(mongo_db, {probe: {"alive": True, "movieId": probe}})
        client.delete(f"MovieEntity:{probe}")
        rerun = deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY,
                       "--param", f"VERSION={version}")  # a rerun completes
        assert rerun.exit_code == 0, rerun.output
        assert current_version(client) == version
        previous = version
        time.sleep(0.3)
    finish_and_check(writer, client, mongo_db, gears.url)
    wait_mirrored(mongo_db, {f"probe{b}": None for b in range(1, 7)})


# --- a write at the moment of a version bump ------------------------------------------------
class UniqueWriter(threading.Thread):
    """JSON.SETs a new key (MovieEntity:u<i>) every couple of milliseconds, each key once."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis_client(url, socket_timeout=30)
        self.stop_event = threading.Event()
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.client.execute_command("JSON.SET", f"MovieEntity:u{self.written}", "$",
                                            json.dumps({"i": self.written}))
                self.written += 1
                time.sleep(0.002)
        except BaseException as e:  # surfaced by finish()
            self.error = e

    def finish(self) -> int:
        self.stop_event.set()
        self.join(30)
        assert self.error is None, self.error
        self.client.close()
        return self.written


def test_no_write_is_lost_at_a_version_bump(gears, mongo, mongo_db, gears_clean) -> None:
    first = deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY)
    assert first.exit_code == 0, first.output
    writer = UniqueWriter(gears.url)
    writer.start()
    try:
        for bump in range(1, 7):
            time.sleep(0.2)
            bumped = deploy(gears.url, mongo.url_from_redis, mongo_db, *QUICK_RETRY,
                            "--param", f"VERSION=1.{bump}.0")
            assert bumped.exit_code == 0, bumped.output
        time.sleep(0.2)
    finally:
        written = writer.finish()
    wait_drained(gears.url)
    assert all(wb["dead_letters"] == 0 for wb in status(gears.url)["write_behinds"])
    found = {d["movieId"] for d in mongo_db.movies.find({}, {"movieId": 1})}
    lost = sorted(i for i in range(written) if f"u{i}" not in found)
    assert not lost, (f"{len(lost)} of {written} writes never reached Mongo, nor a stream, "
                      f"nor the dead letters: u{lost[:20]}")
