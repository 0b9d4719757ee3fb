#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries (initdb, pg_ctl) that the store tests use to
# start a throwaway server. Does nothing when they are already there, so it is safe to call
# from every test run.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    echo "install-postgres: found $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)"
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
fi
"${as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends postgresql
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || {
    echo "install-postgres: postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2
    exit 1
}
echo "install-postgres: installed $(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)"
