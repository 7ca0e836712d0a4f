#!/usr/bin/env bash
# The test suite (CPU). Same command as in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m pytest -q "$@"
