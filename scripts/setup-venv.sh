#!/usr/bin/env bash
# Creates ./.venv (if missing) and installs alwidget into it, with the extras named in $1
# (e.g. "test"). Every install goes through constraints.txt, which pins the local CPU torch.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; assert sys.version_info >= (3, 11), "alwidget needs Python 3.11+"'
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
# The stamp skips a reinstall when nothing that decides the environment has changed.
stamp=".venv/.alwidget-installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e "$spec"
  touch "$stamp"
fi
