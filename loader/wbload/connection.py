"""Where Redis is and how to log in: one place that turns operator options into a client."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import RedisUnreachable, UsageError
from .redact import mask_url, url_password

SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RedisTarget:
    """A Redis server as the operator named it (URL plus TLS files)."""

    url: str = "redis://localhost:6379"
    tls_ca_cert: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    timeout: float = 120.0
    protocol: int | None = None

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in SCHEMES:
            raise UsageError(
                f"unsupported Redis URL {mask_url(self.url)!r}: use redis://, rediss:// or unix://"
            )

    @property
    def display(self) -> str:
        """The URL as it may be printed (password masked)."""
        return mask_url(self.url)

    @property
    def secrets(self) -> list[str | None]:
        return [url_password(self.url)]

    def client(
        self, decode_responses: bool = True, address: tuple[str, int] | None = None
    ) -> redis.Redis:
        """A redis-py client (not yet connected); str replies unless told otherwise.

        `address` is another node of the same deployment (a cluster's primary), reached with
        the same login and TLS settings.
        """
        options: dict = {
            "decode_responses": decode_responses,
            "socket_connect_timeout": 5,
            "socket_timeout": self.timeout,
            # Never resend a command: a resent RG.PYEXECUTE would run the recipe twice.
            "retry": Retry(NoBackoff(), 0),
        }
        if self.protocol:
            options["protocol"] = self.protocol
        if self.tls_ca_cert:
            options["ssl_ca_certs"] = self.tls_ca_cert
        if self.tls_cert:
            options["ssl_certfile"] = self.tls_cert
        if self.tls_key:
            options["ssl_keyfile"] = self.tls_key
        url = self.url if address is None else _with_address(self.url, *address)
        try:
            return redis.Redis.from_url(url, **options)
        except ValueError as e:
            raise UsageError(f"bad Redis URL {self.display}: {e}") from None


def _with_address(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    host = f"[{host}]" if ":" in host else host
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def connect(target: RedisTarget, wait: float = 0.0) -> redis.Redis:
    """A client that has answered PING; retries for `wait` seconds while Redis is starting."""
    deadline = time.monotonic() + wait
    client = target.client()
    while True:
        try:
            client.ping()
            return client
        except redis.AuthenticationError as e:
            raise RedisUnreachable(
                f"Redis at {target.display} refused the login ({e}); "
                "check the user and password in --redis-url / REDIS_URL"
            ) from None
        except redis.ResponseError as e:
            if "NOAUTH" in str(e) or "WRONGPASS" in str(e):
                raise RedisUnreachable(
                    f"Redis at {target.display} needs a password ({e}); "
                    "put it in --redis-url / REDIS_URL as redis://user:password@host:port"
                ) from None
            raise
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            if time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            hint = "is it running and reachable? "
            hint += "--wait SECONDS waits for it" if not wait else f"waited {wait:g}s"
            raise RedisUnreachable(
                f"cannot connect to Redis at {target.display}: {_reason(e)}; {hint}"
            ) from None


def _reason(error: Exception) -> str:
    text = str(error).strip().rstrip(".")
    return text.splitlines()[0] if text else type(error).__name__
