#!/usr/bin/env bash
# A longer schemathesis run than the test suite's (tests/api/contract.rs): starts localstripe
# and crowdledger on a throwaway database, signs in as an admin, and fuzzes every operation of
# /api/openapi.json with every check. Prints the number of test cases and of failures; exits
# non-zero if any failed.
#
#   ./scripts/schemathesis.sh                      # 100 examples per operation, random seed
#   EXAMPLES=500 SEED=42 ./scripts/schemathesis.sh
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/st ./scripts/schemathesis.sh   # an empty database
#
# The full report (with a curl command reproducing each failure) is in $OUT/schemathesis.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${EXAMPLES:-100}
SEED=${SEED:-$RANDOM$RANDOM}
WORKERS=${WORKERS:-1}
OUT=${OUT:-$(mktemp -d /tmp/crowdledger-schemathesis.XXXXXX)}
mkdir -p "$OUT"
DATABASE_URL=${DATABASE_URL:-sqlite://$OUT/ledger.db}

./scripts/install-test-peers.sh >/dev/null
cargo build --locked --quiet --bin crowdledger
BIN=target/debug/crowdledger

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
APP_PORT=$(free_port)
STRIPE_PORT=$(free_port)
APP=http://127.0.0.1:$APP_PORT
STRIPE=http://127.0.0.1:$STRIPE_PORT

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

.venv/bin/localstripe --port "$STRIPE_PORT" --from-scratch >"$OUT/localstripe.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fsS -u sk_test_crowdledger: "$STRIPE/v1/payment_intents" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS -X POST "$STRIPE/_config/webhooks/crowdledger" \
    -d "url=$APP/webhooks/stripe" -d secret=whsec_schemathesis >/dev/null

export DATABASE_URL
# A password-only admin (REQUIRE_2FA=off below), so the fuzzer's token reaches every route;
# the second factor's flows have their own API and browser tests.
echo 'schemathesis admin password' | "$BIN" user add --email st-admin@example.org --role admin >/dev/null
BIND_ADDR=127.0.0.1:$APP_PORT JWT_SECRET=schemathesis-secret-0123456789abcdef0123 \
    STRIPE_SECRET_KEY=sk_test_crowdledger STRIPE_PUBLISHABLE_KEY=pk_test_crowdledger \
    STRIPE_WEBHOOK_SECRET=whsec_schemathesis STRIPE_API_BASE="$STRIPE" \
    STRIPE_JS_URL="$STRIPE/js.stripe.com/v3/" RUST_LOG=${RUST_LOG:-warn} \
    REQUIRE_2FA=off \
    "$BIN" serve >"$OUT/app.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fsS "$APP/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

TOKEN=$(curl -fsS "$APP/api/auth/login" -H 'content-type: application/json' \
    -d '{"email":"st-admin@example.org","password":"schemathesis admin password"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

echo "== schemathesis: $EXAMPLES examples per operation, seed $SEED, $DATABASE_URL"
set +e
# From $OUT: schemathesis keeps a cache in its working directory.
ROOT=$PWD
(cd "$OUT" && "$ROOT/.venv/bin/st" --no-color --config-file "$ROOT/tests/schemathesis.toml" run "$APP/api/openapi.json" \
    --checks all --header "Authorization: Bearer $TOKEN" --max-examples "$EXAMPLES" \
    --seed "$SEED" --workers "$WORKERS" --generation-database none --request-timeout 20 \
    >"$OUT/schemathesis.txt" 2>&1)
status=$?
set -e
sed -n '/SUMMARY/,$p' "$OUT/schemathesis.txt"
cases=$(grep -Eo '[0-9]+ generated' "$OUT/schemathesis.txt" | grep -Eo '[0-9]+' | tail -n1)
failures=$(grep -Eo '[0-9]+ found [0-9]+ unique failures' "$OUT/schemathesis.txt" | grep -Eo '[0-9]+ unique' | grep -Eo '[0-9]+' || true)
errors=$(grep -c '^🚫\|Runtime Error' "$OUT/schemathesis.txt" || true)
server_errors=$(grep -c 'panicked' "$OUT/app.log" || true)
echo "test cases: ${cases:-0}, failures: ${failures:-0}, schemathesis errors: ${errors:-0}, server panics: $server_errors (seed $SEED; report $OUT/schemathesis.txt)"
exit "$status"
