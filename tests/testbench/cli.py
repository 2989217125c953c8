"""Running the `wbload` command in-process, as an operator would from a shell."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from click.testing import CliRunner

from wbload.cli import main


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def wbload(*args: str, env: Mapping[str, str] | None = None) -> Run:
    """`wbload ARGS...` with a clean environment plus `env`; never raises."""
    runner = CliRunner()
    clean = {k: None for k in ("REDIS_URL", "MONGODB_URL")}
    result = runner.invoke(main, list(args), env={**clean, **(env or {})}, catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)
