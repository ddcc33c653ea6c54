#!/usr/bin/env bash
# Backup, restore and the move to PostgreSQL at volume (issue 22): a SQLite fund of N offline
# gifts, every one a real ledger write through the server (loadgen), then
#   crowdledger backup --out FILE       (SQLite -> file)
#   crowdledger copy --to postgres://   (SQLite -> PostgreSQL: backup + verified restore)
# each timed with its peak RSS (/usr/bin/time), at ROWS and at ROWS/10, so a memory that
# grows with the fund shows as a ratio; beside them, as a baseline on the same rows,
# PostgreSQL's own `pg_dump -Fc` + `pg_restore` of the copied database.
#
#   ./benches/copy.sh                 # 1,000,000 gifts (and 100,000)
#   ROWS=100000 ./benches/copy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
PG_BASE=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
PG_PREFIX=${PG_BASE%/*}
PORT=${PORT:-18184}
EMAIL=bench@example.org
export LOADGEN_PASSWORD="bench password 0123456789"
export JWT_SECRET="bench-secret-0123456789abcdef0123456789"
export FUND_TARGET=100000000000.00
export RUST_LOG=warn

cargo build --release --bins -q
BIN=target/release/crowdledger
LOADGEN=target/release/loadgen
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_copy WITH (FORCE)" -c "DROP DATABASE IF EXISTS cl_copy2 WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Prints "seconds peak_rss_mib" of a command (its own output to $WORK/last.out).
measure() {
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/last.out" 2>&1 || { cat "$WORK/last.out" >&2; exit 1; }
    awk '{ printf "%s %.0f", $1, $2 / 1024 }' "$WORK/time"
}

results=()
run() {
    local rows=$1 db="$WORK/fund-$1.db"
    export DATABASE_URL="sqlite://$db" BIND_ADDR=127.0.0.1:$PORT
    echo "== $rows gifts into SQLite" >&2
    echo "$LOADGEN_PASSWORD" | $BIN user add --email "$EMAIL" --role treasurer >/dev/null
    $BIN period add --label "August 2020" --from 2020-08-01 --to 2020-08-31 --budget 600000 >/dev/null
    $BIN serve >"$WORK/serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
    $LOADGEN --url "http://127.0.0.1:$PORT" --clients 32 --label seed \
        offline --email "$EMAIL" --requests "$rows" | tail -n1 >&2
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    local size; size=$(du -m "$db" | cut -f1)

    echo "== backup" >&2
    read -r b_s b_mib <<<"$(measure $BIN backup --out "$WORK/fund.clbk")"
    local b_size; b_size=$(du -m "$WORK/fund.clbk" | cut -f1)
    echo "   $(tail -n1 "$WORK/last.out")" >&2
    rm -f "$WORK/fund.clbk"

    echo "== copy to PostgreSQL" >&2
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_copy WITH (FORCE)" -c "CREATE DATABASE cl_copy" >/dev/null
    read -r c_s c_mib <<<"$(measure $BIN copy --to "$PG_PREFIX/cl_copy")"
    sed 's/^/   /' "$WORK/last.out" | tail -n2 >&2
    # The head both sides printed, and the raised the target holds (verified by the copy).
    local heads raised
    heads=$(sed -n 's/^\(source\|target\): head seq \([0-9]*\) hash \([0-9a-f]*\).*/\2:\3/p' "$WORK/last.out" | sort -u | wc -l)
    [ "$heads" = 1 ] && heads=equal || heads=DIFFER
    raised=$(psql "$PG_PREFIX/cl_copy" -qAtc 'SELECT raised_minor FROM funds')

    # Baseline on the same rows: PostgreSQL's own dump and restore of the copied database.
    echo "== baseline: pg_dump -Fc, pg_restore into an empty database" >&2
    read -r d_s _ <<<"$(measure pg_dump -Fc -f "$WORK/pg.dump" "$PG_PREFIX/cl_copy")"
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_copy2 WITH (FORCE)" -c "CREATE DATABASE cl_copy2" >/dev/null
    read -r r_s _ <<<"$(measure pg_restore -d "$PG_PREFIX/cl_copy2" "$WORK/pg.dump")"
    psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_copy2 WITH (FORCE)" >/dev/null
    rm -f "$WORK/pg.dump"
    pg_s=$(awk -v a="$d_s" -v b="$r_s" 'BEGIN { printf "%.1f", a + b }')
    results+=("$rows $size $b_s $b_mib $b_size $c_s $c_mib $pg_s $heads $raised")
    rm -f "$db" "$db-wal" "$db-shm"
}

run $((ROWS / 10))
run "$ROWS"

echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), PostgreSQL $(psql "$PG_BASE" -qAtc 'SHOW server_version')"
printf '%-9s %8s %9s %9s %9s %9s %9s %12s %7s %14s\n' gifts db_mib backup_s backup_mib file_mib copy_s copy_mib pg_dump+rest_s heads raised_minor
for line in "${results[@]}"; do
    # shellcheck disable=SC2086
    printf '%-9s %8s %9s %9s %9s %9s %9s %12s %7s %14s\n' $line
done
