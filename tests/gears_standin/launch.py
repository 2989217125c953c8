"""Start the RedisGears stand-in from any Python (stdlib only).

    from gears_standin.launch import ensure_gears_python, start_standin
    url, proc = start_standin("127.0.0.1", redis_port, "/tmp/standin.log")

The stand-in runs in its own "Gears Python" environment: a venv made from Python 3.7 (what
RedisGears 1.2 embeds) in a machine-wide cache, ``$WBLOAD_BENCH_HOME/gears-py37`` (default
``~/.cache/wbload-bench``), so recipes and their REQUIREMENTS never touch the project's own
environment and a second run (or another clone on the same machine) reuses it.
"""
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings

# hiredis 2.x crashes on RESP3 sets of maps (COMMAND INFO); 3.0.0 parses them but declares
# Python 3.8+, while its C code builds and works on 3.7: build it from source for Gears' 3.7.
PLUMBING = ["hiredis==3.0.0", "cloudpickle==2.2.1"]
PIP_FLAGS = ["--ignore-requires-python", "--no-binary", "hiredis"]
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.dirname(HERE)


def bench_home():
    return os.environ.get("WBLOAD_BENCH_HOME") or os.path.expanduser("~/.cache/wbload-bench")


def venv_dir():
    return os.path.join(bench_home(), "gears-py37")


def _version(python):
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
        return out.stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        return None


def find_python37():
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python3.7")),
                        reverse=True)
    candidates += [shutil.which("python3.7")]
    for c in candidates:
        if c and _version(c) == "3.7":
            return c
    warnings.warn("no Python 3.7 found: the Gears stand-in runs recipes on %s instead of 3.7 "
                  "(RedisGears 1.2 embeds CPython 3.7)" % sys.version.split()[0], stacklevel=2)
    return sys.executable


@contextlib.contextmanager
def _locked(path):
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_gears_python():
    """Create (or reuse) the stand-in's venv; returns its python executable."""
    home = bench_home()
    os.makedirs(home, exist_ok=True)
    venv = venv_dir()
    python = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, ".standin-plumbing")
    spec = " ".join(PLUMBING + PIP_FLAGS)
    with _locked(os.path.join(home, ".gears-py37.lock")):
        if os.path.exists(python) and os.path.exists(marker):
            with open(marker) as f:
                if f.read().strip() == spec:
                    return python
        if not os.path.exists(python):
            subprocess.run([find_python37(), "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
                       + PIP_FLAGS + PLUMBING, check=True)
        with open(marker, "w") as f:
            f.write(spec)
    return python


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port):
    try:
        with contextlib.closing(socket.create_connection(("127.0.0.1", port), timeout=1)) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_standin(upstream_host, upstream_port, log_file, port=None, upstream_password=None,
                  timeout=60):
    """Start ``python -m gears_standin`` in the Gears Python; returns (url, Popen) once it
    answers PING."""
    python = ensure_gears_python()
    port = port or free_port()
    env = dict(os.environ)
    for var in ("PYTHONHOME", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(var, None)
    env["PYTHONPATH"] = TESTS_DIR
    env["PYTHONUNBUFFERED"] = "1"
    if upstream_password:
        env["GEARS_STANDIN_UPSTREAM_PASSWORD"] = upstream_password
    cmd = [python, "-m", "gears_standin", "--port", str(port),
           "--upstream", "%s:%d" % (upstream_host, int(upstream_port))]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=TESTS_DIR, env=env, stdout=log, stderr=log)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            with open(log_file, "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
            raise RuntimeError("gears stand-in exited with %s:\n%s" % (proc.returncode, tail))
        if _ping(port):
            return "redis://127.0.0.1:%d" % port, proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gears stand-in did not answer PING within %ss" % timeout)
