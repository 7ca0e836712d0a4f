"""One real search, end to end: probes run as cells in fresh workers under a small memory cap,
their rows (oom included) are stored, and a second run resumes without running any."""

from __future__ import annotations

from rich.console import Console

from gam_bench import store
from gam_bench.runner import run_suite
from gam_bench.search.answers import stored_searches

# transformer-naive materialises the T x T scores: at d_model 16 one block's forward+backward
# peaks at ~0.2 GiB of RSS at T=2048 and needs more than 0.3 GiB at T=4096 (64 MiB per score copy).
# Two probes, two worker starts: 2048 ok, 4096 oom, and the gap is one step (converged).
SUITE = """
name: tinyfit
models:
  - {name: transformer-naive, overrides: {n_heads: 1}}
axes: {d_model: 16}
level: block
mode: forward_backward
device: cpu
threads: 1
calibrate: false
measure: {warmup: 0, repeats: 1, flops: false}
limits: {timeout_s: 60, mem_cap_gb: 0.3}
search: {start: 2048, max_seq_len: 16384, precision: 0.5, multiple_of: 2048}
"""


def test_a_tiny_search_runs_through_the_worker_and_resumes(tmp_path):
    path = tmp_path / "tinyfit.yaml"
    path.write_text(SUITE)
    out = tmp_path / "results"
    console = Console(file=(tmp_path / "log.txt").open("w"), width=200)
    run_suite(path, out=out, report=False, console=console)
    rows = store.latest(store.load(out))
    by_length = dict(zip(rows["seq_len"], rows["status"]))
    assert by_length[2048] == "ok"
    assert by_length[4096] == "oom"  # the cap, recorded as a row
    assert len(rows) == 2 and rows["search"].notna().all()
    (found,) = stored_searches(rows)
    assert (found.answer.fits, found.answer.fails, found.answer.status) == (2048, 4096, "converged")
    before = len(store.load(out))
    log = tmp_path / "again.txt"
    run_suite(path, out=out, report=False, console=Console(file=log.open("w"), width=200))
    assert len(store.load(out)) == before  # every probe was stored: nothing ran again
    assert "(stored)" in log.read_text()
