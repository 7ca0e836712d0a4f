"""The recall-distance report section on hand-made rows: best lr, readings, table, figure."""

from __future__ import annotations

import pandas as pd

from gam_bench.report import horizon
from gam_bench.report.markdown import method as method_notes

LO, HI = [0, 2, 4, 8, 16], [2, 4, 8, 16, 30]
N = 200


def _row(model: str, layers: int, accuracies: list[float], lr: float = 3e-3, status: str = "ok") -> dict:
    correct = [round(a * N) for a in accuracies]
    return dict(
        task="recall_distance",
        status=status,
        model=model,
        seq_len=32,
        d_model=32,
        n_layers=layers,
        lr=lr,
        accuracy=sum(correct) / (N * len(correct)),
        chance=1 / 32,
        distance_lo=LO,
        distance_hi=HI,
        bin_correct=correct,
        bin_trials=[N] * 5,
        step=300,
        wall_s=12.5,
    )


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _row("gam", 2, [1.0, 1.0, 0.03, 0.03, 0.03]),
            _row("gam", 4, [1.0, 1.0, 0.9, 0.03, 0.03]),
            _row("gam", 4, [0.5, 0.03, 0.03, 0.03, 0.03], lr=1e-2),  # a worse rate: not the cell's best
            _row("gam-global-only", 2, [0.03, 0.04, 0.03, 0.02, 0.03]),
            _row("transformer", 2, [0.9, 0.9, 0.8, 0.7, 0.6]),
            _row("transformer", 4, [0.9, 0.9, 0.8, 0.7, 0.6], status="timeout"),  # not ok: left out
        ]
    )


def test_readings_one_line_per_model_and_depth(tmp_path):
    text = horizon.section(_rows(), tmp_path, "figures")
    assert "- gam: horizon 3–4 tokens with 2 layers\n" in text
    assert "- gam: horizon 5–8 tokens with 4 layers\n" in text
    assert "- gam-global-only: horizon none with 2 layers" in text
    assert "- transformer: horizon 17–30 tokens with 2 layers\n" in text
    assert "transformer: horizon 17–30 tokens with 4 layers" not in text


def test_the_best_lr_per_cell_is_kept_and_bonferroni_counts_the_rates():
    best = horizon.best_per_cell(horizon.distance_rows(_rows()))
    assert len(best) == 4
    gam4 = best[(best["model"] == "gam") & (best["n_layers"] == 4)].iloc[0]
    assert gam4.lr == 3e-3 and gam4.lrs_tried == 2 and gam4.result.threshold == 0.05 / 5 / 2


def test_the_table_has_every_bin_with_its_interval_and_marks_the_bins_below_chance(tmp_path):
    text = horizon.section(_rows(), tmp_path, "figures")
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    assert [c.strip() for c in header.split("|")[5:10]] == ["1–2", "3–4", "5–8", "9–16", "17–30"]
    gam2 = next(line for line in text.splitlines() if line.startswith("| gam | 2 |"))
    assert "1.00 (0.98–1.00)" in gam2 and "0.03° (" in gam2 and "**3–4**" in gam2 and "| 300 | 12 |" in gam2


def test_the_figure_has_a_panel_per_model_and_a_line_per_depth(tmp_path):
    best = horizon.best_per_cell(horizon.distance_rows(_rows()))
    fig = horizon.accuracy_figure(best)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["gam", "gam-global-only", "transformer"]
    gam_lines = [c for c in panels[0].containers if c.lines[0].get_gid() == "series:gam"]
    assert len(gam_lines) == 2  # 2 and 4 layers
    horizon.section(_rows(), tmp_path, "figures")
    assert (tmp_path / "figures" / "recall-vs-distance.png").stat().st_size > 0


def test_no_ok_rows_no_section_and_the_method_note(tmp_path):
    rows = _rows().assign(status="error")
    assert horizon.section(rows, tmp_path, "figures") == ""
    assert "**Recall against distance**" in method_notes(["recall_distance"])


def test_the_figure_follows_the_figure_size_and_not_the_users_matplotlibrc():
    import matplotlib

    from gam_bench.report.figure import SIZES, figure_size

    best = horizon.best_per_cell(horizon.distance_rows(_rows()))
    with matplotlib.rc_context({"xtick.labelsize": 31.0}):  # a user's setting the report must not take
        paper = horizon.accuracy_figure(best)
        with figure_size("slide"):
            slide = horizon.accuracy_figure(best)
    assert paper.dpi == SIZES["paper"].dpi and slide.dpi == SIZES["slide"].dpi
    assert slide.get_size_inches()[0] == 2 * paper.get_size_inches()[0]  # panels grow with the type (7 -> 14 pt)
    tick = paper.axes[0].xaxis.get_major_ticks()[0].label1.get_fontsize()
    assert tick != 31.0
