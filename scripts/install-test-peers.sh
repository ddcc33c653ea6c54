#!/usr/bin/env bash
# Installs the real peers the tests talk to: a Python venv (.venv) with localstripe (a
# stateful fake Stripe that also signs and sends webhooks), aiosmtpd (a real SMTP server) and
# schemathesis (fuzzes the API from its OpenAPI document, tests/api/contract.rs).
# Idempotent: does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PEERS=('localstripe==1.15.10' 'aiosmtpd==1.4.6' 'schemathesis==4.32.5')
if [ ! -x "$VENV/bin/localstripe" ] || [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null \
    || ! "$VENV/bin/st" --version 2>/dev/null | grep -q ' 4\.32\.5'; then
    echo "== installing localstripe, aiosmtpd and schemathesis into $VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 needs python3-venv for ensurepip.
        apt-get install -y -q python3-venv >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q python3-venv >/dev/null; }
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PEERS[@]}"
fi
echo "test peers: $("$VENV/bin/pip" list --disable-pip-version-check 2>/dev/null | grep -iE '^(localstripe|aiosmtpd|schemathesis) ' | tr -s ' ' | paste -sd, -)"

# The browser test: Debian's Chromium (no browser download), a CJK font for the Chinese page,
# and playwright-core + axe-core from npm (locked in tests/browser/package-lock.json).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q "${need[@]}" >/dev/null
    }
fi
if [ -f tests/browser/package-lock.json ]; then
    stamp=tests/browser/node_modules/.lock-stamp
    if [ ! -f "$stamp" ] || ! cmp -s tests/browser/package-lock.json "$stamp"; then
        echo "== installing the browser test's npm packages"
        npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
        cp tests/browser/package-lock.json "$stamp"
    fi
fi
echo "browser: $(chromium --version 2>/dev/null || echo 'chromium missing'), node $(node --version 2>/dev/null || echo missing)"
