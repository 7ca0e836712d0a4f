"""Complexity figures, checked through their matplotlib artists (found by gid)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gam_bench.report import crossings
from gam_bench.report.figure import figure_size
from gam_bench.report.plots import palette, scaling_figure

MODELS = ["gam", "mamba", "transformer", "transformer-naive"]


def lines_by_gid(ax, prefix: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for line in ax.lines:
        gid = line.get_gid() or ""
        if gid.startswith(prefix):
            out.setdefault(gid[len(prefix) :], []).append(line)
    return out


@pytest.fixture(scope="module")
def colors(groups):
    return palette([s.label for g in groups.values() for s in g.series])


@pytest.mark.parametrize("metric, ylabel", [("time", "(ms)"), ("memory", "(MiB)"), ("throughput", "(tokens/s)")])
def test_axes_are_log_log_with_units_title_and_legend(groups, colors, metric, ylabel):
    ax = scaling_figure(groups["forward"], metric, colors).axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "Sequence length (tokens)"
    assert ax.get_ylabel().endswith(ylabel)
    assert "forward" in ax.get_title() and "batch 1" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.split(" (")[0] for t in legend[:4]] == MODELS
    assert legend[4] == "failed cell (status)"
    crossings = [t for t in legend[5:] if t.startswith(("A:", "B:", "C:"))]
    assert len(legend) == 5 + len(crossings) and (metric == "time" or not crossings)
    assert not any(t.get_rotation() for t in ax.texts)  # no rotated text on the plot


def test_one_measured_series_per_model_with_markers_and_iqr(groups, colors):
    ax = scaling_figure(groups["forward"], "time", colors).axes[0]
    series = lines_by_gid(ax, "series:")
    assert sorted(series) == MODELS and all(len(v) == 1 for v in series.values())
    naive = series["transformer-naive"][0]
    assert list(naive.get_xdata()) == [256, 512, 1024]  # only the lengths that ran ok
    markers = {label: lines[0].get_marker() for label, lines in series.items()}
    dashes = {label: lines[0].get_linestyle() for label, lines in series.items()}
    assert len(set(markers.values())) == 4 and len(set(dashes.values())) == 4  # overlaps stay visible
    assert naive.get_markerfacecolor() == "none"  # hollow: a marker under another shows through
    assert len(ax.collections) == 4  # one IQR error-bar collection per model
    bars = ax.collections[0].get_segments()[0]  # gam at 256: from q25 to q75
    gam = next(s for s in groups["forward"].series if s.label == "gam").points.iloc[0]
    assert bars[:, 1] == pytest.approx([gam["time_q25"], gam["time_q75"]])
    memory = scaling_figure(groups["forward"], "memory", colors).axes[0]
    assert len(memory.collections) == 0  # memory has no repeats, so no bars


def test_fit_lines_cover_the_window_and_slopes_are_in_the_legend(groups, colors):
    group = groups["forward"]
    ax = scaling_figure(group, "time", colors).axes[0]
    fits = lines_by_gid(ax, "fit:")
    assert sorted(fits) == MODELS
    gam = next(s for s in group.series if s.label == "gam")
    assert list(fits["gam"][0].get_xdata()) == [gam.time_fit.window[0], gam.time_fit.window[-1]]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"gam (slope {gam.time_fit.slope:.2f})" in legend


@pytest.mark.parametrize("metric", ["time", "memory", "throughput"])
def test_failed_cells_are_marked_where_they_happened(groups, colors, metric):
    ax = scaling_figure(groups["forward"], metric, colors).axes[0]
    failed = lines_by_gid(ax, "failed:")
    assert sorted(failed) == ["mamba", "transformer-naive"]
    naive = failed["transformer-naive"][0]
    assert naive.get_marker() == "x" and naive.get_linestyle() == "None"
    assert list(naive.get_xdata()) == [2048, 4096]
    assert np.all(np.isfinite(naive.get_ydata()))
    assert list(failed["mamba"][0].get_xdata()) == [4096]
    labels = sorted(t.get_text() for t in ax.texts if t.get_text() in ("OOM", "skipped", "timeout"))
    assert labels == ["OOM", "skipped", "timeout"]


def test_separated_crossovers_are_drawn_with_a_letter_and_a_legend_entry(groups, colors):
    group = groups["forward"]
    ax = scaling_figure(group, "time", colors).axes[0]
    drawn = lines_by_gid(ax, "crossover:")
    separated = {f"{a}|{b}" for (a, b), ok in crossings.judged(group).items() if ok}
    assert separated == {"gam|transformer", "transformer|transformer-naive"} and set(drawn) == separated
    letters = crossings.letters(group)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for (a, b), letter in letters.items():
        assert any(t.startswith(f"{letter}: {a} = {b} at ≈ ") for t in legend)
    marks = ",".join(t.get_text() for t in ax.texts if t.get_gid() == "crossover-letters").split(",")
    assert sorted(marks) == sorted(letters.values())
    assert not lines_by_gid(scaling_figure(group, "memory", colors).axes[0], "crossover:")


def test_with_many_curves_only_gam_s_crossovers_are_drawn(groups, colors):
    group = groups["forward"]
    many = dataclasses.replace(group, series=group.series * 6)  # more curves than the plot marks pairs for
    drawn = set(lines_by_gid(scaling_figure(many, "time", colors).axes[0], "crossover:"))
    separated = {f"{a}|{b}" for (a, b), ok in crossings.judged(group).items() if ok}
    assert drawn == {pair for pair in separated if "gam" in pair.split("|")}
    assert drawn and drawn < separated  # the fixture has crossovers without gam too


def test_sizes_give_a_paper_column_and_a_slide(groups, colors):
    with figure_size("paper"):
        paper = scaling_figure(groups["forward"], "time", colors)
    with figure_size("slide"):
        slide = scaling_figure(groups["forward"], "time", colors)
    assert paper.get_figwidth() == pytest.approx(3.5) and slide.get_figwidth() == pytest.approx(10.0)
    assert paper.axes[0].get_legend().get_texts()[0].get_fontsize() < 7  # paper type: ~6-7 pt
    assert slide.axes[0].get_legend().get_texts()[0].get_fontsize() >= 11


def test_group_without_failures_has_no_failed_markers(groups, colors):
    ax = scaling_figure(groups["forward_backward"], "time", colors).axes[0]
    assert not lines_by_gid(ax, "failed:")
    assert sorted(lines_by_gid(ax, "series:")) == ["gam", "transformer"]
    assert "failed cell (status)" not in [t.get_text() for t in ax.get_legend().get_texts()]


def test_palette_is_stable_per_label():
    assert palette(["b", "a"]) == palette(["a", "b", "a"])
    assert len(set(palette(MODELS).values())) == len(MODELS)


def test_palette_keeps_the_field_s_twelve_models_apart():
    field = ["gam", "transformer-naive", "transformer", "mamba", "mamba-paper", "mamba2", "gated-deltanet"]
    field += ["gated-deltanet-hybrid", "gla", "retnet", "swa", "hyena"]
    colors = palette(field)
    assert len(set(colors.values())) == 12
    first_ten = sorted(field)[:10]
    assert [colors[label] for label in first_ten] == list(palette(first_ten).values())  # tab10 as before
