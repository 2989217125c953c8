"""RedisGears and MongoDB in Docker containers (testcontainers) on one shared network.

RedisGears is the image docker-compose.yml runs, built from docker/redis/ (Redis 6.2, RedisGears
1.2 with its Python plugin, RedisJSON 2.4, AOF); WBLOAD_TEST_GEARS_IMAGE names another instead.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

GEARS_IMAGE_DIR = Path(__file__).resolve().parents[2] / "docker" / "redis"
GEARS_IMAGE_TAG = "wbload-redis:gears1.2.12-json2.4.10"  # as docker-compose.yml tags it
GEARS_IMAGE = os.environ.get("WBLOAD_TEST_GEARS_IMAGE") or None  # None: build GEARS_IMAGE_DIR
MONGO_IMAGE = os.environ.get("WBLOAD_TEST_MONGO_IMAGE", "mongo:7.0.14")
MONGO_ALIAS = "wbload-mongo"


def gears_image() -> str:
    """WBLOAD_TEST_GEARS_IMAGE, else docker/redis built (Docker's cache makes rebuilds quick)."""
    if GEARS_IMAGE:
        return GEARS_IMAGE
    from testcontainers.core.image import DockerImage

    DockerImage(path=GEARS_IMAGE_DIR, tag=GEARS_IMAGE_TAG, clean_up=False).build()
    return GEARS_IMAGE_TAG


class ContainerServer:
    """One container exposing one port; stop/start keep the container (its port may move)."""

    def __init__(self, container: DockerContainer, port: int, scheme: str) -> None:
        self.container = container
        self._port = port
        self._scheme = scheme

    @property
    def url(self) -> str:
        c = self.container
        return f"{self._scheme}://{c.get_container_host_ip()}:{c.get_exposed_port(self._port)}"

    def stop(self) -> None:
        self.container.get_wrapped_container().stop(timeout=10)

    def start(self, timeout: float = 60.0) -> None:
        self.container.get_wrapped_container().start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                host = self.container.get_container_host_ip()
                port = self.container.get_exposed_port(self._port)
                with socket.create_connection((host, port), 1):
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def log_tail(self, lines: int = 40) -> str:
        out, err = self.container.get_logs()
        text = (out + err).decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def remove(self) -> None:
        self.container.stop()


class Containers:
    """Owns the docker network and every container the bench started."""

    def __init__(self) -> None:
        from testcontainers.core.network import Network

        self.network = Network().create()
        self._servers: list[ContainerServer] = []

    def _run(
        self, image: str, port: int, scheme: str, ready: str, alias: str | None
    ) -> ContainerServer:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        c = DockerContainer(image).with_exposed_ports(port).with_network(self.network)
        if alias:
            c = c.with_network_aliases(alias)
        c.waiting_for(LogMessageWaitStrategy(ready).with_startup_timeout(300)).start()
        server = ContainerServer(c, port, scheme)
        self._servers.append(server)
        return server

    def mongo(self) -> ContainerServer:
        return self._run(MONGO_IMAGE, 27017, "mongodb", "Waiting for connections", MONGO_ALIAS)

    def gears(self) -> ContainerServer:
        # No REDIS_PASSWORD: the bench's URLs carry none (testcontainers maps a random port).
        return self._run(gears_image(), 6379, "redis", "Ready to accept connections", None)

    def close(self) -> None:
        for server in reversed(self._servers):
            server.remove()
        self.network.remove()
