"""Models in several configurations get labels that tell them apart."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.report.curves import build_groups
from gam_bench.report.labels import variant_labels


def test_single_configuration_is_just_the_model_name():
    assert variant_labels([("a", "gam", {"seed": 0}), ("b", "mamba", {"seed": 0})]) == {"a": "gam", "b": "mamba"}


def test_differing_nested_values_name_the_variant():
    labels = variant_labels(
        [
            ("a", "gam", {"overrides": {"impl": "fused"}, "seed": 0}),
            ("b", "gam", {"overrides": {"impl": "reference"}, "seed": 0}),
        ]
    )
    assert labels == {"a": "gam (impl=fused)", "b": "gam (impl=reference)"}


def test_identical_configs_are_numbered():
    assert variant_labels([("x", "gam", {}), ("y", "gam", {})]) == {"x": "gam (#1)", "y": "gam (#2)"}


def _row(d_model: int, seq_len: int, seed: int) -> dict:
    config = {"model": "gam", "overrides": {"d_model": d_model}, "seq_len": seq_len, "seed": seed}
    return {
        "task": "throughput",
        "status": "ok",
        "model": "gam",
        "level": "block",
        "mode": "forward",
        "dtype": "float32",
        "device": "cpu",
        "batch_size": 1,
        "seq_len": seq_len,
        "seed": seed,
        "cell_id": f"{d_model}-{seq_len}-{seed}",
        "run_id": f"{d_model}-{seq_len}-{seed}",
        "config_json": json.dumps(config),
        "time_ms": float(seq_len * d_model),
        "tokens_per_s": 1.0,
        "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
    }


def test_swept_overrides_split_series_and_seeds_pool():
    rows = [_row(d, n, s) for d in (64, 128) for n in (256, 512) for s in (0, 1)]
    (group,) = build_groups(store.to_table(rows).to_pandas())
    assert [s.label for s in group.series] == ["gam (d_model=128)", "gam (d_model=64)"]
    assert all(list(s.points["seq_len"]) == [256, 512] for s in group.series)  # seeds pooled per length
    assert group.series[1].time_fit.slope == pytest.approx(1.0)
