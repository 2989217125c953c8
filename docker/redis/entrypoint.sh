#!/bin/sh
# Starts redis-server with /etc/wbload/redis.conf plus any arguments (e.g. --cluster-enabled yes).
# REDIS_PASSWORD, when set, goes into a config file readable only by redis (not into `ps`).
# WBLOAD_CLUSTER_REFRESH=1: send RG.REFRESHCLUSTER once the cluster is up, after every start
# (../shared/gears/CLUSTER.md: Gears learns the topology only from it; peers never push it).
set -eu

conf=/etc/wbload/redis.conf
if [ -n "${REDIS_PASSWORD:-}" ]; then
    umask 077
    conf=/tmp/wbload-redis.conf
    escaped=$(printf '%s' "$REDIS_PASSWORD" | sed 's/\\/\\\\/g; s/"/\\"/g')
    printf 'include /etc/wbload/redis.conf\nrequirepass "%s"\nmasterauth "%s"\n' \
        "$escaped" "$escaped" > "$conf"
fi

if [ "${WBLOAD_CLUSTER_REFRESH:-0}" = 1 ]; then
    # RedisGears 1.2 connects to its peers without AUTH after RG.REFRESHCLUSTER on OSS
    # (src/cluster.c, Cluster_Refresh: CreateNode(..., password NULL, ...)), so a cluster node
    # with requirepass would never hear from its peers: refuse instead of failing quietly.
    if [ -n "${REDIS_PASSWORD:-}" ]; then
        echo "entrypoint: REDIS_PASSWORD cannot be used with WBLOAD_CLUSTER_REFRESH=1 (RedisGears 1.2 cluster links do not AUTH); keep the cluster on a private network instead" >&2
        exit 2
    fi
    # Detached: the subshell exits at once and PID 1 (compose's `init: true`) reaps the helper.
    ( /usr/local/bin/healthcheck.sh --refresh-when-up >/dev/null 2>&1 & )
fi

exec redis-server "$conf" "$@"
