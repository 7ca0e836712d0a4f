"""The history site built from fake results of several commits (written by the store's own
writer into tmp_path): trends, change points, the summary, and the site's files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from gam_bench.history import build_history
from gam_bench.history.commits import BY_COMMIT_TIME, order_commits
from gam_bench.history.rows import load_rows
from gam_bench.history.trends import build_trends

pytest.importorskip("plotly")
pytest.importorskip("ruptures")

_spec = importlib.util.spec_from_file_location("fake_history", Path(__file__).parent / "fake_history.py")
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

STEPS = {("gam", "time"): (9, 1.4), ("mamba", "ops"): (5, 1.25), ("transformer", "memory"): (11, 0.5)}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    folders = fake.write_history(root / "results", 12, STEPS)
    return folders, root


@pytest.fixture(scope="module")
def built(history):
    folders, root = history
    return build_history(folders, root / "site", recent=5), root / "site"


def test_trends_follow_each_cell_and_gate_metric_in_commit_order(history):
    folders, _ = history
    rows = load_rows(folders)
    commits, how = order_commits(rows, None)
    assert how == BY_COMMIT_TIME  # the fake rows' measurement times are shuffled on purpose
    assert [c.sha for c in commits] == [fake.sha_of(i) for i in range(12)]
    trends = build_trends(rows, commits)
    names = {(t.model, t.name) for t in trends}
    assert names == {(m, metric) for m in fake.MODELS for metric in ("ops", "memory", "time")}  # no counts: null
    found = {(t.model, t.name): [(s.index, round(s.size, 2)) for s in t.steps] for t in trends if t.steps}
    assert found.keys() == STEPS.keys()
    assert found[("mamba", "ops")] == [(5, 0.24)]  # 42 -> 52 ops, exact
    assert found[("transformer", "memory")] == [(11, -0.5)]
    ((at, size),) = found[("gam", "time")]
    assert at == 9 and size == pytest.approx(0.4, abs=0.06)
    gam_time = next(t for t in trends if (t.model, t.name) == ("gam", "time"))
    assert not gam_time.deterministic and gam_time.column == "time_samples_ms"
    assert (gam_time.q25 <= gam_time.median).all() and (gam_time.median <= gam_time.q75).all()
    assert gam_time.rows.tolist() == [1] * 12


def test_runs_of_one_commit_pool_and_the_same_folder_twice_counts_once(tmp_path):
    folders = fake.write_history(tmp_path / "a", 5)
    again = fake.write_history(tmp_path / "b", 5, seed=1)  # a second run of the same five commits
    rows = load_rows([*folders, *again, folders[0]])
    commits, _ = order_commits(rows, None)
    trends = build_trends(rows, commits)
    assert len(commits) == 5
    assert all(t.rows.tolist() == [2] * 5 for t in trends)


def test_site_pages_and_summary(built):
    built, site = built
    assert (built.commits, built.cells, built.trends, built.steps, built.recent_steps) == (12, 3, 9, 3, 2)
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert pages[:1] == ["cells/" + Path(pages[0]).name] and len([p for p in pages if p.startswith("cells/")]) == 3
    assert {"index.html", "metric-time.html", "metric-ops.html", "metric-memory.html"} <= set(pages)
    assert (site / "plotly.min.js").stat().st_size > 1_000_000  # plotly.js, once, in the site
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "cdn.plot.ly" not in text and "https://" not in text.split("</head>")[0]
        assert text.count("plotly.min.js") == 1
    index = (site / "index.html").read_text()
    steps_table = index.split('id="steps"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", steps_table, re.S)[1:]
    assert len(rows) == 2  # the two steps in the newest 5 commits, largest first
    assert "-50.0%" in rows[0] and fake.sha_of(11)[:10] in rows[0] and "better" in rows[0]
    assert re.search(r"\+(3[4-9]|4[0-6])\.\d%", rows[1]) and fake.sha_of(9)[:10] in rows[1] and "worse" in rows[1]
    assert fake.sha_of(5)[:10] not in steps_table  # older than the newest 5


def test_rebuild_in_place_and_refuse_a_foreign_folder(history, built, tmp_path):
    import shutil

    from gam_bench.errors import UserError
    from gam_bench.history.site import MARKER, prepare

    folders, _ = history
    site = shutil.copytree(built[1], tmp_path / "site")  # a site built earlier
    stale = site / "cells" / "stale.html"
    stale.write_text("old")
    prepare(site)  # what a rebuild does first
    assert not stale.exists() and (site / MARKER).is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty and holds no history site"):
        build_history(folders, other)
    assert (other / "notes.txt").read_text() == "mine"


def test_memory_without_tensor_bytes_trends_the_measured_peak_as_a_timed_metric(tmp_path):
    rng = np.random.default_rng(0)
    folders = [fake.write_commit(tmp_path, i, {}, rng, tensor_bytes=i != 2) for i in range(5)]
    rows = load_rows(folders)
    commits, _ = order_commits(rows, None)
    memory = {t.model: t for t in build_trends(rows, commits) if t.name == "memory"}
    assert {t.column for t in memory.values()} == {"peak_mem_bytes"}  # one commit lacks tensor bytes
    assert not any(t.deterministic for t in memory.values())


def test_rows_of_tasks_without_gate_metrics_are_not_trended(tmp_path):
    from gam_bench.errors import UserError
    from gam_bench.tasks import all_tasks

    ungated = next(task.name for task in all_tasks() if not task.gate_metrics)
    folder = fake.write_commit(tmp_path, 0, {}, np.random.default_rng(0), task=ungated)
    with pytest.raises(UserError, match="no ok rows of a task with gate metrics"):
        load_rows([folder])
