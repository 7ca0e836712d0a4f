"""A recall_distance sweep through the real worker: rows with per-bin lists and a horizon, and
the report section from the stored rows (lists read back from Parquet)."""

from __future__ import annotations

import pytest

from gam_bench import store
from gam_bench.report import write_report
from gam_bench.runner import run_suite


@pytest.mark.slow  # spawns workers (torch imports)
def test_a_tiny_sweep_stores_bins_and_horizons_and_reports_them(write_suite, tmp_path):
    path = write_suite(
        """
        name: recall-distance-tiny
        task: recall_distance
        models: [gam]
        axes: {seq_len: [32], d_model: 8, n_layers: [1, 2]}
        level: lm
        recall_distance:
          distance_bins: [2, 4, 8, 16]
          lr: 0.01
          vocab_size: 16
          train_examples: 64
          test_examples: 24
          batch_size: 8
          budget: {steps: 4}
        """
    )
    results = run_suite(path, out=tmp_path / "results", progress=False, report=False)
    df = store.load(results)
    assert len(df) == 2 and set(df["task"]) == {"recall_distance"}
    ok = df.sort_values("n_layers")
    assert list(ok["status"]) == ["ok", "ok"] and list(ok["n_layers"]) == [1, 2]
    for r in ok.itertuples():
        assert r.step == 4 and r.wall_s > 0 and r.budget == "steps=4" and r.dataset == "mqar-distance"
        assert list(r.distance_hi) == [2, 4, 8, 16] and list(r.bin_trials) == [24] * 4 and r.num_kv_pairs == 4
        assert r.n_answers == 96 and r.correct == sum(r.bin_correct) and r.chance == 1 / 8
        assert all(lo <= a <= hi for lo, a, hi in zip(r.bin_ci_low, r.bin_accuracy, r.bin_ci_high))
        assert r.horizon in (0, 2, 4, 8, 16) and r.horizon_bin in ("none", "1–2", "3–4", "5–8", "9–16")
    text = write_report(results, tmp_path / "report").read_text()
    assert "## Recall against distance" in text and "**Recall against distance**" in text  # section and method
    for layers in (1, 2):
        reading = f"gam: horizon {ok.iloc[layers - 1].horizon_bin}"
        assert any(line.startswith(f"- {reading}") and f"with {layers} layer" in line for line in text.splitlines())
    assert (tmp_path / "report" / "figures" / "recall-vs-distance.png").is_file()
