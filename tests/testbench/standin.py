"""The RedisGears stand-in as a bench server: started through its stdlib-only launcher."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from .servers import HOST, ServerProcess, stop_popen, tail, track

LAUNCHER = Path(__file__).resolve().parents[1] / "gears_standin" / "launch.py"


def load_launcher() -> ModuleType:
    """The stand-in's stdlib-only launcher, loaded from its file (tests/ need not be a package)."""
    spec = importlib.util.spec_from_file_location("wbload_gears_standin_launch", LAUNCHER)
    if spec is None or spec.loader is None or not LAUNCHER.is_file():
        raise FileNotFoundError(f"RedisGears stand-in launcher missing: {LAUNCHER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Standin:
    """A RedisGears stand-in in front of a bench Redis; `restart()` restarts both, the way a
    restart of Redis restarts the RedisGears inside it (same ports)."""

    def __init__(self, upstream: ServerProcess, log: Path, port: int | None = None) -> None:
        self.upstream = upstream
        self.log_path = log
        self.port: int | None = port
        self.url = ""
        self._proc: Any = None

    def start(self) -> None:
        """Start it (again, on the same port); returns once it answers PING."""
        if self._proc is not None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.url, self._proc = load_launcher().start_standin(
            HOST, self.upstream.port, str(self.log_path), port=self.port)
        track(self._proc)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_popen(proc)

    def restart(self) -> None:
        """Stop the stand-in, restart its Redis, start the stand-in again."""
        self.stop()
        self.upstream.restart()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)
