"""Shell completion of write-behind names, asked from the server in REDIS_URL."""

from __future__ import annotations

import os

import click
from click.shell_completion import CompletionItem

from .connection import RedisTarget
from .registrations import read_registrations, write_behinds

COMPLETION_TIMEOUT = 1.0  # seconds: a shell waits for this while the user presses TAB


def complete_write_behinds(ctx: click.Context, _param: click.Parameter,
                           incomplete: str) -> list[CompletionItem]:
    """The registered write-behind names starting with `incomplete`; nothing on any error
    (a completion must never print one)."""
    url = ctx.params.get("redis_url") or os.environ.get("REDIS_URL") or "redis://localhost:6379"
    try:
        client = RedisTarget(url, timeout=COMPLETION_TIMEOUT).client()
        client.connection_pool.connection_kwargs["socket_connect_timeout"] = COMPLETION_TIMEOUT
        try:
            names = write_behinds(read_registrations(client))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - completion fails silently
        return []
    return [CompletionItem(name) for name in sorted(names) if name.startswith(incomplete)]
