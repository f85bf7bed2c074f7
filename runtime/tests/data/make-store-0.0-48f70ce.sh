#!/usr/bin/env bash
# Writes store-0.0-48f70ce.db with the code of the release before the store kept a schema version (commit 48f70ce,
# baked from its template): README.md says how to get that bake. Usage: make-store-0.0-48f70ce.sh BAKE_SRC OUT_DB
set -euo pipefail
bake_src=$1
out_db=$2
python=${PYTHON:-/tmp/rtvenv/bin/python}
port=${PORT:-8765}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export PYTHONPATH=$bake_src
export SERVICE_BUS_URL=sqlite:///$work/events.db
service() { "$python" -m event_service "$@"; }

serve() {  # serve [--no-workers]: start the service and wait until it answers
    if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
        echo "port $port is taken: set PORT" >&2
        exit 1
    fi
    "$python" -m event_service serve --port "$port" "$@" &  # not through service(): $! is then the server itself
    server=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.1
    done
    echo "the service did not start" >&2
    exit 1
}

stop() {  # a graceful stop, as a deployment does it; uvicorn drains, then exits by the signal it caught (143)
    kill -TERM "$server"
    local status=0
    wait "$server" || status=$?
    if (( status != 0 && status != 143 )); then
        echo "the service stopped with $status" >&2
        exit 1
    fi
}

send() {  # send N: event evt-N, an order placed or (every fourth) cancelled; ordering key customer-1..3 or none
    local n=$1 id type data subject
    id=$(printf 'evt-%02d' "$n")
    if (( n % 4 == 0 )); then
        type=com.example.order.cancelled
        data="{\"order_id\": \"o-$((n - 1))\", \"reason\": \"changed my mind\"}"
    else
        type=com.example.order.placed
        data="{\"order_id\": \"o-$n\", \"customer_id\": \"c-$((n % 3 + 1))\", \"amount_cents\": $((n * 100)), \"currency\": \"EUR\"}"
    fi
    subject=(--subject "customer-$((n % 3 + 1))")
    if (( n == 7 || n == 16 )); then subject=(); fi  # no ordering key
    service send --url "http://127.0.0.1:$port" --source /shop --id "$id" --type "$type" "${subject[@]}" --data "$data"
}

# 1. workers on: evt-01 is in yen, so reserve_stock dead-letters it; send_order_confirmation handles it
serve
service send --url "http://127.0.0.1:$port" --source /shop --id evt-01 --type com.example.order.placed \
    --subject customer-2 --wait 5 \
    --data '{"order_id": "o-1", "customer_id": "c-2", "amount_cents": 100, "currency": "JPY"}'
stop

# 2. ingest only: evt-02..evt-11 accepted, not handled
serve --no-workers
for n in $(seq 2 11); do send "$n"; done
stop

# 3. a worker that claims and stops before handling anything: the claim makes the deliveries of every stored event
# (WAITING behind their key's head, or READY), and the close hands its one claimed delivery back (READY)
"$python" - "$work/events.db" <<'PY'
import asyncio
import sys

from event_service.runtime.bus.sqlite import SQLiteBus


async def claim_and_stop(path: str) -> None:
    bus = SQLiteBus(path)
    await bus.open()
    try:
        assert len(await bus.claim(1)) == 1
    finally:
        await bus.close()


asyncio.run(claim_and_stop(sys.argv[1]))
PY

# 4. ingest only: evt-12..evt-21 accepted and stored as they arrive (no deliveries yet), and evt-05 a second time:
# refused as a duplicate
serve --no-workers
for n in $(seq 12 21); do send "$n"; done
send 5
stop

# one file: whatever the WAL still holds goes into the database
sqlite3 "$work/events.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
cp "$work/events.db" "$out_db"
