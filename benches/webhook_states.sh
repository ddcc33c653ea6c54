#!/usr/bin/env bash
# The webhook path with the payment states of issue 20, against today's card-only events, in
# one session on one machine: `loadgen webhooks` (32 clients, 10% duplicates, shuffled,
# totals checked to the cent) on a fresh database per run, alternating
#   A: one `payment_intent.succeeded` per payment (as before);
#   B: `--new-states`: each payment also sends the `charge.succeeded` naming its method, and
#      every fourth is a bank debit (`payment_intent.processing` and `charge.pending` beside
#      its success), so B delivers 2.25 events per payment.
# With BASELINE_DIR=a directory holding an older build's crowdledger and loadgen (the seed
# runs the ledger writer of its own build, so both must match the schema), each round also
# runs A on those (labelled "base"), to show that today's events cost what they did before.
# Prints one loadgen line per run (requests = events; payments = EVENTS), on SQLite then
# PostgreSQL.
#
#   ./benches/webhook_states.sh            # EVENTS=20000 ROUNDS=3 CLIENTS=32
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-20000}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-32}
PG_BASE=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_PREFIX=${PG_BASE%/*}
PORT=${PORT:-18291}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --bins -q
BIN=$CARGO_TARGET_DIR/release/crowdledger
LOADGEN=$CARGO_TARGET_DIR/release/loadgen

export BIND_ADDR=127.0.0.1:$PORT JWT_SECRET="bench-secret-0123456789abcdef0123456789"
export FUND_TARGET=100000000000.00 RUST_LOG=error
export STRIPE_SECRET_KEY=sk_test_bench STRIPE_PUBLISHABLE_KEY=pk_test_bench STRIPE_WEBHOOK_SECRET=whsec_bench
# Stripe itself is not reachable: fee look-ups fail fast and are left to the sweep.
export STRIPE_API_BASE=http://127.0.0.1:9
WORK=$(mktemp -d)
SERVER=""
stop() { [ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }; SERVER=""; }
trap 'stop; rm -rf "$WORK"' EXIT
start() { # [binary]
    ${1:-$BIN} serve >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && return; sleep 0.2; done
    echo "server did not start" >&2; cat "$WORK/server.log" >&2; exit 1
}
fresh() { # engine
    if [ "$1" = sqlite ]; then
        rm -f "$WORK"/bench.db*
        export DATABASE_URL="sqlite://$WORK/bench.db"
    else
        psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_states WITH (FORCE)" -c "CREATE DATABASE cl_states" 2>/dev/null
        export DATABASE_URL=$PG_PREFIX/cl_states
    fi
}
run() { # engine variant
    fresh "$1"
    local gen=$LOADGEN
    if [ "$2" = base ]; then start "$BASELINE_DIR/crowdledger"; gen=$BASELINE_DIR/loadgen; else start; fi
    local extra=()
    [ "$2" = B ] && extra=(--new-states)
    $gen --url "http://127.0.0.1:$PORT" --clients "$CLIENTS" --label "$1 $2" \
        webhooks --count "$EVENTS" --duplicates 0.1 --shuffle "${extra[@]}" 2>/dev/null | tail -n1
    stop
}
for engine in sqlite postgres; do
    for round in $(seq 1 "$ROUNDS"); do
        if [ -n "${BASELINE_DIR:-}" ]; then run "$engine" base; fi
        run "$engine" A
        run "$engine" B
    done
done
