#!/usr/bin/env bash
# Issue "Throughput you can prove", in one run on one machine:
#  - webhook-recorded card donations (loadgen webhooks) at 8 and 32 clients on PostgreSQL and
#    on SQLite, with 10% duplicate deliveries in shuffled order, totals checked to the cent;
#  - pgbench -b tpcb-like -c 8 -T $PGBENCH_SECONDS on the same PostgreSQL;
#  - wrk against GET /api/fund and against a minimal actix-web hello-world (examples/hello.rs);
#  - the same 32-client webhook run with 10,000 and then 1,000,000 donations already in the
#    ledger, and the query plans of the write path's lookups and writes.
#
#   ./benches/compare.sh                 # EVENTS=20000 PGBENCH_SECONDS=20 WRK_SECONDS=10
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-20000}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-20}
WRK_SECONDS=${WRK_SECONDS:-10}
GROWTH_ROWS=${GROWTH_ROWS:-1000000}
PG_BASE=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_PREFIX=${PG_BASE%/*}
PORT=${PORT:-18191}
HELLO_PORT=$((PORT + 1))

command -v wrk >/dev/null || { apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q wrk >/dev/null; }; }
cargo build --release --bins --example hello -q

export BIND_ADDR=127.0.0.1:$PORT JWT_SECRET="bench-secret-0123456789abcdef0123456789"
export FUND_TARGET=100000000000.00 RUST_LOG=error,crowdledger::commands=info
export STRIPE_SECRET_KEY=sk_test_bench STRIPE_PUBLISHABLE_KEY=pk_test_bench STRIPE_WEBHOOK_SECRET=whsec_bench
# Stripe itself is not reachable: fee look-ups fail fast and are left to the sweep.
export STRIPE_API_BASE=http://127.0.0.1:9
BIN=target/release/crowdledger
LOADGEN=target/release/loadgen
WORK=$(mktemp -d)
SERVER=""
stop() { [ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }; SERVER=""; }
trap 'stop; rm -rf "$WORK"' EXIT
start() {
    $BIN serve >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.2; done
    echo "server did not start" >&2; exit 1
}
results=()
webhooks() { # label clients
    line=$($LOADGEN --url "http://127.0.0.1:$PORT" --clients "$2" --label "$1" \
        webhooks --count "$EVENTS" --duplicates 0.1 --shuffle 2>/dev/null | tail -n1)
    echo "$line" >&2
    results+=("$line")
}
fresh_pg() { psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" 2>/dev/null; }

echo "== PostgreSQL" >&2
fresh_pg cl_compare
export DATABASE_URL=$PG_PREFIX/cl_compare
start
webhooks postgres 8
webhooks postgres 32
stop

echo "== pgbench tpcb-like, 8 clients, ${PGBENCH_SECONDS}s" >&2
fresh_pg cl_pgbench
pgbench -q -i -s 10 "$PG_PREFIX/cl_pgbench" >/dev/null 2>&1
pgb=$(pgbench -b tpcb-like -c 8 -j 2 -T "$PGBENCH_SECONDS" "$PG_PREFIX/cl_pgbench" 2>/dev/null)
tps=$(echo "$pgb" | awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]}')
lat=$(echo "$pgb" | awk -F'= ' '/^latency average/ {split($2, a, " "); print a[1]}')
psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_pgbench WITH (FORCE)"

echo "== SQLite" >&2
export DATABASE_URL=sqlite://$WORK/compare.db
start
webhooks sqlite 8
webhooks sqlite 32
echo "== wrk GET /api/fund and hello-world, ${WRK_SECONDS}s, 2 threads, 64 connections" >&2
fund_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "http://127.0.0.1:$PORT/api/fund" | awk '/Requests\/sec/ {print $2}')
stop
target/release/examples/hello "127.0.0.1:$HELLO_PORT" >/dev/null 2>&1 &
HELLO=$!
sleep 0.5
hello_rps=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "http://127.0.0.1:$HELLO_PORT/" | awk '/Requests\/sec/ {print $2}')
kill $HELLO; wait $HELLO 2>/dev/null || true

# Last: seeding 1M rows leaves PostgreSQL checkpointing and vacuuming for a while, which
# would slow whatever ran next.
seed_ledger() { # rows: succeeded card donations, their ledger entries and events, after the last
    psql "$DATABASE_URL" -q <<SQL
BEGIN;
-- Succeeded card donations and their ledger entries, as recording them would leave them
-- (the hashes are placeholders: this database is for timing, not for verify).
INSERT INTO donations (id, method, status, amount_minor, currency, donor_name, email, anonymous,
    locale, payment_intent_id, charge_id, after_close, created_at, succeeded_at)
SELECT f.last_donation_id + g, 'card', 'succeeded', 500, 'USD', 'Seed ' || g, 'seed' || g || '@example.org',
    false, 'en', 'pi_seed_' || f.last_donation_id + g, 'ch_seed_' || f.last_donation_id + g, false, now(), now()
FROM funds f, generate_series(1, $1) g;
INSERT INTO ledger_entries (seq, created_at, kind, donation_id, amount_minor, count_delta,
    raised_after_minor, target_after_minor, intake_after, memo, prev_hash, hash)
SELECT f.ledger_seq + g, now(), 'donation', f.last_donation_id + g, 500, 1, f.raised_minor + 500 * g,
    f.target_minor, 'open', 'seed', md5(g::text) || md5(g::text), md5((g + 1)::text) || md5(g::text)
FROM funds f, generate_series(1, $1) g;
INSERT INTO stripe_events (event_id, event_type, payment_intent_id, charge_id, created, received_at, applied_at, fact)
SELECT 'evt_seed_' || f.last_donation_id + g, 'payment_intent.succeeded', 'pi_seed_' || f.last_donation_id + g,
    'ch_seed_' || f.last_donation_id + g, 0, now(), now(), '{}'
FROM funds f, generate_series(1, $1) g;
UPDATE funds SET last_donation_id = last_donation_id + $1, ledger_seq = ledger_seq + $1,
    raised_minor = raised_minor + 500 * $1, donation_count = donation_count + $1,
    version = version + 1;
COMMIT;
ANALYZE;
SQL
}
# 10,000 donations, then 1,000,000: each webhook run adds its own $EVENTS, so the second seeding
# tops the ledger up to exactly $GROWTH_ROWS.
fresh_pg cl_compare
export DATABASE_URL=$PG_PREFIX/cl_compare
start # migrates
stop
echo "== growth: 10000 donations already in the ledger" >&2
seed_ledger 10000
start
webhooks postgres-10k 32
stop
echo "== growth: $GROWTH_ROWS donations already in the ledger" >&2
seed_ledger $((GROWTH_ROWS - 10000 - EVENTS))
start
webhooks postgres-1M 32
stop
# With the writer connection's planner settings (db::PG_WRITER_SETTINGS, less its generic
# plans, which EXPLAIN with literals cannot show), so these are the plans the writer makes.
plans=$(psql "$DATABASE_URL" -qAt <<'SQL'
SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off;
EXPLAIN SELECT event_id FROM stripe_events WHERE event_id IN ('evt_a', 'evt_b');
EXPLAIN SELECT id FROM donations WHERE payment_intent_id IN ('pi_a', 'pi_b');
EXPLAIN SELECT EXISTS (SELECT 1 FROM stripe_events WHERE applied_at IS NULL);
EXPLAIN SELECT * FROM funds WHERE id = 1 FOR UPDATE;
EXPLAIN UPDATE funds SET version = version + 1 WHERE id = 1 AND version = 1;
EXPLAIN UPDATE donations AS d SET status = 'succeeded' FROM unnest('{1,2}'::bigint[]) AS v(id) WHERE d.id = v.id;
SQL
)
psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_compare WITH (FORCE)"


echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), PostgreSQL $(psql "$PG_BASE" -qAtc 'SHOW server_version')"
printf '%-12s %-8s %10s %8s %8s %8s %14s\n' engine clients events/s p50_ms p99_ms check vs_pgbench_tps
for line in "${results[@]}"; do
    get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
    rate=$(get per_sec)
    printf '%-12s %-8s %10s %8s %8s %8s %14s\n' "${line%%:*}" "$(get clients)" "$rate" "$(get p50_ms)" "$(get p99_ms)" "$(get check)" \
        "$(awk -v a="$rate" -v b="$tps" 'BEGIN { printf "%.2fx", a / b }')"
done
printf 'pgbench tpcb-like: %.0f tps at 8 clients, latency average %s ms\n' "$tps" "$lat"
printf 'GET /api/fund: %s req/s; hello-world: %s req/s; ratio %s\n' "$fund_rps" "$hello_rps" \
    "$(awk -v a="$fund_rps" -v b="$hello_rps" 'BEGIN { printf "%.2fx", a / b }')"
echo "query plans of the write path's lookups and writes (1M rows):"
echo "$plans" | sed 's/^/  /'
