"""Reports from stored results: report.md plus the figures it links (PNG, SVG beside). No torch.

    from gam_bench.report import write_report
    write_report("results/scaling", "reports/scaling")  # -> Path("reports/scaling/report.md")

Modules: curves (rows -> groups of model curves with fits), crossings (crossovers judged
against the noise), figure (sizes, style, PNG + SVG output), plots (the scaling figures),
tables (Markdown tables), perplexity (perplexity tables and figures), markdown (assembly),
html/ (the self-contained interactive page, `gam-bench report --html`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gam_bench import store
from gam_bench.analysis.rows import TENSOR_MEMORY, frame_memory_column
from gam_bench.errors import UserError

REPORT_NAME = "report.md"


def default_out_dir(df: pd.DataFrame, results_path: str | os.PathLike[str]) -> Path:
    """reports/<suite name>/ (the results folder's name when the rows name no single suite)."""
    suites = sorted({str(s) for s in df["suite"].dropna()})
    name = suites[0] if len(suites) == 1 else Path(results_path).resolve().name.removesuffix(".parquet")
    return Path("reports") / name


def judged_memory(newest: pd.DataFrame) -> pd.DataFrame:
    """The rows with `peak_mem_bytes` holding the memory figure the report shows.

    That is `peak_tensor_bytes` (live tensor storage, deterministic) when every ok row has it; the
    environment table's "Peak memory source" then says so. Otherwise the measured peak, as stored.
    """
    if newest.empty or frame_memory_column(newest) != TENSOR_MEMORY:
        return newest
    return newest.assign(peak_mem_bytes=newest[TENSOR_MEMORY], mem_source="peak_tensor_bytes (live tensor storage)")


def one_suite(df: pd.DataFrame, results_path: str | os.PathLike[str], suite: str | None = None) -> pd.DataFrame:
    """The rows of one suite: `suite`'s, or all when they name at most one. Rows of several suites
    (`gam-bench report results/`: every sweep, test fixtures, other machines) are refused with
    what was found, rather than merged into one report."""
    from gam_bench.registry import did_you_mean

    counts = df.groupby(df["suite"].fillna("?"))["cell_id"].nunique().sort_index()
    if suite is not None:
        if suite not in counts.index:
            raise UserError(
                f"--suite: {results_path} holds no rows of suite {suite!r}{did_you_mean(suite, counts.index)}"
            )
        return df[df["suite"] == suite]
    if len(counts) <= 1:
        return df
    found = ", ".join(f"{name} ({cells} cells)" for name, cells in counts.items())
    hosts = sorted({str(h) for h in df["hostname"].dropna()}) if "hostname" in df else []
    machines = f" from {len(hosts)} machines" if len(hosts) > 1 else ""
    raise UserError(
        f"{results_path}: holds rows of {len(counts)} suites{machines}: {found}; report one results folder "
        f"(e.g. gam-bench report results/{counts.index[0]}) or choose one with --suite NAME"
    )


def write_report(
    results_path: str | os.PathLike[str] | list[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    suite: str | None = None,
    figures: str = "paper",
    html: bool = False,
) -> Path:
    """Write report.md and its figures for the results under `results_path` (or several results
    folders, one suite each, reported together); return its path.

    out_dir defaults to `default_out_dir`. Rows of several suites need `suite` (`one_suite`).
    figures: the figures' size and type, "paper" (a paper column) or "slide" (`figure.SIZES`);
    every PNG has an SVG beside it. html: also write report.html beside it (`report.html`; needs
    the `html` extra, checked before anything is written).
    Raises UserError when there is nothing to report. An
    unreadable or foreign part is skipped with a warning, or with `strict` refused (`store.load`).
    """
    from gam_bench.report.figure import figure_size  # matplotlib: only when a report is written
    from gam_bench.report.markdown import render

    if html:
        from gam_bench.report.html import require

        require()  # before any work: a missing extra is a one-line error, exit 2

    paths = [results_path] if isinstance(results_path, (str, os.PathLike)) else list(results_path)
    if len(paths) > 1 and suite is not None:
        raise UserError(f"--suite: {suite}: chooses among the suites of one results folder; give one RESULTS with it")
    frames = []
    for path in paths:  # several folders: one suite each, reported together (sections that span tasks)
        df = store.load(path, strict=strict)
        if df.empty:
            raise UserError(f"{path}: no result rows to report")
        frames.append(one_suite(df, path, suite))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    named = paths[0] if len(paths) == 1 else "+".join(Path(p).resolve().name for p in paths)
    out = Path(out_dir) if out_dir is not None else default_out_dir(df, named)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: report output must be a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    newest = judged_memory(store.latest(df))
    with figure_size(figures):
        text = render(df, newest, out)
    path = out / REPORT_NAME
    path.write_text(text, encoding="utf-8")
    if html:
        from gam_bench.report.html import write_html

        write_html(out, text, newest)
    return path


__all__ = ["REPORT_NAME", "default_out_dir", "write_report"]
