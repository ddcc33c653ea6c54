#!/usr/bin/env bash
# Validates docker-compose.yml with Debian's docker-compose (1.29.x). No Docker engine needed.
# Installs docker-compose via apt-get if it is missing (needs root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose not found; installing it with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y docker-compose; then
        # Package lists may be missing or stale: refresh once, then retry.
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y docker-compose
    fi
fi

# JWT_SECRET is required by the compose file (${JWT_SECRET:?...}). Use a dummy 32+ byte
# value just for validation; it is not written anywhere.
JWT_SECRET="check-compose-dummy-secret-0123456789abcdef" \
    docker-compose -f docker-compose.yml config -q

echo "docker-compose config: ok"
