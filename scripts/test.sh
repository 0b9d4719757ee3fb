#!/usr/bin/env bash
# README command 2: set up everything (venv, Chromium, PostgreSQL) and run the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
bash scripts/install-chromium.sh
bash scripts/install-postgres.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.venv/numba-cache}"
# Every test that needs a browser or a database must run, not skip.
export ALWIDGET_REQUIRE_ALL=1
mkdir -p artifacts
.venv/bin/python -m pytest -q -p no:cacheprovider --durations=30 "$@"
