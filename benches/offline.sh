#!/usr/bin/env bash
# Offline-gift throughput of the single writer on SQLite and PostgreSQL, beside pgbench's
# TPC-B-like run on the same PostgreSQL, in one session on one machine.
#
#   ./benches/offline.sh            # defaults: 20000 gifts per run, pgbench 20 s
#   GIFTS=50000 PGBENCH_SECONDS=30 ./benches/offline.sh
set -euo pipefail
cd "$(dirname "$0")/.."

GIFTS=${GIFTS:-20000}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-20}
PG_BASE=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_PREFIX=${PG_BASE%/*}
PORT=${PORT:-18181}
EMAIL=bench@example.org
export LOADGEN_PASSWORD="bench password 0123456789"
export JWT_SECRET="bench-secret-0123456789abcdef0123456789"
export FUND_TARGET=100000000000.00
export RUST_LOG=warn,crowdledger::commands=info

cargo build --release --bins -q
BIN=target/release/crowdledger
LOADGEN=target/release/loadgen
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

results=()
run_engine() {
    local engine=$1 url=$2
    echo "== $engine" >&2
    export DATABASE_URL=$url BIND_ADDR=127.0.0.1:$PORT
    echo "$LOADGEN_PASSWORD" | $BIN user add --email "$EMAIL" --role treasurer >/dev/null
    $BIN serve >"$WORK/$engine.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
    for clients in 8 32; do
        line=$($LOADGEN --url "http://127.0.0.1:$PORT" --clients "$clients" --label "$engine" \
            offline --email "$EMAIL" --requests "$GIFTS" | tail -n1)
        echo "$line" >&2
        results+=("$line")
    done
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    grep -o 'batches=.*' "$WORK/$engine.log" | sed "s/^/$engine writer: /" >&2 || true
    $BIN verify >&2
}

run_engine sqlite "sqlite://$WORK/bench.db"

psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_bench WITH (FORCE)" -c "CREATE DATABASE cl_bench"
run_engine postgres "$PG_PREFIX/cl_bench"

echo "== pgbench tpcb-like, 8 clients, ${PGBENCH_SECONDS}s" >&2
psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_pgbench WITH (FORCE)" -c "CREATE DATABASE cl_pgbench"
pgbench -q -i -s 10 "$PG_PREFIX/cl_pgbench" >/dev/null 2>&1
pgb=$(pgbench -b tpcb-like -c 8 -j 2 -T "$PGBENCH_SECONDS" "$PG_PREFIX/cl_pgbench" 2>/dev/null)
tps=$(echo "$pgb" | awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]}')
lat=$(echo "$pgb" | awk -F'= ' '/^latency average/ {split($2, a, " "); print a[1]}')
psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_pgbench WITH (FORCE)" -c "DROP DATABASE IF EXISTS cl_bench WITH (FORCE)"

echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), PostgreSQL $(psql "$PG_BASE" -qAtc 'SHOW server_version')"
printf '%-10s %-8s %12s %8s %8s %8s %14s\n' engine clients gifts_per_s p50_ms p99_ms check vs_pgbench_tps
for line in "${results[@]}"; do
    get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
    engine=${line%%:*}
    rate=$(get per_sec)
    ratio=$(awk -v a="$rate" -v b="$tps" 'BEGIN { printf "%.2fx", a / b }')
    printf '%-10s %-8s %12s %8s %8s %8s %14s\n' "$engine" "$(get clients)" "$rate" "$(get p50_ms)" "$(get p99_ms)" "$(get check)" "$ratio"
done
printf 'pgbench tpcb-like: %.0f tps at 8 clients, latency average %s ms\n' "$tps" "$lat"
