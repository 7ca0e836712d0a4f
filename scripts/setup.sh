#!/usr/bin/env bash
# Create ./.venv (if missing) and install gam-bench into it with the given extras.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test,ray
#
# torch is pinned to 2.13.0 explicitly: a bare `torch` requirement makes pip pull a
# multi-GB CUDA build. On a GPU machine, install your CUDA build of torch into .venv
# first and set GAM_BENCH_KEEP_TORCH=1 to keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
if [ "${GAM_BENCH_KEEP_TORCH:-0}" != "1" ]; then
  "$py" -m pip install --quiet --disable-pip-version-check "torch==2.13.0" numpy
fi
target="."
[ -n "$extras" ] && [ "$extras" != base ] && target=".[$extras]"
"$py" -m pip install --quiet --disable-pip-version-check -e "$target"
