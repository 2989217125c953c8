"""Replace a registered write-behind (`--force`, or repairing a half registration) without
losing a write.

The recipe's own handover (recipes/common/registrations.py) refuses an equal or older version,
so a replacement unregisters the old pair before RG.PYEXECUTE. Between that and the moment the
new KeysReader takes effect (when RG.PYEXECUTE returns) a write would reach no stream, and the
old stream's waiting changes would have no reader. So, first, a bridge KeysReader of its own
(registered and live before anything is unregistered) records every key written under the
prefix; once the new pair is live the bridge is unregistered, and the keys it recorded and
those still waiting in the old stream are resynced: the new KeysReader queues their state as
it is then.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from .errors import DeployFailed, WbloadError
from .plan import Plan
from .registrations import Registration, WriteBehind, read_registrations
from .resync import resync
from .streams import changed_keys
from .topology import Deployment

BRIDGE_NAME = "wbload.ForceBridge"  # not `<name>.KeysReader`: the recipe's handover ignores it


def bridge_recipe(name: str, key_prefix: str, stream: str) -> str:
    """A sync KeysReader adding each key written under `key_prefix` to `stream`."""
    desc = json.dumps({"name": BRIDGE_NAME, "for": name, "stream": stream,
                       "desc": f"record keys written under {key_prefix}:* while {name} is "
                               "replaced"})
    return (
        "from redisgears import executeCommand as execute\n"
        "from redisgears import getMyHashTag as hashtag\n"
        "def record(r):\n"
        "    if r['event'] == 'keymiss':\n"  # a read that missed: nothing changed
        "        return\n"
        f"    execute('XADD', {stream!r} + '-{{%s}}' % hashtag(), '*', '_original_key', r['key'],\n"
        "            '_event', r['event'] or '')\n"
        f"GB('KeysReader', desc={desc!r}).foreach(record).register(\n"
        f"    mode='sync', prefix={key_prefix + ':*'!r}, readValue=False)\n"
    )


def replace(deployment: Deployment, deploy_plan: Plan,
            push: Callable[[], WriteBehind]) -> WriteBehind:
    """Run `push` (unregister the old pair, RG.PYEXECUTE the new) with no write lost."""
    current = deploy_plan.current
    name = deploy_plan.rendered.name
    old_streams = [r.stream_pattern for r in deploy_plan.unregister_first
                   if r.reader == "StreamReader" and r.stream_pattern]
    prefix = current.key_prefix if current and not current.write_through else None
    bridge_stream = f"_{name}-stream-force-{uuid.uuid4().hex}"
    bridge = _register_bridge(deployment, name, prefix, bridge_stream) if prefix else None
    try:
        registered = push()
    except WbloadError as e:
        raise type(e)(f"{e}; changes that were waiting or written meanwhile are kept in "
                      f"orphan streams (`wbload status`): `wbload resync {name} --stream ...` "
                      "them after the next deploy") from None
    finally:
        if bridge is not None:
            deployment.entry.execute_command("RG.UNREGISTER", bridge)
    patterns = [*old_streams, *([f"{bridge_stream}-*"] if bridge else [])]
    streams = [(shard, shard.stream(pattern)) for pattern in patterns
               for shard in deployment.shards]
    if registered.stream_reader is not None and registered.key_prefix:
        under = f"{registered.key_prefix}:"
        for shard, stream in streams:
            if not shard.client.exists(stream):
                continue
            changed = changed_keys(shard, stream)
            keys = [k for k in changed if k.startswith(under)]
            resync(deployment, name, keys, {k for k in keys if changed[k]})
            if len(keys) == len(changed):  # else kept: an orphan `status` shows, to resync
                shard.client.delete(stream)
    return registered


def _register_bridge(deployment: Deployment, name: str, prefix: str, stream: str) -> str:
    """RG.PYEXECUTE the bridge; its registration id (it is live once this returns)."""
    deployment.entry.execute_command("RG.PYEXECUTE", bridge_recipe(name, prefix, stream))
    bridges = [r for r in read_registrations(deployment.entry) if _is_bridge(r, stream)]
    if len(bridges) != 1:
        raise DeployFailed(f"{name}: the temporary KeysReader that keeps writes during the "
                          "replacement did not register; nothing was changed")
    return bridges[0].id


def _is_bridge(registration: Registration, stream: str) -> bool:
    return registration.name == BRIDGE_NAME and registration.desc.get("stream") == stream
