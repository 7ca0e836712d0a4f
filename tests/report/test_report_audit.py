"""The fairness audit section: each model's fraction of its roofline per length, the flag for a
model far below the best, and naive attention flagged beside SDPA. Built from the checked-in
fixture with roofline times set to known fractions of each measured time."""

from __future__ import annotations

import pandas as pd
import pytest

from gam_bench.report import audit
from gam_bench.report.curves import build_groups
from gam_bench.report.markdown import render

FRACTION = {"gam": 0.6, "transformer": 0.5, "transformer-naive": 0.1, "mamba": 0.2}


@pytest.fixture(scope="module")
def audited(newest) -> pd.DataFrame:
    rows = newest[(newest["task"] == "throughput") & (newest["mode"] == "forward")]
    rows = rows[rows["model"].isin(list(FRACTION))]
    return rows.assign(roofline_ms=rows["time_ms"] * rows["model"].map(FRACTION))


def test_fractions_are_the_roofline_over_the_time(audited):
    (group,) = build_groups(audited)
    assert audit.has_audit(group)
    for s in group.series:
        ok = s.ok
        assert ok["roofline_fraction"].to_numpy() == pytest.approx(FRACTION[s.model], rel=1e-6)


def test_far_below_the_best_is_flagged_with_the_reading(audited):
    (group,) = build_groups(audited)
    lines = audit.flags(group)
    far = [line for line in lines if "under a quarter of the best" in line]
    naive = audited[(audited["model"] == "transformer-naive") & (audited["status"] == "ok")]
    lengths = sorted({int(n) for n in naive["seq_len"]})
    # naive attention, 0.1 < 0.6 / 4, at each of its ok lengths; mamba's 0.2 is not under 0.15.
    assert len(far) == len(lengths) and all(line.startswith("- **transformer-naive** at") for line in far)
    assert all("(gam, 0.6" in line and audit.IMPLEMENTATION in line for line in far)


def test_naive_attention_is_named_a_slower_algorithm_beside_sdpa(audited):
    (group,) = build_groups(audited)
    (line,) = [line for line in audit.flags(group) if "slower algorithm" in line]
    assert line.startswith("- **transformer-naive** computes the same attention as **transformer**")
    assert "0.1 vs 0.5" in line


def test_no_flag_when_every_model_is_close_to_the_best(audited):
    even = audited.assign(roofline_ms=audited["time_ms"] * 0.5)
    (group,) = build_groups(even[even["model"] != "transformer-naive"])
    assert audit.flags(group) == []
    assert "No model is far below the best" in audit.audit_markdown(group)


def test_the_report_has_the_audit_section_only_with_roofline_rows(audited, newest, tmp_path):
    text = render(audited, audited, tmp_path)
    assert "### Fairness audit: fraction of each model's roofline" in text and audit.IMPLEMENTATION in text
    assert "Fairness audit" not in render(newest, newest, tmp_path / "plain")
