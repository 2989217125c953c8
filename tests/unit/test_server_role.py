"""Telling a replica from a primary (deploy refuses replicas), from ROLE or INFO replication."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from wbload.server import primary_of


class FakeRedis:
    def __init__(self, role: Any = None, info: Any = None) -> None:
        self.role, self._info = role, info

    def execute_command(self, *args: str) -> Any:
        assert args == ("ROLE",)
        if isinstance(self.role, Exception):
            raise self.role
        return self.role

    def info(self, section: str) -> Any:
        assert section == "replication"
        if isinstance(self._info, Exception):
            raise self._info
        return self._info


NOPERM = redis.ResponseError("NOPERM this user has no permissions to run the 'role' command")


@pytest.mark.parametrize(("client", "expected"), [
    (FakeRedis(role=["master", 3129, []]), None),
    (FakeRedis(role=["slave", "10.0.0.5", 6379, "connected", 3167]), "10.0.0.5:6379"),
    (FakeRedis(role=[b"slave", b"primary.local", 6380, b"connect", -1]), "primary.local:6380"),
    (FakeRedis(role=NOPERM, info={"role": "slave", "master_host": "h", "master_port": 7}),
     "h:7"),
    (FakeRedis(role=NOPERM, info={"role": "master"}), None),
    (FakeRedis(role=NOPERM, info=redis.ResponseError("NOPERM info")), None),
], ids=["primary", "replica", "replica-bytes", "role-denied-info-replica",
        "role-denied-info-primary", "neither-allowed"])
def test_primary_of(client: FakeRedis, expected: str | None) -> None:
    assert primary_of(client) == expected  # type: ignore[arg-type]
