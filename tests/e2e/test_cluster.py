"""What only a Redis Cluster has: nodes RedisGears must be told about (RG.REFRESHCLUSTER after
every start), and one shard restarting while the others go on. Everything else the
write-behind promises is tested on both topologies (the `deployment` fixture)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from testbench.cli import wbload
from testbench.cluster import GearsCluster
from testbench.deployment import Deployment
from testbench.movies import deploy, status, wait_drained, wait_mirrored
from testbench.polling import wait_for
from testbench.writer import Writer, redis_documents

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster(gears_cluster: GearsCluster) -> Iterator[GearsCluster]:
    """The cluster, reset (every node refreshed, nothing registered) before and after."""
    Deployment("cluster", gears_cluster).reset()
    yield gears_cluster
    Deployment("cluster", gears_cluster).reset()


def restartable(cluster: GearsCluster) -> GearsCluster:
    if not cluster.can_restart:
        pytest.skip(f"environment: the bench cannot restart nodes of a {cluster.kind} cluster "
                    "(a given cluster needs WBLOAD_TEST_RESTART_CMD)")
    return cluster


def test_an_unrefreshed_node_stops_deploy_until_wbload_refresh(cluster, mongo, mongo_db) -> None:
    restartable(cluster).restart_node(1, refresh=False)

    refused = deploy(cluster.url, mongo.url_from_redis, mongo_db)
    assert refused.exit_code == 5, refused.output
    (line,) = refused.stderr.strip().splitlines()
    node = cluster.nodes[1].rsplit("/", 1)[-1].split("@")[-1]
    assert node in line and "RG.REFRESHCLUSTER" in line and "wbload refresh" in line
    with cluster.node_client(0) as client:
        assert client.execute_command("RG.DUMPREGISTRATIONS") == []

    reported = wbload("status", "--redis-url", cluster.url)
    assert reported.exit_code == 5 and node in reported.stderr, reported.output

    refreshed = wbload("refresh", "--redis-url", cluster.url)
    assert refreshed.exit_code == 0, refreshed.output
    assert "RedisGears knows all 3 shards" in refreshed.stdout
    deployed = deploy(cluster.url, mongo.url_from_redis, mongo_db)
    assert deployed.exit_code == 0, deployed.output
    assert wbload("status", "--redis-url", cluster.url).exit_code == 0


def test_refresh_of_a_refreshed_cluster_changes_nothing(cluster) -> None:
    refreshed = wbload("refresh", "--redis-url", cluster.nodes[2])
    assert refreshed.exit_code == 0, refreshed.output
    assert refreshed.stdout.count(": refreshed") >= 3


def test_one_shard_restarted_twice_under_writes_loses_nothing(cluster, mongo, mongo_db) -> None:
    restartable(cluster)
    deployed = deploy(cluster.url, mongo.url_from_redis, mongo_db,
                      "--param", "RETRY_INTERVAL_S=1")
    assert deployed.exit_code == 0, deployed.output
    writer = Writer(cluster.url)
    writer.start()
    try:
        wait_for(lambda: mongo_db.movies.count_documents({}) > 0, 30,
                 "the first writes to reach Mongo")
        for _ in range(2):  # twice: the second restart loads what the first one left
            time.sleep(1)
            with writer.paused():  # the app waits while its shard is down, as a client would
                cluster.restart_node(1)
        time.sleep(2)
    finally:
        final = writer.finish()
    assert writer.writes > 200, f"only {writer.writes} writes"
    client = cluster.client()
    try:
        assert redis_documents(client, list(final)) == final, "Redis lost writes"
    finally:
        client.close()
    wait_mirrored(mongo_db, final)
    wait_drained(cluster.url)
    report = status(cluster.url)
    (wb,) = report["write_behinds"]
    assert len(wb["shards"]) == 3 and all(s["complete"] for s in wb["shards"])
    pins = {s["running"] for s in report["gears_pymongo"]}
    assert pins == {wb["pymongo_pin"]}, json.dumps(report["gears_pymongo"])
