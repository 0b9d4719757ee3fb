#!/usr/bin/env bash
# README command 1: set up and run the main job on the embedded digits data. A simulated
# oracle labels what each strategy asks for; the table shows test accuracy per label count.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.venv/numba-cache}"
.venv/bin/python -m alwidget demo "$@"
