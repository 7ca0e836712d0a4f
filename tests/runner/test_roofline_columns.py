"""A throughput row's fairness-audit columns: minimal bytes, roofline time and the fraction achieved."""

from __future__ import annotations

import pytest
import torch
from cells import make_cell

from gam_bench.measure.calibrate import roofline_ms
from gam_bench.models import work
from gam_bench.models.builder import build_for
from gam_bench.runner import preflight
from gam_bench.tasks.throughput import measure as throughput

PEAKS = {"peak_flops_per_s": 2e9, "peak_bandwidth_bytes_per_s": 1e9}


def _cell(model="transformer", **fields):
    overrides = {"d_model": 16, "dropout": 0.0, **({"n_heads": 2} if "transformer" in model else {})}
    measure = {"warmup": 1, "repeats": 3}
    return make_cell(model=model, overrides=overrides, mode="forward_backward", seq_len=32, measure=measure, **fields)


@pytest.mark.parametrize("model", ["transformer", "mamba"])
def test_row_carries_the_roofline_and_its_fraction(model):
    torch.set_num_threads(1)
    cell = _cell(model, **PEAKS)
    (row,) = throughput.run(cell)
    config = build_for(cell)[1]
    expected_bytes = work.minimal_bytes(model, config, "block", "forward_backward", 1, 32, "float32", row["params"])
    assert row["min_bytes"] == expected_bytes
    assert row["peak_bandwidth_bytes_per_s"] == 1e9
    roof = roofline_ms(row["flops"], expected_bytes, 2e9, 1e9)
    assert row["roofline_ms"] == pytest.approx(roof)
    assert row["roofline_fraction"] == pytest.approx(roof / row["time_ms"])


def test_without_calibration_the_roofline_is_null_but_the_bytes_stay():
    (row,) = throughput.run(_cell())
    assert row["min_bytes"] > 0 and row["roofline_ms"] is None and row["roofline_fraction"] is None


def test_preflight_fills_both_peaks(monkeypatch):
    from gam_bench.measure import calibrate

    peak = {"peak_flops_per_s": 3e9, "bandwidth_bytes_per_s": 4e9, "measured_now": False, "key": "k"}
    monkeypatch.setattr(calibrate, "peak_for", lambda *a: peak)
    monkeypatch.delenv(preflight.CALIBRATE_ENV, raising=False)
    (cell,) = preflight.with_peaks([_cell()])
    assert (cell.peak_flops_per_s, cell.peak_bandwidth_bytes_per_s) == (3e9, 4e9)
    assert cell.cell_id == _cell().cell_id  # resolved fields are not part of the cell's identity
