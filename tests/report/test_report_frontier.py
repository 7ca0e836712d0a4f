"""The quality-cost frontier (report/frontier.py) on hand-made rows: the Pareto set, the join on
model configuration across tasks, the "which suite to run" message, and the section."""

from __future__ import annotations

import json

import pandas as pd

from gam_bench import store
from gam_bench.report import frontier
from gam_bench.report.frontier import AXES, accuracy_points, cost_points, missing_text, pareto


def row(task: str, model: str, d_model: int, seq_len: int, overrides: dict | None = None, **values) -> dict:
    overrides = {"d_model": d_model, "n_layers": 2, **(overrides or {})}
    config = {"model": model, "overrides": overrides, "seq_len": seq_len, "task": task}
    return {
        "task": task,
        "suite": task,
        "cell_id": f"{task}-{model}-{d_model}-{seq_len}-{json.dumps(overrides, sort_keys=True)}-{values.get('lr')}",
        "run_id": "r",
        "model": model,
        "d_model": d_model,
        "n_layers": 2,
        "seq_len": seq_len,
        "batch_size": 1,
        "status": values.pop("status", "ok"),
        "config_json": json.dumps(config, sort_keys=True),
        **values,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    return store.to_table(rows).to_pandas()


def test_pareto_keeps_what_no_other_point_beats():
    points = [(1.0, 0.2), (2.0, 0.9), (3.0, 0.5), (2.0, 0.9), (0.5, 0.2), (4.0, 1.0)]
    assert pareto(points) == [False, True, False, True, True, True]  # ties both stay; (1, .2) loses to (.5, .2)


RECALL = [
    row("recall", "gam", 64, 128, accuracy=0.10, lr=1e-3),
    row("recall", "gam", 64, 128, accuracy=0.20, lr=3e-3),  # the best lr is kept
    row("recall", "transformer", 64, 128, {"n_heads": 1}, accuracy=0.99, lr=3e-3),
    row("recall", "mamba", 64, 128, accuracy=0.60, lr=3e-3),
    row("recall", "mamba", 32, 128, accuracy=0.40, lr=3e-3),
]
DECODE = [
    row("decode", "gam", 64, 128, {"dropout": 0.0}, state_bytes=3_072, decode_ms_per_token=1.0),
    row("decode", "transformer", 64, 128, {"n_heads": 1, "dropout": 0.0}, state_bytes=131_072, decode_ms_per_token=2.0),
    row("decode", "mamba", 64, 128, {"dropout": 0.0}, state_bytes=20_000, decode_ms_per_token=3.0),
    row("decode", "mamba", 64, 512, {"dropout": 0.0}, state_bytes=20_000),  # another length: not joined
    row("decode", "transformer", 64, 128, {"n_heads": 2}, state_bytes=131_072),  # other heads: not joined
]


def test_rows_join_on_model_configuration_and_length():
    rows = frame(RECALL + DECODE)
    acc = accuracy_points(rows)
    assert len(acc) == 4 and acc.set_index("model").loc["gam", "accuracy"] == 0.20
    points = frontier.frontier(acc, cost_points(rows, AXES[0])).set_index("model")
    assert sorted(points.index) == ["gam", "mamba", "transformer"]  # mamba d32 has no decode row
    assert points.loc["transformer", "x"] == 131_072.0  # n_heads 1 joined, dropout ignored
    assert points["on_frontier"].to_dict() == {"gam": True, "mamba": True, "transformer": True}
    worse = frame([*RECALL, *DECODE, row("decode", "mamba", 32, 128, {"dropout": 0.0}, state_bytes=50_000)])
    flags = frontier.frontier(accuracy_points(worse), cost_points(worse, AXES[0]))
    off = flags[(flags["model"] == "mamba") & (flags["d_model"] == 32)]
    assert not off["on_frontier"].iloc[0]  # more state than mamba d64 and less accurate


def test_missing_rows_name_the_suite_to_run():
    rows = frame(RECALL + DECODE)
    acc = accuracy_points(rows)
    text = missing_text(acc, cost_points(rows, AXES[0]), AXES[0])
    assert text == (
        "- Decode-state bytes at the recall length: no decode rows for d_model 32, 2 layers, seq_len 128 "
        "(mamba): run suites/frontier.yaml.\n"
    )
    time_axis = AXES[2]
    assert "no throughput rows for d_model 32" in missing_text(acc, cost_points(rows, time_axis), time_axis)
    assert missing_text(acc, cost_points(rows, time_axis), time_axis).endswith("run suites/frontier-train.yaml.\n")


def test_the_section_draws_a_figure_per_axis_with_rows(tmp_path):
    text = frontier.section(frame(RECALL + DECODE), tmp_path, "figures", {})
    assert text.startswith("## Quality–cost frontier\n")
    assert (tmp_path / "figures" / "frontier-state.png").is_file()
    assert (tmp_path / "figures" / "frontier-latency.png").is_file()
    assert not (tmp_path / "figures" / "frontier-time.png").exists()
    assert "run suites/frontier-train.yaml" in text and "◆" in text
    assert "- gam (d_model 64, 2 layers): accuracy 0.200 at 128 tokens with 3.0 KiB" in text


def test_no_recall_rows_no_section(tmp_path):
    assert frontier.section(frame(DECODE), tmp_path, "figures", {}) == ""
