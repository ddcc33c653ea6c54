#!/usr/bin/env bash
# Issue "A ledger anyone can check", the volume figures: on a SQLite fund of ENTRIES ledger
# entries (offline gifts through `loadgen`, default 1,000,000):
#  - `wrk -t2 -c64` against GET /api/public/head, GET /api/fund and the actix-web hello-world
#    (examples/hello.rs), for the head's ratio to hello-world;
#  - `wrk -t2 -c8 --latency` against GET /api/public/ledger?before=<middle>&limit=100 (one page
#    of 100 entries from the middle of the ledger), for its p50/p99;
#  - `crowdledger verify --public` over the whole ledger, timed.
#
#   ./benches/public_ledger.sh     # ENTRIES=1000000 WRK_SECONDS=10
set -euo pipefail
cd "$(dirname "$0")/.."

ENTRIES=${ENTRIES:-1000000}
WRK_SECONDS=${WRK_SECONDS:-10}
PORT=${PORT:-18391}
HELLO_PORT=$((PORT + 1))
command -v wrk >/dev/null || { apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q wrk >/dev/null; }; }
cargo build --release --bins --example hello -q
OUT=${CARGO_TARGET_DIR:-target}/release
BIN=$OUT/crowdledger
WORK=$(mktemp -d)
SERVER=""
stop() { [ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }; SERVER=""; }
trap 'stop; rm -rf "$WORK"' EXIT

export BIND_ADDR=127.0.0.1:$PORT JWT_SECRET="bench-secret-0123456789abcdef0123456789"
export DATABASE_URL="sqlite://$WORK/ledger.db" RUST_LOG=error FUND_TARGET=100000000000.00
export RATE_LIMIT_LOGIN=off RATE_LIMIT_LOGIN_ACCOUNT=off RATE_LIMIT_PUBLIC_LEDGER=off
export LOADGEN_PASSWORD='a bench treasurer password'
echo "$LOADGEN_PASSWORD" | $BIN user add --email t@example.org --role treasurer >/dev/null
$BIN serve >"$WORK/server.log" 2>&1 &
SERVER=$!
URL=http://127.0.0.1:$PORT
for _ in $(seq 1 50); do curl -fs "$URL/healthz" >/dev/null && break; sleep 0.2; done
echo "== loading $ENTRIES gifts" >&2
$OUT/loadgen --url "$URL" --clients 32 offline --email t@example.org --requests "$ENTRIES" >&2
head=$(curl -fsS "$URL/api/public/head")
seq=$(echo "$head" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seq"])')
middle=$((seq / 2))
echo "== head: $head" >&2
# Let the load's last WAL checkpoint finish before measuring.
sleep 5
wrk -t2 -c64 -d2s "$URL/api/fund" >/dev/null
fund_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "$URL/api/fund" | awk '/Requests\/sec/ {print $2}')
head_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "$URL/api/public/head" | awk '/Requests\/sec/ {print $2}')
page1=$(wrk -t1 -c1 -d"${WRK_SECONDS}s" --latency "$URL/api/public/ledger?before=$middle&limit=100" |
    awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print rps, p50, p99}')
page=$(wrk -t2 -c8 -d"${WRK_SECONDS}s" --latency "$URL/api/public/ledger?before=$middle&limit=100" |
    awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {print rps, p50, p99}')
start=$(date +%s.%N)
$BIN verify --public "$URL" | tail -n1 >&2
verify_s=$(echo "$(date +%s.%N) - $start" | bc)
stop
$OUT/examples/hello "127.0.0.1:$HELLO_PORT" >/dev/null 2>&1 &
SERVER=$!
sleep 0.5
hello_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "http://127.0.0.1:$HELLO_PORT/" | awk '/Requests\/sec/ {print $2}')
stop
echo "entries $seq head_rps $head_rps fund_rps $fund_rps hello_rps $hello_rps head_vs_hello $(echo "scale=2; $head_rps / $hello_rps" | bc)"
echo "page_of_100_at_seq_$middle 1_client rps_p50_p99 $page1"
echo "page_of_100_at_seq_$middle 8_clients rps_p50_p99 $page"
echo "verify_public_seconds $verify_s"
