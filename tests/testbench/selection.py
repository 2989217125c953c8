"""Which servers a run uses: given URLs first, then containers when Docker answers, else local."""

from __future__ import annotations

import os
from collections.abc import Mapping

GEARS_KINDS = ("real", "testcontainers", "standin")

# Environment variables the bench reads (documented in tests/README.md).
REDIS_URL = "WBLOAD_TEST_REDIS_URL"  # a Redis with RedisGears 1.2 + RedisJSON 2
CLUSTER_URL = "WBLOAD_TEST_CLUSTER_URL"  # any node of a RedisGears 1.2 OSS cluster
MONGO_URL = "WBLOAD_TEST_MONGO_URL"  # a MongoDB as the test process reaches it
MONGO_URL_FROM_REDIS = "WBLOAD_TEST_MONGO_URL_FROM_REDIS"  # the same, as a recipe reaches it
GEARS_CHOICE = "WBLOAD_TEST_GEARS"  # auto (default) | testcontainers | standin
RESTART_CMD = "WBLOAD_TEST_RESTART_CMD"  # restarts the REDIS_URL server; {port} is its port


def docker_engine_answers() -> bool:
    """True when a Docker engine replies to a ping (the client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def gears_kind(env: Mapping[str, str] = os.environ) -> str:
    """'real' for a given URL, else 'testcontainers' when Docker answers, else 'standin'."""
    if env.get(REDIS_URL):
        return "real"
    choice = env.get(GEARS_CHOICE, "auto") or "auto"
    if choice in ("testcontainers", "standin"):
        return choice
    if choice != "auto":
        raise ValueError(f"{GEARS_CHOICE}={choice!r}: expected auto, testcontainers or standin")
    return "testcontainers" if docker_engine_answers() else "standin"


def mongo_source(gears: str, env: Mapping[str, str] = os.environ) -> str:
    """'external' for a given URL; a container beside a containerised Redis; else 'local'."""
    if env.get(MONGO_URL):
        return "external"
    return "testcontainers" if gears == "testcontainers" else "local"


def redact(url: str) -> str:
    """The URL with any password replaced, fit for printing."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
