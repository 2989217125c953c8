"""After an upgrade: wait until older StreamReaders have written what their version left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from .errors import NotInSync
from .gears_errors import one_line
from .registrations import Registration, read_registrations, unregister, write_behinds
from .streams import backlog, stream_keys


@dataclass(frozen=True)
class Draining:
    """An older version's StreamReader and how many changes it still has to write."""

    registration: Registration
    waiting: int


def draining(client: redis.Redis, name: str) -> list[Draining]:
    """The older readers of `name` still registered, with their StreamReaders' backlogs."""
    wb = write_behinds(read_registrations(client)).get(name)
    if wb is None:
        return []
    return [Draining(r, backlog(client, r.stream_pattern)) for r in wb.draining]


def retire_drained(client: redis.Redis, name: str) -> list[Draining]:
    """Unregister an older version's KeysReader (the current one is live once listed) and its
    StreamReader once that one's stream is empty; return the StreamReaders still writing."""
    left = []
    for item in draining(client, name):
        # Counted again now: until its KeysReader (listed before it) was unregistered just
        # above, the older version kept queueing, and a stale 0 would strand those changes.
        item = Draining(item.registration, backlog(client, item.registration.stream_pattern))
        if item.waiting:
            left.append(item)
            continue
        unregister(client, item.registration)
        if item.registration.stream_pattern:
            for key in stream_keys(client, item.registration.stream_pattern):
                if client.xlen(key) == 0:
                    client.delete(key)
    return left


def wait_for_drain(
    client: redis.Redis,
    name: str,
    timeout: float,
    on_progress: Callable[[list[Draining]], None] = lambda left: None,
    interval: float = 0.5,
) -> None:
    """Wait up to `timeout` seconds until no older version of `name` has changes left."""
    deadline = time.monotonic() + timeout
    while True:
        left = retire_drained(client, name)
        on_progress(left)
        if not left:
            return
        if time.monotonic() >= deadline:
            oldest = left[0]
            error = one_line(oldest.registration.last_error)
            raise NotInSync(
                f"{name}: version {oldest.registration.version} still has {oldest.waiting} "
                f"change(s) to write after {timeout:g}s"
                + (f" (its last error: {error})" if error else "")
                + "; the new version writes once they are done: fix the cause, or "
                f"`wbload resync {name} --stream <its stream>` to hand them to the new version"
            )
        time.sleep(interval)
