#!/usr/bin/env bash
# The ledger's state-machine property test (tests/api/model) at length: 10,000 random cases
# by default, each a fresh database and up to 40 steps, every invariant checked after every
# step. Prints the cases run, the time, the seed and what the cases exercised.
#
#   ./benches/model.sh                          # 10,000 cases on SQLite
#   ENGINE=postgres CASES=500 ./benches/model.sh
#   ENGINE=both ./benches/model.sh              # SQLite, then PostgreSQL
#   SEED=1234 ./benches/model.sh                # repeat a run exactly
#   STEPS=80 ./benches/model.sh                 # longer sequences
#
# A failure prints the seed and the minimal failing sequence, saves the seed in
# tests/api/model-regressions.txt (commit it: every later run replays it first) and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES=${CASES:-10000}
ENGINE=${ENGINE:-sqlite}
STEPS=${STEPS:-40}
SEED=${SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}
TEST=model::the_ledger_agrees_with_the_model_after_every_step

case "$ENGINE" in
    both) engines=(sqlite postgres) ;;
    sqlite | postgres) engines=("$ENGINE") ;;
    *) echo "ENGINE must be sqlite, postgres or both" >&2; exit 2 ;;
esac

cargo test -q --locked --test api --no-run 2>/dev/null
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
for engine in "${engines[@]}"; do
    echo "== $engine: $CASES cases of up to $STEPS steps, seed $SEED" >&2
    start=$(date +%s%N)
    status=passed
    TEST_DATABASE=$engine MODEL_CASES=$CASES MODEL_STEPS=$STEPS MODEL_SEED=$SEED \
        cargo test -q --locked --test api "$TEST" -- --exact --nocapture >"$log" 2>&1 || status=FAILED
    grep -v -E '^(running [0-9]+ tests?|test result.*|\.*)$|^test .* \.\.\. ' "$log" || true
    ms=$((($(date +%s%N) - start) / 1000000))
    summary+=("$(printf 'model: %-8s %s cases of up to %s steps in %d.%01d s, seed %s: %s' \
        "$engine" "$CASES" "$STEPS" $((ms / 1000)) $((ms % 1000 / 100)) "$SEED" "$status")")
    [ "$status" = passed ] || { printf '%s\n' "${summary[@]}"; exit 1; }
done
printf '%s\n' "${summary[@]}"
