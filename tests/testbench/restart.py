"""A RedisGears the bench can restart with its data: the stand-in in front of a Redis with
AOF, or the server WBLOAD_TEST_REDIS_URL names, restarted by WBLOAD_TEST_RESTART_CMD."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import redis

from . import selection
from .targets import redis_client

READY_TIMEOUT = 300.0  # a Gears that reinstalls its requirements at load takes a while


class RestartableGears:
    """`url`, and `restart()`: stop Redis (its AOF flushed), start it again on the same port,
    return once it answers with RedisGears loaded."""

    def __init__(self, url: str, restart: Callable[[], None], kind: str, close: Callable[[], None]):
        self.url = url
        self.kind = kind
        self._restart = restart
        self._close = close

    def restart(self) -> None:
        self._restart()
        wait_ready(self.url)

    def close(self) -> None:
        self._close()


def restart_command(url: str, env: Mapping[str, str]) -> str | None:
    """WBLOAD_TEST_RESTART_CMD with `{port}` replaced by the port of `url` (None if unset)."""
    template = env.get(selection.RESTART_CMD) or ""
    if not template:
        return None
    return template.replace("{port}", shlex.quote(str(urlsplit(url).port or 6379)))


def run_restart_command(command: str) -> None:
    done = subprocess.run(command, shell=True, capture_output=True, text=True,
                          timeout=READY_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{selection.RESTART_CMD} ({command}) exited {done.returncode}: "
                           f"{(done.stderr or done.stdout)[-1000:]}")


def wait_ready(url: str, timeout: float = READY_TIMEOUT) -> None:
    """Until Redis answers (not LOADING) and RedisGears answers RG.PYSTATS."""
    deadline = time.monotonic() + timeout
    while True:
        client = redis_client(url, socket_timeout=10)
        try:
            client.execute_command("RG.PYSTATS")
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"Redis at {url} not ready {timeout:.0f}s after a "
                                     f"restart: {e}") from None
        finally:
            client.close()
        time.sleep(0.2)


def appendonly(url: str) -> bool:
    client = redis_client(url)
    try:
        return client.config_get("appendonly").get("appendonly") == "yes"
    finally:
        client.close()
