"""`wbload monitor` scraped over HTTP while Mongo is down and back, on one node and on the
cluster: the backlog and the oldest change's age rise, then fall to 0; dead letters are
counted; each shard has its own series and they add up to `wbload status --json`'s totals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbench import selection
from testbench.movies import deploy, status
from testbench.polling import wait_for

pytestmark = pytest.mark.e2e

NAME = "MoviesWriteBehind"
WBLOAD = str(Path(sys.executable).with_name("wbload"))
KEYS = 60  # spread over every shard of the cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scraper:
    """A `wbload monitor` process and its /metrics."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {**os.environ, "REDIS_URL": redis_url}
        self.process = subprocess.Popen(
            [WBLOAD, "monitor", "--port", str(self.port), "--interval", "0.5"],
            env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))

    def samples(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                found.setdefault(s.name, []).append((s.labels, s.value))
        return found

    def series(self, metric: str, name: str | None = NAME) -> dict[str, float]:
        """shard -> value of `metric` for write-behind `name` (None: a metric without one)."""
        return {labels["shard"]: value for labels, value in self.samples().get(metric, [])
                if labels.get("name") == name}

    def answering(self) -> bool:
        try:
            return bool(self.samples().get("wbload_redis_up"))
        except OSError:
            return False

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)


@pytest.fixture
def monitor(deployment, tmp_path: Path) -> Iterator[Scraper]:
    scraper = Scraper(deployment.url, tmp_path / "monitor.log")
    try:
        wait_for(scraper.answering, 30, "wbload monitor to serve /metrics")
        yield scraper
    finally:
        if scraper.process.poll() is None:
            scraper.stop()


def test_exporter_follows_a_backlog_while_mongo_is_down_and_its_drain(
        deployment, mongo, mongo_db, monitor) -> None:
    if not mongo.can_restart:
        pytest.skip(f"environment: MongoDB given by {selection.MONGO_URL} "
                    f"({mongo.description}); the bench cannot stop and start it")
    deployed = deploy(deployment.url, mongo.url_from_redis, mongo_db,
                      "--param", "RETRY_INTERVAL_S=1")
    assert deployed.exit_code == 0, deployed.output
    client = deployment.client()
    shards = {shard["shard"] for wb in status(deployment.url)["write_behinds"]
              for shard in wb["shards"]}
    assert len(shards) == (3 if deployment.is_cluster else 1)
    wait_for(lambda: set(monitor.series("wbload_changes_waiting")) == shards, 30,
             "one wbload_changes_waiting series per shard")
    assert set(monitor.series("wbload_redis_up", name=None)) == shards

    mongo.stop()
    try:
        for i in range(KEYS):
            client.execute_command("JSON.SET", f"MovieEntity:m{i}", "$",
                                   json.dumps({"title": f"movie {i}"}))
        wait_for(lambda: sum(monitor.series("wbload_changes_waiting").values()) == KEYS, 30,
                 f"wbload_changes_waiting to add up to {KEYS}")
        wait_for(lambda: max(monitor.series("wbload_oldest_change_age_seconds").values()) >= 2,
                 30, "the oldest waiting change to be 2 s old")
        first = monitor.series("wbload_oldest_change_age_seconds")
        wait_for(lambda: all(monitor.series("wbload_oldest_change_age_seconds")[s] > age
                             for s, age in first.items() if age > 0), 30,
                 "the oldest change's age to keep rising while Mongo is down")
        waiting = monitor.series("wbload_changes_waiting")
        report = status(deployment.url)
        (wb,) = [w for w in report["write_behinds"] if w["name"] == NAME]
        assert sum(waiting.values()) == wb["backlog"] == KEYS
        assert waiting == {s["shard"]: s["backlog"] for s in wb["shards"]}
        if deployment.is_cluster:
            assert sum(1 for v in waiting.values() if v) >= 2, waiting  # keys on several shards
        assert wb["oldest_age_s"] >= 2
        assert set(monitor.series("wbload_bytes_waiting")) == shards
        up = {labels["shard"]: v for labels, v in monitor.samples()["wbload_redis_up"]}
        assert up == dict.fromkeys(shards, 1.0)
    finally:
        mongo.start()

    def drained() -> bool:
        return (set(monitor.series("wbload_changes_waiting").values()) == {0.0}
                and set(monitor.series("wbload_oldest_change_age_seconds").values()) == {0.0})

    wait_for(drained, 90, "waiting changes and the oldest change's age to fall to 0")
    with mongo.client() as mongo_client:
        assert mongo_client[mongo_db.name].movies.count_documents({}) == KEYS
    triggered = [v for labels, v in monitor.samples()["wbload_reader_triggered_total"]
                 if labels["name"] == NAME and labels["reader"] == "KeysReader"]
    assert sum(triggered) >= KEYS

    # Dead letters: documents Mongo rejects for good (above int64), counted on their shard.
    for i in range(3):
        client.execute_command("JSON.SET", f"MovieEntity:bad{i}", "$",
                               json.dumps({"views": 2**63}))
    wait_for(lambda: sum(monitor.series("wbload_dead_letters").values()) == 3, 60,
             "wbload_dead_letters to count 3")
    (wb,) = [w for w in status(deployment.url)["write_behinds"] if w["name"] == NAME]
    assert monitor.series("wbload_dead_letters") == {s["shard"]: s["dead_letters"]
                                                      for s in wb["shards"]}
    assert wb["dead_letters"] == 3
    assert monitor.stop() == 0  # SIGTERM ends it cleanly


def test_exporter_survives_a_redis_that_does_not_answer(tmp_path: Path) -> None:
    """A Redis that does not answer is a metric and a log line (no password), not a crash."""
    port = free_port()  # nothing listens there
    scraper = Scraper(f"redis://op:s3cret@127.0.0.1:{port}", tmp_path / "monitor.log")
    try:
        wait_for(scraper.answering, 30, "wbload monitor to serve /metrics")
        wait_for(lambda: scraper.series("wbload_scrape_errors_total", name=None).get(
            f"127.0.0.1:{port}", 0) >= 2, 30, "two failed collections to be counted")
        up = scraper.samples()["wbload_redis_up"]
        assert up == [({"shard": f"127.0.0.1:{port}"}, 0.0)]
        assert scraper.process.poll() is None
    finally:
        assert scraper.stop() == 0
    log = scraper.log.read_text()
    assert "collecting from redis://op:****@127.0.0.1" in log and "s3cret" not in log
