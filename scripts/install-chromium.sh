#!/usr/bin/env bash
# Installs Debian's Chromium for the real-browser tests (Playwright drives it through
# executable_path). Idempotent: does nothing when /usr/bin/chromium is already there.
# Playwright's own browser download (`playwright install`) is never used: no internet
# beyond the package registries on these machines.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver
/usr/bin/chromium --version
