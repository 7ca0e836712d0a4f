#!/usr/bin/env bash
# Validate gam-bench on a machine with one NVIDIA GPU, offline, in at most 8 minutes:
#   1. install pydantic (and its deps) from wheels carried in .whl/ beside gam-bench, leaving the
#      machine's CUDA torch alone; gam-bench runs from this checkout (PYTHONPATH), no build step;
#   2. `python3 -m gam_bench doctor --suite suites/scaling.yaml` (exit 1 = something cannot run);
#   3. the CUDA tests (every test marked `cuda`: tests/cuda and the CUDA twins beside the CPU tests;
#      with fla installed, tests/cuda/test_field_paths.py checks its GLA / RetNet kernels against the torch ops,
#      and tests/cuda/test_field_kernels.py mamba_ssm's SSD (Mamba2) and fla's Gated DeltaNet kernels);
#   4. suites/scaling.yaml's cuda profile: the paper's grid (batch 16, d_model 512, float16,
#      256..64k; OOMs and timeouts are data), then its report;
#   5. report + Parquet to reports/<gpu-name>/ (and to $OUT/<gpu-name>/ when $OUT is set).
#
# Prepare the wheels on any machine with network (Python 3.12, x86-64; see
# /work/shared/wheels/README.md or shared/wheels/README.md):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .whl pydantic pydantic-core annotated-types \
#       typing-inspection typing-extensions
# The machine needs python3 with a CUDA torch, triton, pandas, pyarrow, matplotlib, rich,
# scipy, pyyaml and pytest already.
#
#   scripts/gpu-check.sh                 # on the GPU machine
#   GPU_CHECK_DRY=1 scripts/gpu-check.sh # anywhere: doctor on the CPU and a tiny CPU suite (plumbing)
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DRY=${GPU_CHECK_DRY:-0}
SITE=${GPU_CHECK_SITE:-/tmp/gam-bench-site}
SUITE_BUDGET_S=${GPU_CHECK_SUITE_S:-300}   # hard bound on the sweep; doctor + tests take the rest of 8 min
TEST_BUDGET_S=${GPU_CHECK_TEST_S:-90}
status=0

log() { printf '\n== %s\n' "$*"; }

if ! "$PY" -c "import pydantic" 2>/dev/null; then
    log "installing pydantic from .whl/ into $SITE"
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "gpu-check: no pydantic and no wheels in .whl/ (see the top of this script)" >&2
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" .whl/*.whl || exit 2
    export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

if [ "$DRY" = 1 ]; then
    DEVICE=cpu
    GPU=dry-run-cpu
    SUITE_FILE=$(mktemp -d)/gpu-check-dry.yaml
    cat >"$SUITE_FILE" <<'EOF'
name: gpu-check-dry
models: [gam, transformer]
axes: {seq_len: [32, 64], batch_size: 1, d_model: 16}
level: block
mode: forward_backward
dtype: float32
device: cpu
threads: 1
measure: {warmup: 1, repeats: 2, flops: true}
limits: {timeout_s: 60}
EOF
else
    DEVICE=cuda
    SUITE_FILE=suites/scaling.yaml
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
    GPU=${GPU:-$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null)}
    GPU=${GPU:-unknown-gpu}
fi
SLUG=$(printf '%s' "$GPU" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
REPORT_DIR=reports/$SLUG
RESULTS_DIR=results/gpu-check-$SLUG
mkdir -p "$REPORT_DIR"

log "doctor ($DEVICE)"
"$PY" -m gam_bench doctor --suite "$SUITE_FILE" --device "$DEVICE" | tee "$REPORT_DIR/doctor.txt"
doctor_rc=${PIPESTATUS[0]}
[ "$doctor_rc" = 0 ] || { echo "gpu-check: doctor exit $doctor_rc" >&2; status=1; }

if [ "$DRY" != 1 ]; then
    log "O(N) field kernels (tests/cuda/test_field_kernels.py skips, with this reason, what is missing)"
    "$PY" -c "from gam_bench.models import backends as b; print('mamba-ssm SSD:', b.ssd_kernel_reason() or 'ok'); print('fla gated delta rule:', b.fla_reason('fla.ops.gated_delta_rule') or 'ok')" | tee "$REPORT_DIR/field-kernels.txt"
    log "CUDA tests"
    timeout "$TEST_BUDGET_S" "$PY" -m pytest -q -rs -p no:cacheprovider -m cuda --continue-on-collection-errors tests 2>&1 | tee "$REPORT_DIR/cuda-tests.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

log "suite $SUITE_FILE ($DEVICE), at most ${SUITE_BUDGET_S}s"
timeout --signal=INT --kill-after=20 "$SUITE_BUDGET_S" \
    "$PY" -m gam_bench run "$SUITE_FILE" --device "$DEVICE" --out "$RESULTS_DIR" --fresh --no-report --no-progress
run_rc=$?
[ "$run_rc" = 0 ] || { echo "gpu-check: run exit $run_rc (124/130: the sweep hit its budget; rows so far kept)" >&2; status=1; }

log "report -> $REPORT_DIR"
"$PY" -m gam_bench report "$RESULTS_DIR" --out "$REPORT_DIR" || status=1
mkdir -p "$REPORT_DIR/results"
cp "$RESULTS_DIR"/*.parquet "$REPORT_DIR/results/" 2>/dev/null || { echo "gpu-check: no Parquet rows" >&2; status=1; }

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/$SLUG"
    cp -r "$REPORT_DIR"/. "$OUT/$SLUG/"
    log "copied to $OUT/$SLUG"
fi
log "gpu-check finished: exit $status"
exit $status
