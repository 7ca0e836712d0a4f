"""Perplexity report sections: Table 1/3 layout, learning curves, per-position loss."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.report import perplexity
from gam_bench.report.plots import palette


def cells_of(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in table.strip().splitlines()[2:]]


@pytest.fixture(scope="module")
def runs(newest):
    (wikitext,) = perplexity.by_dataset(newest)
    return wikitext


@pytest.fixture(scope="module")
def colors(runs):
    return palette(runs.final["label"])


def test_final_row_of_each_cell_is_its_highest_step(runs):
    assert runs.dataset == "wikitext-2-raw"
    final = runs.final.set_index("label")
    assert final.loc["gam", "step"] == 150 and final.loc["transformer", "step"] == 150
    assert final.loc["mamba", "status"] == "oom"
    assert len(runs.rows) == 7  # 3 + 3 evaluation rows and the failed cell's row


def test_table_has_the_paper_columns_and_final_values(runs):
    table = perplexity.results_table(runs)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split(" | ")]
    for column in ("Params", "Avg. time/epoch (s)", "Val. loss", "Val. PPL"):
        assert column in header
    rows = {r[0]: dict(zip(header, r)) for r in cells_of(table)}
    gam = runs.final.set_index("label").loc["gam"]
    assert rows["gam"]["Val. PPL"] == f"{gam['val_ppl']:.2f}"
    assert rows["gam"]["Val. loss"] == f"{gam['val_loss']:.4f}"
    assert rows["gam"]["Params"] == "1.2M"
    assert rows["gam"]["Avg. time/epoch (s)"] == "20.0"
    assert rows["mamba"]["Status"] == "OOM" and rows["mamba"]["Val. PPL"] == "–"
    assert runs.layout == "paper Table 1 layout"


def _ppl_row(model: str, family: str, seed: int, step: int, **extra) -> dict:
    config = {"model": model, "seed": seed, "perplexity": {"budget": {"tokens": 1000}}}
    return {
        "task": "perplexity",
        "status": "ok",
        "model": model,
        "family": family,
        "dataset": "tinystories",
        "cell_id": f"{model}-{seed}",
        "run_id": f"{model}-{seed}",
        "seed": seed,
        "step": step,
        "config_json": json.dumps(config, sort_keys=True),
        "val_loss": 3.0,
        "val_ppl": 20.0,
        "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
        **extra,
    }


def test_ablation_layout_and_labels_that_tell_cells_apart():
    rows = [_ppl_row(m, "gam", s, 10) for m in ("gam", "gam-local-only") for s in (0, 1)]
    (runs,) = perplexity.by_dataset(store.to_table(rows).to_pandas())
    assert runs.layout == "paper Table 3 layout (ablation)"
    assert list(runs.final["label"]) == [
        "gam (seed=0)",
        "gam (seed=1)",
        "gam-local-only (seed=0)",
        "gam-local-only (seed=1)",
    ]


def test_avg_time_per_epoch_falls_back_to_wall_over_epochs():
    rows = [_ppl_row("gam", "gam", 0, 10, wall_s=30.0, epoch=1.5)]
    (runs,) = perplexity.by_dataset(store.to_table(rows).to_pandas())
    assert cells_of(perplexity.results_table(runs))[0][4] == "20.0"


def test_learning_curves_have_a_line_per_model(runs, colors):
    for x, column in (("tokens", "tokens_seen"), ("wall", "wall_s")):
        ax = perplexity.curve_figure(runs, x, colors).axes[0]
        lines = {line.get_gid(): line for line in ax.lines}
        assert set(lines) == {"curve:gam", "curve:transformer"}  # the oom cell has no curve
        gam = runs.rows[runs.rows["label"] == "gam"].sort_values("step")
        assert list(lines["curve:gam"].get_xdata()) == list(gam[column])
        assert list(lines["curve:gam"].get_ydata()) == pytest.approx(list(gam["val_ppl"]))
        assert ax.get_yscale() == "log" and ax.get_ylabel() == "Validation perplexity"
        assert ax.get_xlabel() in ("Tokens seen", "Training wall time (s)")


def test_position_plot_uses_bucket_centres(runs, colors):
    ax = perplexity.position_figure(runs, colors).axes[0]
    lines = {line.get_gid(): line for line in ax.lines}
    assert set(lines) == {"position:gam", "position:transformer"}
    assert list(lines["position:gam"].get_xdata()) == [16, 48, 80, 112]  # edges 0, 32, ..., 128
    final = runs.final.set_index("label").loc["gam"]
    assert list(lines["position:gam"].get_ydata()) == pytest.approx(list(final["position_loss"]))
    assert "Position" in ax.get_xlabel() and "loss" in ax.get_ylabel()


def test_report_links_the_perplexity_figures(report_md):
    text = report_md.read_text()
    for name in ("ppl-wikitext-2-raw-tokens.png", "ppl-wikitext-2-raw-wall.png", "ppl-wikitext-2-raw-position.png"):
        assert f"figures/{name})" in text
    assert "## Perplexity: wikitext-2-raw" in text and "paper Table 1 layout" in text
