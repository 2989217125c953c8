#!/bin/sh
# Healthy only when RedisGears' Python plugin answers (RG.PYSTATS) and RedisJSON is loaded
# (MODULE LIST has ReJSON): a Redis that merely listens is not enough for the loader.
# In cluster mode (a node that has joined a cluster) it also sends RG.REFRESHCLUSTER when Gears
# does not know the cluster yet ("no cluster mode"), and is healthy only once Gears does.
# --refresh-when-up (entrypoint.sh, in the background): wait for Redis and a joined, `ok` cluster,
# refresh once, exit.
set -u

# redis-cli reads the password from REDISCLI_AUTH (not from its command line); an empty one
# would make it send a failing AUTH and skip the command.
if [ -n "${REDIS_PASSWORD:-}" ]; then
    REDISCLI_AUTH=$REDIS_PASSWORD
    export REDISCLI_AUTH
fi

cli() {
    redis-cli -h "${REDIS_HOST:-127.0.0.1}" -p "${REDIS_PORT:-6379}" "$@" 2>/dev/null
}

modules_ready() {
    cli RG.PYSTATS | grep -q '^TotalAllocated$' && cli MODULE LIST | grep -qx 'ReJSON'
}

cluster_joined() {
    info=$(cli CLUSTER INFO) || return 1
    printf '%s\n' "$info" | grep -q '^cluster_state:ok' \
        && ! printf '%s\n' "$info" | grep -q '^cluster_known_nodes:1\b'
}

gears_knows_cluster() {
    ! cli RG.INFOCLUSTER | grep -qx 'no cluster mode'
}

refresh_if_needed() {
    gears_knows_cluster || { cli RG.REFRESHCLUSTER >/dev/null; gears_knows_cluster; }
}

if [ "${1:-}" = --refresh-when-up ]; then
    while ! { modules_ready && cluster_joined; }; do sleep 0.2; done
    refresh_if_needed
    exit $?
fi

modules_ready || exit 1
if cli INFO cluster | grep -q '^cluster_enabled:1'; then
    # Not joined yet: healthy, so the one-shot that creates the cluster can start.
    cli CLUSTER INFO | grep -q '^cluster_known_nodes:1\b' && exit 0
    cluster_joined || exit 1
    refresh_if_needed || exit 1
fi
exit 0
