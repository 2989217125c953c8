"""`wbload verify`: prove a deployed write-behind works end to end with a probe document."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymongo
import redis
from pymongo.errors import PyMongoError

from .errors import NotDeployed, UsageError, VerifyFailed, WrongPymongo
from .gears_errors import one_line
from .interpreter import check_pins, pinned_pymongo
from .redact import mask_url
from .registrations import WriteBehind, read_registrations, write_behind, write_behinds
from .render import RenderedRecipe
from .streams import backlog
from .topology import Deployment, Shard

PROBE_MARK = "__wbload_probe__"


@dataclass(frozen=True)
class Step:
    """One verified step (insert, update, delete) and how long it took to reach Mongo."""

    name: str
    seconds: float


def mongo_url_for(deployment: Deployment, recipe_url: str) -> str:
    """The recipe's MONGO_URL as this machine can use it (resolving env:VAR and redis:KEY)."""
    if recipe_url.startswith("env:"):
        url = os.environ.get(recipe_url[4:], "")
        where = f"the environment variable {recipe_url[4:]} (set here, or --check-mongo-url)"
    elif recipe_url.startswith("redis:"):
        key = recipe_url[6:]
        url = str(deployment.keyed(key).get(key) or "")
        where = f"the Redis key {key} (or give --check-mongo-url)"
    else:
        return recipe_url
    if not url:
        raise UsageError(f"the recipe's MONGO_URL is {recipe_url}, and there is no URL in {where}")
    return url


def probe_keys(deployment: Deployment, prefix: str) -> dict[str, tuple[Shard, str]]:
    """One probe key per shard: key id -> (shard, key)."""
    probes: dict[str, tuple[Shard, str]] = {}
    for shard in deployment.shards:
        while True:
            key_id = f"{PROBE_MARK}{uuid.uuid4().hex}"
            if shard.owns(f"{prefix}:{key_id}"):
                probes[key_id] = (shard, f"{prefix}:{key_id}")
                break
    return probes


def verify(
    deployment: Deployment,
    rendered: RenderedRecipe,
    mongo_url: str,
    timeout: float,
    on_step: Callable[[Step], None] = lambda step: None,
) -> list[Step]:
    """Write, update and delete a probe key on every shard; wait for each to show in Mongo."""
    values = rendered.values
    wb = write_behind(deployment, rendered.name)
    if wb is None or not wb.complete:
        raise NotDeployed(f"{rendered.name} is not deployed (see `wbload status`); "
                          "deploy it before verifying")
    deployment.require_gears_ready()
    pinned = pinned_pymongo(wb.current[0].requirements)
    errors = check_pins(deployment, {rendered.name: pinned}).errors if pinned else []
    if errors:
        raise WrongPymongo(errors[0])
    prefix, key_field = str(values["KEY_PREFIX"]), str(values["KEY_FIELD"])
    probes = probe_keys(deployment, prefix)
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=5000)
    collection = mongo[str(values["MONGO_DATABASE"])][str(values["MONGO_COLLECTION"])]
    try:
        try:
            mongo.admin.command("ping")
        except PyMongoError as e:
            raise VerifyFailed(f"cannot reach Mongo at {mask_url(mongo_url)} from here: "
                               f"{one_line(str(e), 150)}") from None
        steps = []
        for name in ("insert", "update", "delete"):
            started = time.monotonic()
            for shard, key in probes.values():
                _write_probe(shard.client, key, name)
            deadline = started + timeout
            waiting = dict(probes)
            while waiting:
                try:
                    found = {d[key_field]: d for d in collection.find(
                        {key_field: {"$in": list(waiting)}})}
                except PyMongoError as e:
                    raise VerifyFailed(f"lost Mongo at {mask_url(mongo_url)} while waiting for "
                                       f"the probe: {one_line(str(e), 150)}") from None
                for key_id in list(waiting):
                    if _arrived(found.get(key_id), name):
                        del waiting[key_id]
                if not waiting:
                    break
                if time.monotonic() > deadline:
                    shard = next(iter(waiting.values()))[0]
                    where = f" on shard {shard.address}" if deployment.is_cluster else ""
                    raise VerifyFailed(
                        f"{rendered.name}: the probe's {name}{where} did not reach Mongo in "
                        f"{timeout:g}s: {_diagnose(deployment, shard, rendered.name)}")
                time.sleep(0.05)
            steps.append(Step(name, time.monotonic() - started))
            on_step(steps[-1])
        return steps
    finally:
        for shard, key in probes.values():
            with contextlib.suppress(redis.RedisError):
                shard.client.delete(key)
        with contextlib.suppress(PyMongoError):
            collection.delete_many({key_field: {"$in": list(probes)}})
        mongo.close()


def _write_probe(client: redis.Redis, key: str, step: str) -> None:
    if step == "delete":
        client.delete(key)
        return
    document = {"wbloadProbe": True, "step": step, "at": time.time()}
    client.execute_command("JSON.SET", key, "$", json.dumps(document))


def _arrived(document: dict[str, Any] | None, step: str) -> bool:
    if step == "delete":
        return document is None
    return document is not None and document.get("step") == step


def _diagnose(deployment: Deployment, shard: Shard, name: str) -> str:
    """Why changes of `shard` are not reaching Mongo, as far as Redis can tell."""
    wb: WriteBehind | None = write_behinds(read_registrations(shard.client)).get(name)
    if wb is None or wb.stream_reader is None:
        return "it is no longer registered"
    reader = wb.stream_reader
    waiting = backlog(shard, reader.stream_pattern)
    error = one_line(reader.last_error)
    keys_error = one_line(wb.keys_reader.last_error) if wb.keys_reader else None
    if wb.draining:
        return (f"version {wb.draining[0].version} is still draining; "
                f"{waiting} change(s) wait behind it")
    if waiting and error:
        return f"{waiting} change(s) stuck in the stream, last error: {error}"
    if waiting:
        return f"{waiting} change(s) waiting in the stream; the StreamReader has not run"
    if error:
        return f"the StreamReader's last error: {error}"
    if keys_error:
        return f"the KeysReader failed to queue the change: {keys_error}"
    return "nothing is waiting in the stream: is the recipe's KEY_PREFIX the app's?"
