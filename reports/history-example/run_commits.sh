#!/usr/bin/env bash
# Run reports/history-example/suite.yaml at each commit given, one after the other, each in a
# temporary detached git worktree importing its own code (as `check --against` runs its base).
# Usage: reports/history-example/run_commits.sh OUT REV...   (results: OUT/<sha>/)
set -euo pipefail
repo=$(git rev-parse --show-toplevel)
py=${PYTHON:-$repo/.venv/bin/python}
suite=$repo/reports/history-example/suite.yaml
out=$(realpath -m "$1"); shift
trees=$(mktemp -d)
trap 'rm -rf "$trees"' EXIT
for rev in "$@"; do
  sha=$(git -C "$repo" rev-parse "$rev")
  tree=$trees/$sha
  git -C "$repo" worktree add --detach --quiet "$tree" "$sha"
  echo "== $sha $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd "$tree" && PYTHONPATH="$tree" "$py" -m gam_bench run "$suite" --out "$out/$sha" --fresh --no-report > "$out/log-${sha:0:12}.txt" 2>&1)
  git -C "$repo" worktree remove --force "$tree"
done
echo "== done $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
