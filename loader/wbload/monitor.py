"""`wbload monitor`: a Prometheus exporter of every write-behind's health, per shard.

A thread collects `collect_status` every interval and keeps the result; a scrape returns
that copy, so any number of scrapers cost Redis nothing more. A failed collection keeps the
exporter alive: `wbload_redis_up` drops to 0, `wbload_scrape_errors_total` counts it, and one
log line (no password) says why. On a cluster a shard that does not answer is left out of
the collection and the others are still exported (as far as they serve: with
`cluster-require-full-coverage yes`, Redis' default, they refuse keyed commands with
CLUSTERDOWN once the cluster marks the shard failed, and the collection fails as a whole);
the topology is read again at the next collection, from the named node or, if that is the
one down, kept as it was.

Gears' triggered/success/failed/aborted are exposed as counters: they only grow while a
registration lives and restart from 0 when Redis restarts, which is a counter reset that
Prometheus' `rate()`/`increase()` handle. Everything else can go down, so it is a gauge.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .connection import RedisTarget
from .errors import RedisUnreachable
from .redact import redact
from .status import ReaderStatus, StatusReport, collect_status
from .topology import Deployment, open_deployment, target_address

log = logging.getLogger("wbload.monitor")

WB_LABELS = ["name", "version", "shard"]
READER_LABELS = ["name", "version", "shard", "reader"]
COUNTERS = (("triggered", "runs Gears started"), ("success", "runs that succeeded"),
            ("failures", "runs that failed"), ("aborted", "runs Gears aborted"))


@dataclass
class Snapshot:
    """What one collection found: a report, or which shards could not be read."""

    report: StatusReport | None
    up: dict[str, bool]
    errors: dict[str, int] = field(default_factory=dict)  # shard -> failed collections so far
    seconds: float = 0.0
    at: float = 0.0


def families(snapshot: Snapshot) -> list[Metric]:
    """The Prometheus metric families of one snapshot."""
    up = GaugeMetricFamily("wbload_redis_up", "1 when the shard answered the last collection",
                           labels=["shard"])
    for shard, ok in sorted(snapshot.up.items()):
        up.add_metric([shard], 1.0 if ok else 0.0)
    errors = CounterMetricFamily("wbload_scrape_errors", "Collections that failed, per shard",
                                 labels=["shard"])
    for shard in sorted(snapshot.up):
        errors.add_metric([shard], float(snapshot.errors.get(shard, 0)))
    took = GaugeMetricFamily("wbload_collect_duration_seconds",
                             "How long the last collection took")
    took.add_metric([], snapshot.seconds)
    at = GaugeMetricFamily("wbload_last_collect_timestamp_seconds",
                           "When the last collection ended (Unix time)")
    at.add_metric([], snapshot.at)
    result: list[Metric] = [up, errors, took, at]
    if snapshot.report is not None:
        result.extend(_write_behind_families(snapshot.report))
    return result


def _write_behind_families(report: StatusReport) -> Iterator[Metric]:
    waiting = GaugeMetricFamily("wbload_changes_waiting",
                                "Changes queued in the shard's stream, not yet in Mongo",
                                labels=WB_LABELS)
    size = GaugeMetricFamily("wbload_bytes_waiting",
                             "Redis memory of those changes (MEMORY USAGE of the stream)",
                             labels=WB_LABELS)
    oldest = GaugeMetricFamily("wbload_oldest_change_age_seconds",
                               "Age of the oldest change still waiting (0 when none waits)",
                               labels=WB_LABELS)
    lag = GaugeMetricFamily("wbload_gears_estimated_lag_seconds",
                            "RedisGears' lastEstimatedLagMS of the StreamReader, in seconds",
                            labels=WB_LABELS)
    dead = GaugeMetricFamily("wbload_dead_letters",
                             "Changes Mongo rejected for good, kept in the dead-letter stream",
                             labels=WB_LABELS)
    trimmed = GaugeMetricFamily("wbload_dead_letters_trimmed",
                                "Dead letters dropped from the bounded dead-letter stream",
                                labels=WB_LABELS)
    draining = GaugeMetricFamily("wbload_older_version_draining",
                                 "1 while an older version's readers are still registered",
                                 labels=WB_LABELS)
    complete = GaugeMetricFamily("wbload_readers_complete",
                                 "1 when the shard has both readers of the write-behind",
                                 labels=WB_LABELS)
    counters = {key: CounterMetricFamily(f"wbload_reader_{key}", f"Gears: {text}",
                                         labels=READER_LABELS) for key, text in COUNTERS}
    for wb in report.write_behinds:
        version = wb.version or ""
        for shard in wb.shards:
            labels = [wb.name, version, shard.shard]
            dead.add_metric(labels, float(shard.dead_letters))
            trimmed.add_metric(labels, float(shard.dead_letters_trimmed))
            draining.add_metric(labels, 1.0 if shard.draining else 0.0)
            complete.add_metric(labels, 1.0 if shard.complete else 0.0)
            for reader in shard.readers + shard.draining:
                _reader_series(wb.name, shard.shard, reader, counters, waiting, size, oldest,
                               lag)
    yield from [waiting, size, oldest, lag, dead, trimmed, draining, complete]
    yield from counters.values()


def _reader_series(name: str, shard: str, reader: ReaderStatus,
                   counters: dict[str, CounterMetricFamily], *stream_families: GaugeMetricFamily
                   ) -> None:
    version = reader.version or ""
    for key, family in counters.items():
        family.add_metric([name, version, shard, reader.reader], float(getattr(reader, key)))
    if reader.backlog is None:  # a KeysReader: no stream of its own
        return
    waiting, size, oldest, lag = stream_families
    labels = [name, version, shard]
    waiting.add_metric(labels, float(reader.backlog))
    size.add_metric(labels, float(reader.backlog_bytes or 0))
    oldest.add_metric(labels, float(reader.oldest_age_s or 0.0))
    lag.add_metric(labels, reader.estimated_lag_ms / 1000)


class Exporter(Collector):
    """Collects on its own thread every `interval` seconds; scrapes read the last snapshot."""

    def __init__(self, target: RedisTarget, interval: float,
                 connect: Callable[[RedisTarget], Deployment] = open_deployment,
                 clock: Callable[[], float] = time.time) -> None:
        self.target = target
        self.interval = interval
        self._connect = connect
        self._clock = clock
        self._deployment: Deployment | None = None
        # The shards found down last time (logged once): while any, the next collection
        # reads the topology again (a failover moves a shard).
        self._silent: list[str] = []
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._snapshot = Snapshot(None, {})
        self.stopping = threading.Event()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            snapshot = self._snapshot
        return families(snapshot)

    def collect_once(self) -> Snapshot:
        """One collection; never raises for Redis trouble (it is counted and logged)."""
        started = time.monotonic()
        report, up, down = None, {}, []
        try:
            deployment = self._current()
            up = self._answering(deployment)
            down = [address for address, ok in up.items() if not ok]
            live = [shard for shard in deployment.shards if up[shard.address]]
            if not live:
                raise RedisUnreachable(f"no shard of {deployment.display} answers PING")
            if down != self._silent:  # one line when it changes, not one per collection
                log.warning("wbload monitor: %s", f"{', '.join(down)} did not answer; "
                            "exporting the other shards" if down else "every shard answers")
                self._silent = down
            if down:
                self._count(down)
                deployment = replace(deployment, shards=live)
            report = collect_status(deployment, pymongo=False, orphans=False)
        except Exception as e:  # noqa: BLE001 - the exporter must keep serving
            up = up or self._answering(self._deployment)
            if not down:  # (shards found down are counted already)
                # Count the failure against the shards that are down, else (a shard
                # answered wrongly) against all of them.
                self._count([s for s, ok in up.items() if not ok] or list(up))
            log.warning("wbload monitor: collecting from %s failed: %s",
                        self.target.display, redact(f"{type(e).__name__}: {e}",
                                                    self.target.secrets))
            self._forget()
            report = None
        snapshot = Snapshot(report, up, dict(self._errors), time.monotonic() - started,
                            self._clock())
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    def _current(self) -> Deployment:
        """The deployment to collect from: the known one, or the topology read again (after a
        shard was down; if the named node cannot answer, the shards known so far)."""
        if self._deployment is not None and not self._silent:
            return self._deployment
        try:
            fresh = self._connect(self.target)
        except Exception:
            if self._deployment is None:
                raise
            return self._deployment
        self._forget()
        self._deployment = fresh
        return fresh

    def _count(self, shards: list[str]) -> None:
        for shard in shards:
            self._errors[shard] = self._errors.get(shard, 0) + 1

    def _answering(self, deployment: Deployment | None) -> dict[str, bool]:
        """Which shards answer PING now (the named address when none is known)."""
        if deployment is None:
            return {target_address(self.target): False}
        up = {}
        for shard in deployment.shards:
            try:
                up[shard.address] = bool(shard.client.ping())
            except Exception:  # noqa: BLE001 - down is the answer
                up[shard.address] = False
        return up

    def _forget(self) -> None:
        if self._deployment is not None:
            with contextlib.suppress(Exception):  # closing a dead connection may fail too
                self._deployment.close()
        self._deployment = None

    def run(self) -> None:
        """Collect until `stopping` is set."""
        while not self.stopping.is_set():
            self.collect_once()
            self.stopping.wait(self.interval)
        self._forget()


def serve(exporter: Exporter, bind: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Start the HTTP endpoint (/metrics) and the collecting thread; returns (server, thread).
    Stop with `exporter.stopping.set()` and `server.shutdown()`."""
    registry = CollectorRegistry()
    registry.register(exporter)
    server, _ = start_http_server(port, addr=bind, registry=registry)
    collector = threading.Thread(target=exporter.run, name="wbload-monitor", daemon=True)
    collector.start()
    return server, collector
