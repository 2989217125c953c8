"""Version lines for the report header: what Redis and modules, what MongoDB a run talks to."""

from __future__ import annotations

from .targets import MongoTarget, redis_client


def redis_versions(url: str) -> str:
    """'redis 7.0.15; modules ReJSON 20803, rg 10213' from INFO server and MODULE LIST."""
    client = redis_client(url, socket_timeout=10)
    try:
        version = client.info("server").get("redis_version", "?")
        modules = client.execute_command("MODULE", "LIST")
    finally:
        client.close()
    names = []
    for module in modules:
        fields = module if isinstance(module, dict) else dict(zip(module[::2], module[1::2]))
        names.append(f"{fields.get('name')} {fields.get('ver')}")
    return f"redis {version}; modules {', '.join(names) or 'none'}"


def mongo_version(mongo: MongoTarget) -> str:
    """'mongodb-wire 7.0.0' from buildInfo."""
    client = mongo.client(serverSelectionTimeoutMS=5_000)
    try:
        return f"mongodb-wire {client.admin.command('buildInfo').get('version', '?')}"
    finally:
        client.close()
