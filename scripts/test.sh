#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs every
# test on SQLite and again on PostgreSQL.
#
#   ./scripts/test.sh                 # both engines (PostgreSQL skipped with a warning if absent)
#   REQUIRE_POSTGRES=1 ./scripts/test.sh   # CI: a missing PostgreSQL is a failure
#
# PostgreSQL is expected on 127.0.0.1:5432 (trust auth, database `test`); override with
# TEST_POSTGRES_URL. Each test creates its own database named cl_test_*.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TEST_POSTGRES_URL:=postgres://postgres@127.0.0.1:5432/test}"
export TEST_POSTGRES_URL
say() { printf '\n== %s\n' "$*"; }

apt_install() {
    # Installs Debian packages that are missing; `apt-get update` only when an install fails.
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q "${missing[@]}" >/dev/null
    }
}

# Build dependencies: libpq for diesel's PostgreSQL backend, psql to manage test databases.
apt_install libpq-dev postgresql-client

# Real peers: localstripe (fake Stripe) and aiosmtpd (SMTP) in .venv.
./scripts/install-test-peers.sh

postgres_up() { psql "$TEST_POSTGRES_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; }
if ! postgres_up && command -v pg_ctlcluster >/dev/null 2>&1; then
    # This kind of machine ships a cluster; start it if it stopped.
    version=$(ls /etc/postgresql 2>/dev/null | head -n1 || true)
    [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do postgres_up && break; sleep 0.5; done
fi

drop_test_databases() {
    psql "$TEST_POSTGRES_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'cl\_test\_%'" |
        while read -r db; do psql "$TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done
}

say "build"
cargo build --all-targets --locked

say "tests on SQLite (unit, property and integration)"
TEST_DATABASE=sqlite cargo test --all-targets --locked

if postgres_up; then
    drop_test_databases
    say "integration tests on PostgreSQL"
    TEST_DATABASE=postgres cargo test --locked --test api
    drop_test_databases
elif [ "${REQUIRE_POSTGRES:-0}" = "1" ]; then
    echo "PostgreSQL is not reachable at $TEST_POSTGRES_URL and REQUIRE_POSTGRES=1" >&2
    exit 1
else
    echo "WARNING: PostgreSQL not reachable at $TEST_POSTGRES_URL; PostgreSQL run skipped" >&2
fi

say "docker-compose.yml validates"
./scripts/check-compose.sh

say "all test runs passed"
