"""Real instruction counts under valgrind: two identical runs of a one-cell suite count the same
instructions per step (within 0.1%). The cell is a real-sized block (T=1024, d_model 128): at
T=32, d_model 32 (5.8M instructions a step) two runs once differed by 6,068 instructions
(0.104%), interpreter noise that a larger step dilutes. Slow (valgrind starts torch in about
20-90 s); skipped, with the reason, where valgrind or a C compiler with valgrind's headers is
missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gam_bench import store
from gam_bench.measure import callgrind, valgrind

SUITE = """\
name: counted
models: [gam]
axes: {seq_len: [1024], batch_size: [1], d_model: [128]}
level: block
mode: [forward]
dtype: float32
device: cpu
threads: 1
measure: {warmup: 0, repeats: 1, flops: false, instructions: true, instruction_steps: 2}
limits: {timeout_s: 60}
"""


def _usable() -> str | None:
    found = valgrind.find()
    if not found.usable:
        return found.reason
    try:
        callgrind.build_shim()
    except callgrind.CountingUnavailable as exc:
        return str(exc)
    return None


REASON = _usable()


@pytest.mark.slow
@pytest.mark.skipif(REASON is not None, reason=f"cannot count instructions here: {REASON}")
def test_identical_runs_count_the_same_instructions(tmp_path, cli_env):
    suite = tmp_path / "counted.yaml"
    suite.write_text(SUITE)
    counts = []
    for run in (1, 2):
        out = tmp_path / f"run-{run}"
        command = [sys.executable, "-m", "gam_bench", "run", str(suite), "--out", str(out), "--no-report"]
        proc = subprocess.run(command, capture_output=True, text=True, env=cli_env, timeout=1200, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "counting instructions of 1 cells under callgrind" in proc.stdout
        [row] = store.load(out).to_dict("records")
        assert row["status"] == "ok" and row["instructions_tool"].startswith("callgrind ")
        assert len(row["instructions_samples"]) == 2 and row["time_ms"] > 0
        counts.append(row["instructions"])
    assert counts[0] > 100_000  # a real step, not an empty region
    assert abs(counts[1] / counts[0] - 1) <= 0.001, counts
