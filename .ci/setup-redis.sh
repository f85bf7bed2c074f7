#!/usr/bin/env bash
# What the Redis tests need besides pip packages: redis-server and redis-cli (Debian's redis-server package),
# and a Redis answering on 127.0.0.1:6379 for the contract suite of redis bakes. Idempotent; run as root.
set -euo pipefail

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    # the machine's shared test Redis: in memory only; the AOF tests start a private redis-server of their own
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 1 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0
        sleep 0.1
    done
    echo "redis-server did not answer on 127.0.0.1:6379" >&2
    exit 1
fi
