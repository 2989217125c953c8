"""The cluster bench itself: three primaries that cluster clients reach through RedisGears
(the stand-ins, or a real cluster with WBLOAD_TEST_CLUSTER_URL)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import redis

from testbench import gears_ops
from testbench.cluster import GearsCluster
from testbench.deployment import Deployment

pytestmark = pytest.mark.e2e

# keys whose slots fall in 0-5460, 5461-10922 and 10923-16383
SHARD_KEYS = ("rec:0{06S}", "rec:0{8M}", "rec:0{63n}")


def ports(cluster: GearsCluster) -> set[int]:
    return {int(urlsplit(u).port or 6379) for u in cluster.nodes}


def test_topology_names_the_nodes_clients_reach(gears_cluster: GearsCluster) -> None:
    assert len(gears_cluster.nodes) == 3
    with gears_cluster.node_client(1) as node:
        slots = node.execute_command("CLUSTER", "SLOTS")
    announced = {int(entry[2][1]) for entry in slots}
    assert announced == ports(gears_cluster)


def test_cluster_client_routes_to_every_shard(gears_cluster: GearsCluster) -> None:
    client = gears_cluster.client()
    try:
        owners = set()
        for key in SHARD_KEYS:
            client.set(key, "v")
            assert client.get(key) == "v"
            owners.add(client.get_node_from_key(key).port)
            client.delete(key)
        assert owners == ports(gears_cluster)
    finally:
        client.close()


def test_plain_client_gets_moved_to_the_owner(gears_cluster: GearsCluster) -> None:
    with gears_cluster.node_client(0) as node, pytest.raises(redis.ResponseError) as err:
        node.execute_command("SET", SHARD_KEYS[2], "v")
    slot, hostport = str(err.value).split()[-2:]
    assert slot == "10923"
    assert int(hostport.rsplit(":", 1)[1]) in ports(gears_cluster)


def test_restarted_node_needs_a_refresh(gears_cluster: GearsCluster) -> None:
    if not gears_cluster.can_restart:
        pytest.skip(f"the bench cannot restart nodes of a {gears_cluster.kind} cluster")
    probe = ("GB('KeysReader', desc='restart probe').foreach(lambda r: execute('SET', "
             "'seen{%s}' % hashtag(), r['key'])).register(prefix='rp:*', mode='sync', "
             "eventTypes=['set'])")
    with gears_cluster.node_client(0) as node:
        node.execute_command("RG.PYEXECUTE", probe)
    try:
        gears_cluster.restart_node(1, refresh=False)
        with gears_cluster.node_client(1) as node:
            assert node.execute_command("RG.INFOCLUSTER") == "no cluster mode"
            assert [r[5] for r in node.execute_command("RG.DUMPREGISTRATIONS")] == [
                "restart probe"]
            node.set("rp:1{8M}", "v")  # hashtag() is '06S' there: the function's SET fails
            assert node.get("seen{8M}") is None
            node.execute_command("RG.REFRESHCLUSTER")
            assert node.execute_command("RG.INFOCLUSTER")[1] == node.execute_command(
                "CLUSTER", "MYID")
            node.set("rp:2{8M}", "v")
            assert node.get("seen{8M}") == "rp:2{8M}"
    finally:
        for i in range(3):
            with gears_cluster.node_client(i) as node:
                node.execute_command("RG.REFRESHCLUSTER")
        primaries = gears_cluster.primary_clients()
        gears_ops.reset(primaries)
        for client in primaries:
            client.close()


def test_deployment_reset_refreshes_a_node_left_unrefreshed(gears_cluster: GearsCluster) -> None:
    if not gears_cluster.can_restart:
        pytest.skip(f"the bench cannot restart nodes of a {gears_cluster.kind} cluster")
    gears_cluster.restart_node(2, refresh=False)
    Deployment("cluster", gears_cluster).reset()
    with gears_cluster.node_client(2) as node:
        assert node.execute_command("RG.INFOCLUSTER")[0] == "MyId"
        results, errors = node.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').run()")
    assert (len(results), errors) == (3, [])
