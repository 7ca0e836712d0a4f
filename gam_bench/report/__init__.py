"""Reports from stored results: report.md plus the PNG figures it links. No torch.

    from gam_bench.report import write_report
    write_report("results/scaling", "reports/scaling")  # -> Path("reports/scaling/report.md")

Modules: curves (rows -> groups of model curves with fits), plots (matplotlib figures),
tables (Markdown tables), perplexity (perplexity tables and figures), markdown (assembly).
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


def write_report(
    results_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None, *, strict: bool = False
) -> Path:
    """Write report.md and its figures for the results under `results_path`; return its path.

    out_dir defaults to `default_out_dir`. Raises UserError when there is nothing to report. An
    unreadable or foreign part is skipped with a warning, or with `strict` refused (`store.load`).
    """
    from gam_bench.report.markdown import render  # matplotlib: only when a report is written

    df = store.load(results_path, strict=strict)
    if df.empty:
        raise UserError(f"{results_path}: no result rows to report")
    out = Path(out_dir) if out_dir is not None else default_out_dir(df, results_path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: report output must be a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    text = render(df, judged_memory(store.latest(df)), out)
    path = out / REPORT_NAME
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["REPORT_NAME", "default_out_dir", "write_report"]
