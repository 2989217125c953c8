"""Replies a Redis Cluster gives mid-command (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) are one line
with what to do and a documented exit code, never "internal error"."""

from __future__ import annotations

import click
import pytest
import redis
from click.testing import CliRunner

from wbload.cli import WbloadGroup
from wbload.errors import ExitCode


@pytest.mark.parametrize(("error", "code", "says"), [
    (redis.exceptions.MovedError("3999 127.0.0.1:7002"), ExitCode.REDIS_UNREACHABLE, "moved"),
    (redis.exceptions.AskError("3999 127.0.0.1:7002"), ExitCode.REDIS_UNREACHABLE, "moved"),
    (redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
     ExitCode.REDIS_UNREACHABLE, "moved"),
    (redis.exceptions.ClusterDownError("The cluster is down"), ExitCode.SERVER_UNSUITABLE,
     "wbload refresh"),
])
def test_cluster_replies_are_one_line_with_their_exit_code(error: Exception, code: int,
                                                           says: str) -> None:
    @click.group(cls=WbloadGroup)
    def cli() -> None:
        pass

    @cli.command()
    def run() -> None:
        raise error

    result = CliRunner().invoke(cli, ["run"])
    assert result.exit_code == code
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("wbload: error: ") and says in line and "internal" not in line
