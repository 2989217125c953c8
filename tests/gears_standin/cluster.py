"""Cluster mode: what a stand-in in front of a Redis Cluster primary knows of its peers, and how
it talks to them.

Like RedisGears 1.2 on OSS, the topology is learnt only from RG.REFRESHCLUSTER (CLUSTER NODES
of the upstream), and must be after every start.  Until then the node acts as a single shard:
node id 0...0, hashtag '06S', RG.INFOCLUSTER 'no cluster mode', and it refuses what its peers
send it (they then give up after Gears' max idle time).

Peers are the other primaries' stand-ins, reached on the port their redis-server announces
(`cluster-announce-port`).  A message is ``RG.STANDINPEER <op> <sender id> <payload>`` on
a fresh connection; payload and reply are cloudpickled.
"""
import binascii
import logging
import os

import cloudpickle

from .resp import Conn, ReplyError
from .slots import slot_hashtag

log = logging.getLogger("gears_standin.cluster")

ZERO_ID = "0" * 40
SINGLE_SHARD_TAG = "06S"
PEER_COMMAND = "RG.STANDINPEER"
NOT_REFRESHED = "STANDIN not refreshed"
PEER_TIMEOUT = 300  # a peer may pip-install a registration's requirements


def new_run_id():
    return binascii.hexlify(os.urandom(20)).decode()


class Shard(object):
    """One primary as RG.INFOCLUSTER lists it."""

    def __init__(self, node_id, ip, port, min_slot, max_slot):
        self.id = node_id
        self.ip = ip
        self.port = port
        self.min_slot = min_slot
        self.max_slot = max_slot
        self.runid = None
        self.pending = 0

    def info(self):
        return ["id", self.id, "ip", self.ip, "port", self.port, "unixSocket", "None",
                "runid", self.runid, "minHslot", self.min_slot, "maxHslot", self.max_slot,
                "pendingMessages", self.pending]


class PeerUnavailable(Exception):
    """A peer that did not take the message (not refreshed, down, unreachable)."""


def parse_cluster_nodes(text):
    """Primaries with slots from CLUSTER NODES: [(id, ip, port, min_slot, max_slot, myself)]."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = fields[2].split(",")
        if "master" not in flags:
            continue
        starts, ends = [], []
        for token in fields[8:]:
            if token.startswith("["):
                continue  # a slot being migrated/imported
            first, _, last = token.partition("-")
            starts.append(int(first))
            ends.append(int(last or first))
        if not starts:
            continue
        addr = fields[1].split("@")[0].split(",")[0]
        ip, _, port = addr.rpartition(":")
        out.append((fields[0], ip, int(port), min(starts), max(ends), "myself" in flags))
    return out


class ClusterState(object):
    def __init__(self, engine):
        self.engine = engine
        self.enabled = False     # the upstream runs with cluster-enabled yes
        self.refreshed = False   # RG.REFRESHCLUSTER since this start
        self.my_id = None
        self.run_id = None
        self.shards = []         # every primary, this one included

    # ------------------------------------------------------------ discovery
    def detect(self):
        info = self.engine.call("INFO", "cluster")
        text = info.decode() if isinstance(info, bytes) else ""
        self.enabled = "cluster_enabled:1" in text
        if self.enabled:
            self.my_id = self.engine.call("CLUSTER", "MYID").decode()
            log.info("upstream is a cluster node, id %s; waiting for RG.REFRESHCLUSTER",
                     self.my_id)
        return self.enabled

    @property
    def active(self):
        """Cluster mode as Gears sees it: enabled and refreshed."""
        return self.enabled and self.refreshed

    @property
    def node_id(self):
        return self.my_id if self.active else ZERO_ID

    def me(self):
        return next((s for s in self.shards if s.id == self.my_id), None)

    def peers(self):
        return [s for s in self.shards if s.id != self.my_id] if self.active else []

    def hashtag(self):
        me = self.me() if self.active else None
        return slot_hashtag(me.min_slot) if me is not None else SINGLE_SHARD_TAG

    def refresh(self):
        if not self.enabled:
            return
        reply = self.engine.call("CLUSTER", "NODES")
        if isinstance(reply, ReplyError):
            raise RuntimeError("CLUSTER NODES failed: %s" % reply)
        old = {s.id: s for s in self.shards}
        shards = []
        for node_id, ip, port, first, last, _myself in parse_cluster_nodes(reply.decode()):
            shard = Shard(node_id, ip, port, first, last)
            if node_id in old:
                shard.runid, shard.pending = old[node_id].runid, old[node_id].pending
            shards.append(shard)
        self.run_id = new_run_id()
        self.shards = sorted(shards, key=lambda s: s.min_slot)
        self.refreshed = True
        me = self.me()
        if me is not None:
            me.runid = self.run_id
        log.info("refreshed: %s", [(s.id, s.port, s.min_slot, s.max_slot) for s in shards])
        for peer in self.peers():
            try:
                peer.runid = self.send(peer, "HELLO", self.run_id, timeout=5)
                peer.pending = 0
            except PeerUnavailable as e:
                log.info("peer %s:%d did not answer hello: %s", peer.ip, peer.port, e)

    def info(self):
        if not self.active:
            return "no cluster mode"
        shards = sorted(self.shards, key=lambda s: -s.min_slot)
        return ["MyId", self.my_id, "MyRunId", self.run_id, [s.info() for s in shards]]

    # ------------------------------------------------------------ messages
    def send(self, peer, op, payload, timeout=PEER_TIMEOUT):
        """Deliver one message to a peer and return its (unpickled) answer."""
        try:
            conn = Conn(peer.ip, peer.port, timeout=timeout)
        except OSError as e:
            raise PeerUnavailable(str(e))
        try:
            reply = conn.call(PEER_COMMAND, op, self.my_id, cloudpickle.dumps(payload))
        except (OSError, ConnectionError) as e:
            raise PeerUnavailable(str(e))
        finally:
            conn.close()
        if isinstance(reply, ReplyError):
            if str(reply).startswith(NOT_REFRESHED):
                raise PeerUnavailable(str(reply))
            raise RuntimeError("peer %s:%d: %s" % (peer.ip, peer.port, reply))
        return cloudpickle.loads(reply)

    def broadcast(self, op, payload):
        """Send to every peer in turn: [(peer, answer or the exception)]."""
        out = []
        for peer in self.peers():
            try:
                out.append((peer, self.send(peer, op, payload)))
            except Exception as e:
                if isinstance(e, PeerUnavailable) and peer.runid is not None:
                    peer.pending += 1  # Gears queues only for a peer it was connected to
                log.warning("%s to %s:%d failed: %s", op, peer.ip, peer.port, e)
                out.append((peer, e))
        return out

    def on_hello(self, sender_id, run_id):
        for shard in self.shards:
            if shard.id == sender_id:
                shard.runid = run_id
                shard.pending = 0
        return self.run_id
