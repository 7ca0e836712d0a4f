"""Recall report section on synthetic rows: best lr per cell, binomial test, table, figures."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys

import pandas as pd
import pytest
from scipy import stats

from gam_bench import store
from gam_bench.report import recall, write_report
from gam_bench.report.markdown import method as method_notes

CHANCE = 1 / 128


def _rows() -> pd.DataFrame:
    rows = []
    for model, T, D, lr in itertools.product(["gam", "transformer"], [64, 128], [64, 128], [1e-3, 1e-2]):
        if model == "transformer":
            acc = 0.99 if lr == 1e-2 else 0.40
        else:
            acc = 0.012 if lr == 1e-3 else 0.008
        n_examples = 200
        rows.append(
            dict(
                task="recall",
                status="ok",
                model=model,
                seq_len=T,
                d_model=D,
                num_kv_pairs=T // 16,
                lr=lr,
                accuracy=acc,
                n_answers=n_examples * T // 16,
                n_examples=n_examples,
                probe_correct=round(acc * n_examples),
                chance=CHANCE,
            )
        )
    rows.append(dict(task="throughput", status="ok", model="gam", seq_len=64, d_model=64))
    rows.append(dict(task="recall", status="oom", model="mamba", seq_len=64, d_model=64, accuracy=None))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def best():
    return recall.best_per_cell(recall.recall_rows(_rows()))


def test_best_lr_per_cell_and_only_ok_recall_rows(best):
    assert len(best) == 8 and set(best["model"]) == {"gam", "transformer"}
    assert (best.loc[best["model"] == "transformer", "lr"] == 1e-2).all()
    assert (best.loc[best["model"] == "gam", "lr"] == 1e-3).all()
    assert (best["lrs_tried"] == 2).all()


def test_binomial_counts_one_probe_per_example_and_corrects_for_the_lr_sweep(best):
    t = best[best["model"] == "transformer"].iloc[0]
    assert t["unit"] == "examples" and t["trials"] == 200 and t["successes"] == 198 and t["above"]
    g = best[best["model"] == "gam"].iloc[0]
    # 2 of 200 correct at chance 1/128: not significant once doubled for the two rates tried.
    raw = stats.binomtest(2, 200, CHANCE, alternative="greater").pvalue
    assert g["p_value"] == pytest.approx(min(1.0, 2 * raw)) and not g["above"]
    ci = stats.binomtest(2, 200).proportion_ci(0.95, method="exact")
    assert g["ci_low"] == pytest.approx(ci.low) and g["ci_high"] == pytest.approx(ci.high)


def test_without_probes_every_answer_is_counted_and_the_note_says_so():
    rows = recall.recall_rows(_rows()).drop(columns=["probe_correct", "n_examples"])
    best = recall.best_per_cell(rows)
    assert set(best["unit"]) == {"answers"}
    first = best.iloc[0]
    assert first["trials"] == first["n_answers"] and first["successes"] == round(first["accuracy"] * first["n_answers"])
    assert "not independent" in recall.chance_note(best)


def test_table_states_best_lr_chance_and_verdict(best):
    table = recall.results_table(best)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 8 and "best lr (of n)" in lines[0] and "Chance" in lines[0]
    transformer = next(line for line in lines if line.startswith("| transformer | 64 | 4 | 64 "))
    assert "0.01 (of 2)" in transformer and "0.990" in transformer and "yes (p=" in transformer
    gam = next(line for line in lines if line.startswith("| gam | 64 | 4 | 64 "))
    assert "| no (p=" in gam and "0.00781" in gam and "0.25" in gam
    assert "| 0.990 | 0.990 (0.964–0.999) |" in transformer  # the tested share (198/200 probes) and its interval
    assert transformer.endswith("| – | – |")  # no step or wall_s column in these rows
    assert recall._steps(pd.Series({"step": 412.0})) == "412" and recall._seconds(pd.Series({"wall_s": 31.6})) == "32"
    assert lines[0].endswith("| Steps | Train s |")
    note = recall.chance_note(best)
    assert "0.00781" in note and "Best learning rate per cell" in note and "independent" in note


def test_figures_have_a_panel_per_other_axis_and_a_line_per_model(best):
    fig = recall.accuracy_figure(best, "d_model")
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["seq_len 64, 4 kv", "seq_len 128, 8 kv"]
    assert len(axes[0].get_lines()) == 3  # two models and the chance line
    gam_line = next(line for line in axes[0].get_lines() if line.get_label() == "gam")
    assert list(gam_line.get_xdata()) == [64, 128] and list(gam_line.get_ydata()) == [0.012, 0.012]
    assert [ax.get_title() for ax in recall.accuracy_figure(best, "seq_len").get_axes()] == [
        "d_model 64, 4/8 kv",
        "d_model 128, 4/8 kv",
    ]


def test_section_writes_two_figures_and_is_empty_without_recall_rows(tmp_path):
    text = recall.section(_rows(), tmp_path)
    assert text.startswith("## Recall") and "figures/recall-vs-d_model.png" in text
    assert (tmp_path / "figures" / "recall-vs-d_model.png").stat().st_size > 0
    assert (tmp_path / "figures" / "recall-vs-seq_len.png").exists()
    assert recall.section(_rows()[lambda d: d["task"] != "recall"], tmp_path / "none") == ""


def test_the_report_module_imports_no_torch():
    code = "import sys, gam_bench.report.recall; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_report_has_the_section_and_its_method_note(tmp_path):
    rows = _rows().to_dict("records")
    start = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    for i, row in enumerate(rows):
        row.update(suite="recall", cell_id=f"c{i}", run_id=f"r{i}", started_at=start, device="cpu")
    store.append([{k: v for k, v in r.items() if not pd.isna(v)} for r in rows], tmp_path / "results")
    text = write_report(tmp_path / "results", tmp_path / "report").read_text()
    assert text.count("## Recall: multi-query associative recall (MQAR)") == 1
    assert "| transformer | 64 | 4 | 64 | 0.01 (of 2) | 0.990 |" in text
    assert (tmp_path / "report" / "figures" / "recall-vs-seq_len.png").exists()
    method = text[text.index("## Method") :]
    assert "**Recall (MQAR)**" in method and method == method_notes(["throughput", "recall"])
    assert "**Recall (MQAR)**" not in method_notes(["throughput", "perplexity"])
