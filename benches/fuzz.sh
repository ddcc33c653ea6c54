#!/usr/bin/env bash
# Fuzzes the parsers at crowdledger's edges with cargo-fuzz (libFuzzer), each target for a
# bounded time, and prints executions and findings per target. The targets (fuzz/fuzz_targets)
# assert properties, not only "no panic": see the comment at the top of each.
#
#   ./benches/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=600 ./benches/fuzz.sh         # longer
#   TARGETS="amount csv_cell" ./benches/fuzz.sh
#
# Only the stable toolchain is here: libFuzzer's instrumentation flags are nightly-only, and
# RUSTC_BOOTSTRAP=1 lets stable rustc accept them. No sanitizer (`-s none`): the crate forbids
# unsafe code, and AddressSanitizer would need the standard library rebuilt (rust-src).
# cargo-fuzz is installed into .tools/ (gitignored) on first use. Seeds are in fuzz/seeds
# (committed); what the fuzzer learns goes to fuzz/corpus, findings to fuzz/artifacts
# (both gitignored). A finding makes the script exit 1; replay one with
#   PATH=.tools/bin:$PATH RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TARGETS=${TARGETS:-amount stripe_signature csv_cell}
CARGO_FUZZ_VERSION=0.13.2
export PATH=$PWD/.tools/bin:$PATH RUSTC_BOOTSTRAP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT

if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools" >&2
    cargo install -q --locked --root .tools cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

echo "== building the fuzz targets (optimised, debug assertions and overflow checks on)" >&2
start=$(date +%s)
if ! cargo fuzz build -s none >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
echo "   built in $(($(date +%s) - start)) s" >&2

summary=()
failed=0
for target in $TARGETS; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $target: $FUZZ_SECONDS s" >&2
    status=0
    cargo fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -dict=fuzz/dictionary.txt -print_final_stats=1 -artifact_prefix="$artifacts/" \
        >"$log" 2>&1 || status=$?
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    cover=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo 0)
    after=$(find "$artifacts" -type f | wc -l)
    findings=$((after - before))
    if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
        failed=1
        grep -E 'panicked|ERROR: libFuzzer|Test unit written|assertion' "$log" | head -n 8 >&2 || true
    fi
    summary+=("$(printf 'fuzz: %-17s %6s s  %11s execs  %7s/s  cov %5s  corpus %5s  findings %s' \
        "$target" "$FUZZ_SECONDS" "$execs" "$rate" "$cover" "$(find "$corpus" -type f | wc -l)" "$findings")")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
