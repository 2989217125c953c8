"""docker-compose.yml is valid and wires the loader after healthy Redis and Mongo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def compose_command() -> list[str]:
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True
    ).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("environment: neither `docker compose` nor `docker-compose` is installed")


def compose(*args: str) -> str:
    result = subprocess.run([*compose_command(), *args], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compose_config_is_valid_and_ordered() -> None:
    assert set(compose("config", "--services").split()) == {"mongo", "redis", "loader"}
    config = compose("config")
    loader = config.split("loader:", 1)[1].split("\n  mongo:", 1)[0]
    assert loader.count("condition: service_healthy") == 2
    assert "recipes/movies.py" in loader and "deploy" in loader
    assert config.count("healthcheck:") == 2
    assert "RG.PYSTATS" in config  # healthy means Gears answers, not just that Redis listens
