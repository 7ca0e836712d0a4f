#!/usr/bin/env bash
# Install gam-bench into the active Python environment (create one first: python3 -m venv .venv).
# torch is pinned to 2.13.0 explicitly: a bare `torch` requirement makes pip pull a multi-GB
# CUDA build. On a GPU machine, install your CUDA torch first and set GAM_BENCH_KEEP_TORCH=1.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --upgrade --quiet pip
if [ "${GAM_BENCH_KEEP_TORCH:-0}" != "1" ]; then
  python -m pip install --quiet "torch==2.13.0" numpy
fi
python -m pip install --quiet -e ".[test]"
