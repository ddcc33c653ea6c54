#!/usr/bin/env bash
# Issue "Staff you can trust": what checking a token's session costs an authenticated read.
# Builds the release server at BEFORE (default 52021ed, the last commit without sessions) and
# at AFTER (default HEAD), then for each, on a fresh SQLite file with 1,000 offline gifts: a
# treasurer's token and `wrk -t2 -c$CONNECTIONS -d${WRK_SECONDS}s` against
# `GET /api/donations?limit=20` (token check, then one indexed page read) and against
# `GET /api/fund` (no token, for scale), ROUNDS times alternating before/after.
#
#   ./benches/auth_read.sh      # BEFORE=52021ed AFTER=HEAD ROUNDS=3 WRK_SECONDS=10 CONNECTIONS=32
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${BEFORE:-52021ed}
AFTER=${AFTER:-HEAD}
ROUNDS=${ROUNDS:-3}
WRK_SECONDS=${WRK_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-18291}
WORK=$(mktemp -d)
SERVER=""
stop() { [ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }; SERVER=""; }
trap 'stop; for w in before after; do git worktree remove --force "$WORK/$w" >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q wrk >/dev/null; }; }
# Both builds share one target folder (the dependencies are built once).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for w in before after; do
    rev=$BEFORE
    [ "$w" = after ] && rev=$AFTER
    git worktree add --detach "$WORK/$w" "$rev" >/dev/null 2>&1
    (cd "$WORK/$w" && cargo build --release --bin crowdledger -q)
    cp "$CARGO_TARGET_DIR/release/crowdledger" "$WORK/crowdledger-$w"
done

export BIND_ADDR=127.0.0.1:$PORT JWT_SECRET="bench-secret-0123456789abcdef0123456789"
export RUST_LOG=error RATE_LIMIT_LOGIN=off RATE_LIMIT_LOGIN_ACCOUNT=off
URL=http://127.0.0.1:$PORT
run() { # label binary
    local bin=$2 db="$WORK/$1.db"
    rm -f "$db"*
    export DATABASE_URL="sqlite://$db"
    echo 'a bench treasurer password' | "$bin" user add --email t@example.org --role treasurer >/dev/null
    "$bin" serve >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 50); do curl -fs "$URL/healthz" >/dev/null && break; sleep 0.2; done
    local token
    token=$(curl -fsS "$URL/api/auth/login" -H 'content-type: application/json' \
        -d '{"email":"t@example.org","password":"a bench treasurer password"}' |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    for i in $(seq 1 1000); do
        printf '{"amount":"1.00","donor_name":"Donor %d","method":"check"}\n' "$i"
    done | while read -r body; do
        curl -fsS -o /dev/null "$URL/api/donations/offline" -H "Authorization: Bearer $token" \
            -H 'content-type: application/json' -d "$body"
    done
    local authed fund
    authed=$(wrk -t2 -c"$CONNECTIONS" -d"${WRK_SECONDS}s" --latency -H "Authorization: Bearer $token" \
        "$URL/api/donations?limit=20" | awk '/Requests\/sec/ {print $2} / 99%/ {print $2}' | paste -sd' ')
    fund=$(wrk -t2 -c"$CONNECTIONS" -d"${WRK_SECONDS}s" "$URL/api/fund" | awk '/Requests\/sec/ {print $2}')
    stop
    echo "$1 authenticated_read_rps_p99 $authed fund_rps $fund"
}
for r in $(seq 1 "$ROUNDS"); do
    run "before-$r" "$WORK/crowdledger-before"
    run "after-$r" "$WORK/crowdledger-after"
done
