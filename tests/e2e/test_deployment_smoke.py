"""The `deployment` fixture on both topologies: a JSON.SET through the topology's client fires a
KeysReader on the shard that owns the key, and only there."""

from __future__ import annotations

import pytest

from testbench import gears_ops
from testbench.deployment import Deployment

pytestmark = pytest.mark.e2e

RECIPE = (
    "GB('KeysReader', desc='{\"name\": \"Smoke.KeysReader\"}')"
    ".foreach(lambda r: execute('SET', 'seen{%s}' % hashtag(), r['key']))"
    ".register(prefix='doc:*', mode='sync', eventTypes=['json.set'])"
)
# one key per slot range of a 3-master cluster: 0-5460, 5461-10922, 10923-16383
KEYS = ("doc:1{06S}", "doc:2{8M}", "doc:3{63n}")


def test_json_set_fires_the_keysreader_of_its_shard(deployment: Deployment) -> None:
    primaries = deployment.primary_clients()
    assert primaries[-1].execute_command("RG.PYEXECUTE", RECIPE) == "OK"
    client = deployment.client()
    for key in KEYS:
        assert client.execute_command("JSON.SET", key, "$", '{"a": 1}') == "OK"

    per_shard = [gears_ops.registration_named(p, "Smoke.KeysReader") for p in primaries]
    triggered = [reg["RegistrationData"]["numTriggered"] for reg in per_shard if reg]
    if deployment.is_cluster:
        assert len({reg["id"] for reg in per_shard if reg}) == 1  # one id on every shard
        assert triggered == [1, 1, 1]
        for key in KEYS:  # each shard's function saw its own key, under its own hashtag
            tag = key[key.index("{"):]
            assert client.get(f"seen{tag}") == key
    else:
        assert triggered == [3]
        assert client.get("seen{06S}") == KEYS[-1]
    merged = gears_ops.registration_named(client, "Smoke.KeysReader")
    assert merged is not None
    assert merged["RegistrationData"]["numSuccess"] == len(KEYS)
