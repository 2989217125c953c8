#!/bin/sh
# One-shot for docker-compose.cluster.yml: join CLUSTER_NODES ("host:port ...") into one cluster
# of masters (unless they already are one: the data volumes keep nodes.conf), wait until every
# node says cluster_state:ok, then RG.REFRESHCLUSTER on every node and check that Gears knows
# the cluster (RG.INFOCLUSTER no longer answers "no cluster mode"; ../shared/gears/CLUSTER.md).
# Each node's entrypoint.sh refreshes itself after its own later restarts.
set -eu

nodes=${CLUSTER_NODES:?set CLUSTER_NODES to "host:port host:port ..."}
timeout=${CLUSTER_INIT_TIMEOUT:-120}

cli() {  # cli host:port ARGS...
    addr=$1
    shift
    redis-cli -h "${addr%:*}" -p "${addr##*:}" "$@"
}

wait_for() {  # wait_for WHAT COMMAND...
    what=$1
    shift
    waited=0
    until "$@" >/dev/null 2>&1; do
        if [ "$waited" -ge "$timeout" ]; then
            echo "cluster-init: error: no $what after ${timeout}s" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

cluster_ok() { cli "$1" CLUSTER INFO | grep -q '^cluster_state:ok'; }
alone() { cli "$1" CLUSTER INFO | grep -q '^cluster_known_nodes:1\b'; }
gears_knows_cluster() { ! cli "$1" RG.INFOCLUSTER | grep -qx 'no cluster mode'; }
# Right after a refresh the shards may still be greeting each other: a registration sent then
# fails after 30 s ("Execution max idle reached") and registers nothing. A cluster-wide run
# that returns one record per shard says they are connected.
shards_answer() {
    [ "$(cli "$1" RG.PYEXECUTE "GB('ShardsIDReader').run()" | grep -c .)" = "$count" ]
}

# Redis 6.2's CLUSTER MEET takes IP addresses only.
ips=""
count=0
for node in $nodes; do
    count=$((count + 1))
    ip=$(getent hosts "${node%:*}" | awk '{ print $1; exit }')
    [ -n "$ip" ] || { echo "cluster-init: error: cannot resolve ${node%:*}" >&2; exit 1; }
    ips="$ips $ip:${node##*:}"
done

first=${nodes%% *}
if alone "$first"; then
    echo "cluster-init: creating a cluster of$ips"
    # shellcheck disable=SC2086  # one argument per node
    redis-cli --cluster create $ips --cluster-replicas 0 --cluster-yes
else
    echo "cluster-init: $first already belongs to a cluster"
fi

for node in $nodes; do
    wait_for "cluster_state:ok on $node" cluster_ok "$node"
done
for node in $nodes; do
    cli "$node" RG.REFRESHCLUSTER >/dev/null
    wait_for "cluster in RG.INFOCLUSTER of $node" gears_knows_cluster "$node"
    echo "cluster-init: $node: RedisGears refreshed"
done
wait_for "cluster-wide RedisGears run answered by all $count shards" shards_answer "$first"
echo "cluster-init: done; RedisGears runs on all $count shards"
