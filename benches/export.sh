#!/usr/bin/env bash
# Export throughput and memory: N donations (default 1,000,000) in PostgreSQL, exported as
# donations.csv over HTTP (server peak RSS growth read from /proc), via the CLI, and with
# psql's \copy of the same rows, in one session on one machine.
#
#   ./benches/export.sh                 # 1,000,000 rows
#   ROWS=200000 ./benches/export.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
PG_BASE=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
DB=${PG_BASE%/*}/cl_export
PORT=${PORT:-18183}
export DATABASE_URL=$DB BIND_ADDR=127.0.0.1:$PORT RUST_LOG=warn
export JWT_SECRET="bench-secret-0123456789abcdef0123456789"
PASSWORD="bench password 0123456789"

cargo build --release --bins -q
BIN=target/release/crowdledger
psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_export WITH (FORCE)" -c "CREATE DATABASE cl_export"
echo "$PASSWORD" | $BIN user add --email bench@example.org --role treasurer >/dev/null
$BIN period add --label "August 2020" --from 2020-08-01 --to 2020-08-31 --budget 600000 >/dev/null
$BIN period add --label "September 2020" --from 2020-09-01 --to 2020-09-30 --budget 400000 >/dev/null
echo "== inserting $ROWS donations and their receipts" >&2
psql "$DB" -q <<SQL
INSERT INTO donations (id, method, status, amount_minor, currency, donor_name, email, anonymous,
    locale, reference, received_on, after_close, recorded_by, created_at, succeeded_at)
SELECT g, 'check', 'succeeded', 500 + (g % 20000), 'USD', 'Donor ' || g, 'd' || g || '@example.org',
    g % 7 = 0, CASE WHEN g % 3 = 0 THEN 'zh-CN' ELSE 'en' END, 'chk-' || g,
    DATE '2020-08-01' + (g % 60), false, 'bench', now(), now()
FROM generate_series(1, $ROWS) g;
-- Each donation's receipt, sent, as the mailer leaves it: the export looks them up.
INSERT INTO outbox (kind, dedupe_key, donation_id, locale, payload, created_at,
    next_attempt_at, sent_at)
SELECT 'receipt', 'receipt:' || g, g, 'en', '{}', now(), now(), now()
FROM generate_series(1, $ROWS) g;
UPDATE funds SET last_donation_id = $ROWS;
ANALYZE donations;
ANALYZE outbox;
SQL

$BIN serve >/tmp/cl-export-server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
TOKEN=$(curl -fs -XPOST "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.org\",\"password\":\"$PASSWORD\"}" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER/status"; }
# Warm up (connection pool, page cache), then measure from a settled baseline.
curl -fs -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/reports/donations.csv?to=2020-08-01" -o /dev/null
before=$(kb VmRSS)
start=$(date +%s%N)
bytes=$(curl -fs -H "authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/reports/donations.csv" -o /dev/null -w '%{size_download}')
http_ms=$(( ($(date +%s%N) - start) / 1000000 ))
peak=$(kb VmHWM)
growth=$(( (peak - before) / 1024 ))
kill $SERVER; wait $SERVER 2>/dev/null || true; trap - EXIT

cli=$( { /usr/bin/time -f '%e %M' $BIN export donations >/dev/null; } 2>&1 | tail -n1)
copy=$( { /usr/bin/time -f '%e %M' psql "$DB" -qc "\\copy (SELECT id, received_on, donor_name, email, anonymous, method, reference, status, amount_minor, fee_minor, net_minor, refunded_minor, disputed_minor, currency, after_close, created_at FROM donations ORDER BY id) to stdout csv" >/dev/null; } 2>&1 | tail -n1)
psql "$PG_BASE" -qc "DROP DATABASE IF EXISTS cl_export WITH (FORCE)"

cli_s=${cli% *}; cli_kb=${cli#* }; copy_s=${copy% *}; copy_kb=${copy#* }
echo
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, PostgreSQL $(psql "$PG_BASE" -qAtc 'SHOW server_version')"
echo "rows: $ROWS, donations.csv: $((bytes / 1048576)) MiB"
printf '%-34s %10s %14s %10s\n' path seconds peak_rss_MiB vs_copy
printf '%-34s %10s %14s %10s\n' "HTTP GET /api/reports/donations.csv" "$(awk -v m=$http_ms 'BEGIN{printf "%.2f", m/1000}')" "+$growth (growth)" "$(awk -v a=$http_ms -v b=$copy_s 'BEGIN{printf "%.2fx", a/1000/b}')"
printf '%-34s %10s %14s %10s\n' "crowdledger export donations" "$cli_s" "$((cli_kb / 1024))" "$(awk -v a=$cli_s -v b=$copy_s 'BEGIN{printf "%.2fx", a/b}')"
printf '%-34s %10s %14s %10s\n' "psql \\copy (same rows)" "$copy_s" "$((copy_kb / 1024))" "1.00x"
