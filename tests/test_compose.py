"""The compose stacks and their images, checked without a Docker engine (none runs here).

Static: docker-compose*.yml and the Dockerfiles are parsed, and fail on an unpinned or `latest`
image, a RedisGears load without its Python plugin, a Redis healthcheck that does not check both
RedisGears' Python and RedisJSON, no AOF or no /data volume, a port published beyond
127.0.0.1, a cluster node that is not refreshed after each start. Every check is also run on
mutated copies, which it must reject. `compose config` must accept both files.
Behaviour (e2e, on the bench): docker/redis/healthcheck.sh and the demo loader against real
servers.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.cluster.yml")
REDIS_DIR = "docker/redis"
# Facts from RedisGears v1.2.13's Dockerfile (and ../shared/gears/README.md's setup).
GEARS_MODULE = "/var/opt/redislabs/lib/modules/redisgears.so"
GEARS_PYTHON_PLUGIN = "/var/opt/redislabs/modules/rg/plugin/gears_python.so"
# From RedisJSON v2.4.10's build/docker/dockerfile.tmpl (MODULES_DIR of readies).
REJSON_MODULE = "/usr/lib/redis/modules/rejson.so"
LOOPBACK = ("127.0.0.1:", "[::1]:")
VERSION_TAG = re.compile(r"^\d+\.\d+\.\d+")  # a release, not a moving major or minor tag


# ------------------------------------------------------------------ what is checked

@dataclass
class Stack:
    """One compose file as parsed, and the text of the files its images are built from."""

    compose: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)  # repo-relative path -> text

    @classmethod
    def load(cls, compose_file: str) -> Stack:
        compose = yaml.safe_load((REPO / compose_file).read_text(encoding="utf-8"))
        files = {}
        for path in ("Dockerfile", "constraints.txt", *(
                f"{REDIS_DIR}/{p.name}" for p in sorted((REPO / REDIS_DIR).iterdir()))):
            files[path] = (REPO / path).read_text(encoding="utf-8")
        return cls(compose, files)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.compose.get("services") or {}


def build_dir(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    if build is None:
        return None
    context = build if isinstance(build, str) else build.get("context", ".")
    return os.path.normpath(context)


def redis_nodes(stack: Stack) -> dict[str, dict[str, Any]]:
    """Services that run docker/redis as a server (one-shots overriding its entrypoint do not)."""
    images = {s.get("image") for s in stack.services.values() if build_dir(s) == REDIS_DIR}
    return {name: s for name, s in stack.services.items()
            if (build_dir(s) == REDIS_DIR or s.get("image") in images - {None})
            and "entrypoint" not in s}


def logical_lines(text: str) -> list[str]:
    """Lines with continuations joined and comments dropped (Dockerfile, redis.conf)."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def dockerfile_images(text: str) -> list[str]:
    """Every image a Dockerfile's FROM lines pull, ARG defaults substituted; stages skipped."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images = []
    for line in logical_lines(text):
        word, _, rest = line.partition(" ")
        if word.upper() == "ARG" and "=" in rest:
            name, _, value = rest.strip().partition("=")
            args.setdefault(name, value.strip().strip('"'))
        elif word.upper() == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            if len(parts) >= 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
            if image not in stages:
                images.append(image)
    return images


def image_problem(image: str, where: str) -> str | None:
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if "$" in image:
        return f"{where}: image {image!r} has an unresolved variable"
    if ":" not in name:
        return f"{where}: image {image!r} has no tag (that is `latest`)"
    tag = name.split(":", 1)[1]
    if tag == "latest":
        return f"{where}: image {image!r} is `latest`"
    if not VERSION_TAG.match(tag):
        return f"{where}: image {image!r} is not pinned to a release (want MAJOR.MINOR.PATCH)"
    return None


def image_problems(stack: Stack) -> list[str]:
    problems = []
    for name, service in stack.services.items():
        image = service.get("image")
        if image is None:
            continue
        if build_dir(service) is not None or image in {
                s.get("image") for s in stack.services.values() if build_dir(s)}:
            # Built here: compose only names the result, but a moving name is still wrong.
            if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
                problems.append(f"service {name}: built image named {image!r} (no tag/latest)")
            continue
        problems.append(image_problem(image, f"service {name}") or "")
    for path in ("Dockerfile", f"{REDIS_DIR}/Dockerfile"):
        for image in dockerfile_images(stack.files[path]):
            problems.append(image_problem(image, path) or "")
    return [p for p in problems if p]


def module_loads(args: list[str]) -> list[list[str]]:
    """`--loadmodule PATH ARGS...` groups of a redis-server argument list."""
    loads: list[list[str]] = []
    current: list[str] | None = None
    for arg in args:
        if arg.startswith("--"):
            current = [] if arg == "--loadmodule" else None
            if current is not None:
                loads.append(current)
        elif current is not None:
            current.append(arg)
    return loads


def conf_module_loads(conf: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in logical_lines(conf)
            if line.split()[0].lower() == "loadmodule"]


def conf_value(conf: str, key: str) -> str | None:
    values = [line.split(None, 1)[1] if " " in line else ""
              for line in logical_lines(conf) if line.split()[0].lower() == key]
    return values[-1].strip() if values else None


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def gears_load_problem(load: list[str], where: str) -> str | None:
    path, args = load[0], load[1:]
    if not path.endswith("redisgears.so"):
        return None
    if path != GEARS_MODULE:
        return f"{where}: RedisGears loaded from {path}, the image has it at {GEARS_MODULE}"
    plugins = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "Plugin"]
    if GEARS_PYTHON_PLUGIN not in plugins:
        return (f"{where}: RedisGears loaded without `Plugin {GEARS_PYTHON_PLUGIN}`: "
                "RG.PYEXECUTE would be an unknown command")
    return None


def module_problems(stack: Stack) -> list[str]:
    conf = stack.files[f"{REDIS_DIR}/redis.conf"]
    loads = conf_module_loads(conf)
    problems = [gears_load_problem(load, "redis.conf") for load in loads]
    paths = [load[0] for load in loads]
    if GEARS_MODULE not in paths:
        problems.append(f"redis.conf: no `loadmodule {GEARS_MODULE} Plugin ...`")
    if REJSON_MODULE not in paths:
        problems.append(f"redis.conf: no `loadmodule {REJSON_MODULE}` (RedisJSON)")
    rejson_copied = any(line.startswith("COPY") and "--from=" in line and REJSON_MODULE in line
                        for line in logical_lines(stack.files[f"{REDIS_DIR}/Dockerfile"]))
    if not rejson_copied:
        problems.append(f"{REDIS_DIR}/Dockerfile: no COPY --from=<rejson image> of rejson.so")
    for line in logical_lines(stack.files[f"{REDIS_DIR}/Dockerfile"]):
        word, _, rest = line.partition(" ")
        if word.upper() in ("CMD", "ENTRYPOINT") and rest.strip().startswith("["):
            for load in module_loads(json.loads(rest)):
                problems.append(gears_load_problem(load, f"{REDIS_DIR}/Dockerfile {word}"))
    for name, service in redis_nodes(stack).items():
        for load in module_loads(command_args(service)):
            problems.append(gears_load_problem(load, f"service {name} command"))
    return [p for p in problems if p]


def healthcheck_text(service: dict[str, Any], stack: Stack) -> str:
    """The healthcheck command, plus the code (not comments) of any docker/redis script it runs."""
    test = (service.get("healthcheck") or {}).get("test") or []
    text = test if isinstance(test, str) else " ".join(str(t) for t in test)
    for script in re.findall(r"/usr/local/bin/([\w.-]+)", text):
        body = stack.files.get(f"{REDIS_DIR}/{script}", "")
        text += "\n" + "\n".join(logical_lines(body))
    return text


def healthcheck_problems(stack: Stack) -> list[str]:
    problems = []
    for name, service in redis_nodes(stack).items():
        check = service.get("healthcheck") or {}
        if check.get("disable") or not check.get("test"):
            problems.append(f"service {name}: no healthcheck")
            continue
        text = healthcheck_text(service, stack)
        if not re.search(r"RG\.PY(STATS|EXECUTE)", text):
            problems.append(f"service {name}: healthcheck does not ask RedisGears' Python "
                            "(RG.PYSTATS or RG.PYEXECUTE)")
        if not re.search(r"ReJSON|JSON\.(GET|SET|TYPE)", text):
            problems.append(f"service {name}: healthcheck does not check RedisJSON")
    return problems


def persistence_problems(stack: Stack) -> list[str]:
    conf = stack.files[f"{REDIS_DIR}/redis.conf"]
    problems = []
    if conf_value(conf, "appendonly") != "yes":
        problems.append("redis.conf: AOF is off (want `appendonly yes`)")
    if conf_value(conf, "appendfsync") not in ("everysec", "always"):
        problems.append("redis.conf: appendfsync is neither everysec nor always")
    if conf_value(conf, "dir") != "/data":
        problems.append("redis.conf: data is not in /data (`dir /data`)")
    if not any(re.fullmatch(r"VOLUME\s+\[?\"?/data\"?\]?", line)
               for line in logical_lines(stack.files[f"{REDIS_DIR}/Dockerfile"])):
        problems.append(f"{REDIS_DIR}/Dockerfile: no `VOLUME /data`")
    declared = set(stack.compose.get("volumes") or {})
    for name, service in redis_nodes(stack).items():
        args = command_args(service)
        for i, arg in enumerate(args[:-1]):
            if arg == "--appendonly" and args[i + 1] != "yes":
                problems.append(f"service {name}: command turns AOF off")
        mounts = [v if isinstance(v, str) else f"{v.get('source', '')}:{v.get('target', '')}"
                  for v in service.get("volumes") or []]
        data = [m.split(":")[0] for m in mounts if m.split(":")[1:2] == ["/data"]]
        if not data:
            problems.append(f"service {name}: no volume at /data (AOF would die with it)")
        elif not (data[0] in declared or data[0].startswith((".", "/"))):
            problems.append(f"service {name}: volume {data[0]!r} is not declared")
    return problems


def port_problems(stack: Stack) -> list[str]:
    problems = []
    for name, service in stack.services.items():
        if service.get("network_mode") == "host":
            problems.append(f"service {name}: network_mode host publishes on every interface")
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                ok = port.get("host_ip") in ("127.0.0.1", "::1")
            else:
                ok = str(port).startswith(LOOPBACK)
            if not ok:
                problems.append(f"service {name}: port {port!r} is published beyond 127.0.0.1")
    return problems


def cluster_problems(stack: Stack) -> list[str]:
    """Cluster nodes refresh Gears after each start; a one-shot joins them before the deploy."""
    nodes = {n: s for n, s in redis_nodes(stack).items()
             if "--cluster-enabled" in command_args(s)}
    if not nodes:
        return []
    problems = []
    for name, service in nodes.items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        if str(env.get("WBLOAD_CLUSTER_REFRESH")) != "1":
            problems.append(f"service {name}: not refreshed after each start "
                            "(WBLOAD_CLUSTER_REFRESH=1 runs RG.REFRESHCLUSTER)")
        if env.get("REDIS_PASSWORD"):
            problems.append(f"service {name}: a password breaks RedisGears' links between shards")
    inits = [n for n, s in stack.services.items()
             if "cluster-init.sh" in " ".join(map(str, s.get("entrypoint") or []))]
    if len(inits) != 1:
        return [*problems, "no one-shot running cluster-init.sh"]
    waits = (stack.services[inits[0]].get("depends_on") or {})
    if {n for n in nodes if (waits.get(n) or {}).get("condition") != "service_healthy"}:
        problems.append(f"{inits[0]} does not wait for every node to be healthy")
    loader = stack.services.get("loader") or {}
    condition = ((loader.get("depends_on") or {}).get(inits[0]) or {}).get("condition")
    if condition != "service_completed_successfully":
        problems.append(f"loader does not wait for {inits[0]} to finish")
    return problems


def loader_image_problems(stack: Stack) -> list[str]:
    problems = []
    pip_lines = [line for line in logical_lines(stack.files["Dockerfile"]) if "pip install" in line]
    if not pip_lines or not all(re.search(r"(-c|--constraint)\s+constraints\.txt", line)
                                for line in pip_lines):
        problems.append("Dockerfile: pip install without -c constraints.txt")
    pins = dict(line.split("==", 1) for line in logical_lines(stack.files["constraints.txt"])
                if "==" in line)
    pins = {k.lower(): v for k, v in pins.items()}
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        version = pins.get(requirement.name.lower())
        if version is None:
            problems.append(f"constraints.txt: {requirement.name} is not pinned")
        elif not requirement.specifier.contains(version):
            problems.append(f"constraints.txt: {requirement.name}=={version} is not {requirement}")
    return problems


CHECKS: tuple[Callable[[Stack], list[str]], ...] = (
    image_problems, module_problems, healthcheck_problems, persistence_problems, port_problems,
    cluster_problems, loader_image_problems)


def all_problems(stack: Stack) -> list[str]:
    return [p for check in CHECKS for p in check(stack)]


# ------------------------------------------------------------------ the repository's files

@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_stack_passes_every_check(compose_file: str) -> None:
    assert all_problems(Stack.load(compose_file)) == []


def test_the_checks_see_what_they_check() -> None:
    """Guards against a check passing because it found nothing to look at."""
    single, cluster = Stack.load("docker-compose.yml"), Stack.load("docker-compose.cluster.yml")
    assert set(redis_nodes(single)) == {"redis"}
    assert set(redis_nodes(cluster)) == {"redis-1", "redis-2", "redis-3"}
    assert dockerfile_images(single.files[f"{REDIS_DIR}/Dockerfile"]) == [
        "redislabs/rejson:2.4.10", "redisfab/redisgears:1.2.12-x64-bullseye"]
    assert [load[0] for load in conf_module_loads(single.files[f"{REDIS_DIR}/redis.conf"])] == [
        REJSON_MODULE, GEARS_MODULE]
    assert single.services["mongo"]["image"] == cluster.services["mongo"]["image"]


def test_testcontainers_run_the_compose_image() -> None:
    from testbench import containers

    assert containers.GEARS_IMAGE_DIR == REPO / REDIS_DIR
    assert Stack.load(COMPOSE_FILES[0]).services["redis"]["image"] == containers.GEARS_IMAGE_TAG
    assert image_problem(containers.MONGO_IMAGE, "containers.MONGO_IMAGE") is None


def test_demo_fixture_is_the_tutorials_51_movies() -> None:
    movies = json.loads((REPO / "docker/demo/demo-movies.json").read_text(encoding="utf-8"))
    ids = [m["movieId"] for m in movies]
    assert len(ids) == 51 and len(set(ids)) == 51


def test_demo_fixture_matches_shared_data() -> None:
    from testbench.data import DEMO_MOVIES

    if not DEMO_MOVIES.is_file():
        pytest.skip(f"environment: no {DEMO_MOVIES} beside the repository to compare with")
    fixture = REPO / "docker/demo/demo-movies.json"
    assert json.loads(fixture.read_text()) == json.loads(DEMO_MOVIES.read_text())


# ------------------------------------------------------------------ the checks can fail

def _service(name: str) -> Callable[[Stack], dict[str, Any]]:
    return lambda stack: stack.services[name]


def set_key(name: str, key: str, value: Any) -> Callable[[Stack], None]:
    return lambda stack: _service(name)(stack).__setitem__(key, value)


def drop_key(name: str, key: str) -> Callable[[Stack], None]:
    return lambda stack: _service(name)(stack).pop(key)


def edit(path: str, old: str, new: str) -> Callable[[Stack], None]:
    def mutate(stack: Stack) -> None:
        assert re.search(old, stack.files[path], re.M), f"{old!r} not in {path}"
        stack.files[path] = re.sub(old, new, stack.files[path], flags=re.M)
    return mutate


def set_env(name: str, key: str, value: str | None) -> Callable[[Stack], None]:
    def mutate(stack: Stack) -> None:
        env = _service(name)(stack).setdefault("environment", {})
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    return mutate


CONF, REDIS_DOCKERFILE = f"{REDIS_DIR}/redis.conf", f"{REDIS_DIR}/Dockerfile"
GEARS_LINE = r"^loadmodule /var/opt/redislabs/lib/modules/redisgears\.so.*$"
MUTATIONS: dict[str, tuple[str, Callable[[Stack], None], str]] = {
    # name: (compose file, mutation, a word the problem must contain)
    "mongo latest": ("docker-compose.yml", set_key("mongo", "image", "mongo:latest"), "latest"),
    "mongo untagged": ("docker-compose.yml", set_key("mongo", "image", "mongo"), "no tag"),
    "mongo minor only": ("docker-compose.yml", set_key("mongo", "image", "mongo:7.0"), "pinned"),
    "gears image latest": ("docker-compose.yml", edit(
        REDIS_DOCKERFILE, r"^ARG GEARS_IMAGE=.*$", "ARG GEARS_IMAGE=redislabs/redisgears:latest"),
        "latest"),
    "redismod": ("docker-compose.yml", edit(
        REDIS_DOCKERFILE, r"^FROM \$\{GEARS_IMAGE\}$", "FROM redislabs/redismod"), "no tag"),
    "loader base latest": ("docker-compose.yml", edit(
        "Dockerfile", r"^FROM .*$", "FROM python:latest"), "latest"),
    "built image latest": ("docker-compose.yml", set_key("redis", "image", "wbload-redis:latest"),
                           "latest"),
    "gears without plugin": ("docker-compose.yml", edit(
        CONF, GEARS_LINE, f"loadmodule {GEARS_MODULE} CreateVenv 1"), "Plugin"),
    "gears 1.0 arguments": ("docker-compose.yml", edit(
        CONF, GEARS_LINE, f"loadmodule {GEARS_MODULE} PythonHomeDir /opt/redislabs/lib/modules"),
        "Plugin"),
    "gears plugin elsewhere": ("docker-compose.yml", edit(
        CONF, r"/var/opt/redislabs/modules/rg/plugin/", "/usr/lib/"), "Plugin"),
    "gears on the command line without plugin": ("docker-compose.yml", set_key(
        "redis", "command", ["--loadmodule", GEARS_MODULE]), "Plugin"),
    "dockerfile CMD without plugin": ("docker-compose.yml", edit(
        REDIS_DOCKERFILE, r"^CMD \[\]$", f'CMD ["--loadmodule", "{GEARS_MODULE}"]'), "Plugin"),
    "no gears": ("docker-compose.yml", edit(CONF, GEARS_LINE, ""), "redisgears"),
    "no rejson": ("docker-compose.yml", edit(CONF, r"^loadmodule .*rejson\.so$", ""), "RedisJSON"),
    "rejson not copied": ("docker-compose.yml", edit(REDIS_DOCKERFILE, r"^COPY --from=rejson.*$",
                                                     ""), "rejson"),
    "healthcheck ping": ("docker-compose.yml", set_key(
        "redis", "healthcheck", {"test": ["CMD", "redis-cli", "ping"]}), "Python"),
    "healthcheck gears only": ("docker-compose.yml", set_key("redis", "healthcheck", {
        "test": ["CMD-SHELL", "redis-cli RG.PYSTATS | grep -q TotalAllocated"]}), "RedisJSON"),
    "healthcheck script without json": ("docker-compose.yml", edit(
        f"{REDIS_DIR}/healthcheck.sh", r"&& cli MODULE LIST \| grep -qx 'ReJSON'", ""),
        "RedisJSON"),
    "healthcheck disabled": ("docker-compose.yml", set_key(
        "redis", "healthcheck", {"disable": True}), "healthcheck"),
    "no healthcheck": ("docker-compose.yml", drop_key("redis", "healthcheck"), "healthcheck"),
    "aof off": ("docker-compose.yml", edit(CONF, r"^appendonly yes$", "appendonly no"), "AOF"),
    "aof unset": ("docker-compose.yml", edit(CONF, r"^appendonly yes$", ""), "AOF"),
    "aof off on the command line": ("docker-compose.yml", set_key(
        "redis", "command", ["--appendonly", "no"]), "AOF"),
    "fsync no": ("docker-compose.yml", edit(CONF, r"^appendfsync everysec$", "appendfsync no"),
                 "appendfsync"),
    "no data volume": ("docker-compose.yml", drop_key("redis", "volumes"), "volume"),
    "no VOLUME in image": ("docker-compose.yml", edit(REDIS_DOCKERFILE, r"^VOLUME /data$", ""),
                           "VOLUME"),
    "port on every interface": ("docker-compose.yml", set_key("redis", "ports", ["6379:6379"]),
                                "127.0.0.1"),
    "port on 0.0.0.0": ("docker-compose.yml", set_key("mongo", "ports", ["0.0.0.0:27017:27017"]),
                        "127.0.0.1"),
    "port long form": ("docker-compose.yml", set_key(
        "redis", "ports", [{"target": 6379, "published": 6379}]), "127.0.0.1"),
    "host network": ("docker-compose.yml", set_key("mongo", "network_mode", "host"), "host"),
    "loader unconstrained": ("docker-compose.yml", edit(
        "Dockerfile", r"-c constraints\.txt ", ""), "constraints"),
    "dependency not pinned": ("docker-compose.yml", edit(
        "constraints.txt", r"^pymongo==.*$", ""), "pymongo"),
    "pin outside pyproject's range": ("docker-compose.yml", edit(
        "constraints.txt", r"^redis==.*$", "redis==4.6.0"), "redis"),
    "cluster node not refreshed": ("docker-compose.cluster.yml", set_env(
        "redis-2", "WBLOAD_CLUSTER_REFRESH", None), "REFRESHCLUSTER"),
    "cluster node with password": ("docker-compose.cluster.yml", set_env(
        "redis-3", "REDIS_PASSWORD", "x"), "password"),
    "cluster without init": ("docker-compose.cluster.yml", drop_key("cluster-init", "entrypoint"),
                             "cluster-init"),
    "cluster node without healthcheck": ("docker-compose.cluster.yml", drop_key(
        "redis-1", "healthcheck"), "healthcheck"),
    "cluster node port": ("docker-compose.cluster.yml", set_key(
        "redis-1", "ports", ["7001:6379"]), "127.0.0.1"),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_mutated_copy_is_rejected(name: str) -> None:
    compose_file, mutate, word = MUTATIONS[name]
    stack = Stack.load(compose_file)
    stack.compose = copy.deepcopy(stack.compose)
    mutate(stack)
    problems = all_problems(stack)
    assert any(word.lower() in p.lower() for p in problems), problems


# ------------------------------------------------------------------ compose config

def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True
    ).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("environment: neither `docker compose` nor `docker-compose` is installed")


def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*compose_command(), "--project-directory", str(REPO), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "REDIS_PASSWORD": "", "COMPOSE_PROFILES": "demo"})
    assert not check or result.returncode == 0, result.stderr
    return result


def test_compose_config_is_valid_and_ordered() -> None:
    config = yaml.safe_load(compose("-f", "docker-compose.yml", "config").stdout)
    services = config["services"]
    assert set(services) == {"redis", "mongo", "loader", "demo"}
    waits = services["loader"]["depends_on"]
    assert {n: w["condition"] for n, w in waits.items()} == {
        "redis": "service_healthy", "mongo": "service_healthy"}
    assert services["demo"]["depends_on"]["loader"]["condition"] == \
        "service_completed_successfully"
    assert "recipes/movies.py" in services["loader"]["command"]
    # The development default applies when REDIS_PASSWORD is empty, the same on both sides.
    password = services["redis"]["environment"]["REDIS_PASSWORD"]
    assert password and f":{password}@redis:" in services["loader"]["environment"]["REDIS_URL"]


def test_cluster_compose_config_is_valid() -> None:
    config = yaml.safe_load(compose("-f", "docker-compose.cluster.yml", "config").stdout)
    assert set(config["services"]) == {
        "redis-1", "redis-2", "redis-3", "cluster-init", "mongo", "loader"}


def test_compose_config_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    broken["services"]["loader"]["depends_on"]["nowhere"] = {"condition": "service_healthy"}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert compose("-f", str(path), "config", check=False).returncode != 0


# ------------------------------------------------------------------ behaviour, on the bench

def run_healthcheck(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which("redis-cli"):
        pytest.skip("environment: redis-cli is not installed (Debian's redis-tools)")
    parts = urlsplit(url)
    env = {**os.environ, "REDIS_HOST": parts.hostname or "127.0.0.1",
           "REDIS_PORT": str(parts.port or 6379), "REDIS_PASSWORD": parts.password or ""}
    return subprocess.run(["sh", str(REPO / REDIS_DIR / "healthcheck.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.e2e
def test_healthcheck_passes_on_gears_with_json(gears) -> None:
    result = run_healthcheck(gears.url)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_healthcheck_fails_on_redis_with_json_but_no_gears(plain_redis) -> None:
    assert run_healthcheck(plain_redis.url).returncode == 1


@pytest.mark.e2e
def test_healthcheck_fails_on_redis_without_modules(redis_factory) -> None:
    server = redis_factory("healthcheck-no-modules", appendonly=False, json=False)
    assert run_healthcheck(server.url).returncode == 1


@pytest.mark.e2e
def test_demo_loader_brings_the_51_movies_to_mongo(gears, mongo, mongo_db, gears_clean) -> None:
    from testbench.movies import deploy

    deployed = deploy(gears.url, mongo.url_from_redis, mongo_db)
    assert deployed.exit_code == 0, deployed.output
    env = {**os.environ, "REDIS_URL": gears.url, "MONGODB_URL": mongo.url,
           "MONGO_DATABASE": mongo_db.name, "DEMO_TIMEOUT": "90"}
    result = subprocess.run([sys.executable, str(REPO / "docker/demo/load_demo_movies.py")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "51/51 in Mongo" in result.stdout
    assert mongo_db.movies.count_documents({}) == 51
