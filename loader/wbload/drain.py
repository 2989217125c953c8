"""After an upgrade: wait until older StreamReaders have written what their version left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import NotInSync
from .gears_errors import one_line
from .registrations import Registration, unregister, write_behind
from .streams import total_backlog
from .topology import Deployment


@dataclass(frozen=True)
class Draining:
    """An older version's StreamReader and how many changes it still has to write (on every
    shard: on a cluster it is retired only once every shard's stream is empty)."""

    registration: Registration
    waiting: int


def retire_drained(deployment: Deployment, name: str) -> list[Draining]:
    """Unregister an older version's KeysReader (the current one is live once listed) and its
    StreamReader once that one's stream is empty; return the StreamReaders still writing."""
    wb = write_behind(deployment, name)
    left = []
    for registration in wb.draining if wb else ():
        # Counted only now: until its KeysReader (listed before it) was unregistered just
        # above, the older version kept queueing, and a stale 0 would strand those changes.
        item = Draining(registration, total_backlog(deployment, registration.stream_pattern))
        if item.waiting:
            left.append(item)
            continue
        unregister(deployment, item.registration)
        pattern = item.registration.stream_pattern
        for shard in deployment.shards:
            if not pattern:
                break
            stream = shard.stream(pattern)
            if shard.client.xlen(stream) == 0:
                shard.client.delete(stream)
    return left


def wait_for_drain(
    deployment: Deployment,
    name: str,
    timeout: float,
    on_progress: Callable[[list[Draining]], None] = lambda left: None,
    interval: float = 0.5,
) -> None:
    """Wait up to `timeout` seconds until no older version of `name` has changes left."""
    deadline = time.monotonic() + timeout
    while True:
        left = retire_drained(deployment, name)
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
