"""The rows a history is built from: results of many commits, loaded from many folders.

Any results folder works: a `gam-bench run --out` folder, a `check --against --out DIR`'s
`DIR/base` and `DIR/head` (their `run-N/` folders included), a baseline, or a folder of such
folders. Every row names the commit that measured it (`git_sha`; since schema 7 also
`git_commit_time` and `git_dirty`). A folder whose rows name no commit is refused; single rows
without one are skipped with a warning.

Kept: `ok` rows of the tasks with gate metrics (`Task.gate_metrics`: what a history trends),
one row per attempt (`run_id`; the same folder given twice counts once).

A cell is followed across commits by its configuration (`series_key`): the cell's config
without the keys that do not change what is measured (the gate's `VOLATILE_KEYS`, but keeping
device and thread count, whose times do not mix) and without null or empty entries, so that a
newer harness adding an optional field leaves the series whole.

No torch here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gam_bench import store
from gam_bench.analysis.matching import VOLATILE_KEYS, gated_tasks
from gam_bench.analysis.rows import cell_label, parse_config
from gam_bench.errors import UserError

REVISION = "git_sha"
_KEPT_IN_KEY = ("device", "threads")  # volatile for pairing, but a series never mixes them


def load_rows(folders: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """The ok rows of gated tasks under `folders`, each naming its commit, with the columns
    `series` (the cell across commits) and `label` (its name for people) added."""
    frames = [_load_folder(Path(folder)) for folder in folders]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df = df.drop_duplicates("run_id", keep="last") if "run_id" in df else df
    ok = df[(df["status"] == "ok") & df["task"].fillna("throughput").isin(gated_tasks())]
    if ok.empty:
        names = ", ".join(str(folder) for folder in folders)
        raise UserError(f"{names}: no ok rows of a task with gate metrics ({', '.join(gated_tasks())}) to trend")
    ok = ok.copy()
    ok["task"] = ok["task"].fillna("throughput")
    ok["series"] = [series_key(row) for row in ok.to_dict("records")]
    ok["label"] = [_label(row) for row in ok.to_dict("records")]
    return ok.reset_index(drop=True)


def _load_folder(folder: Path) -> pd.DataFrame:
    df = store.load(folder)  # UserError naming a missing folder
    if df.empty:
        raise UserError(f"{folder}: no result rows (no gam-bench results parts under it)")
    known = df[REVISION].notna() & (df[REVISION].astype(str).str.strip() != "")
    if not known.any():
        raise UserError(
            f"{folder}: no row records its git revision ({REVISION} is empty in all {len(df)} rows); "
            "a history needs results measured in a git checkout"
        )
    if not known.all():
        print(
            f"warning: {folder}: skipped {int((~known).sum())} rows without a git revision ({REVISION})",
            file=sys.stderr,
        )
    return df[known]


def series_key(row: dict) -> str:
    """The cell's identity across commits: its config without volatile, null or empty entries."""
    config = parse_config(row.get("config_json"))
    if not config:
        return f"cell:{row.get('cell_id')}"
    dropped = set(VOLATILE_KEYS) - set(_KEPT_IN_KEY)
    kept = {key: value for key, value in config.items() if key not in dropped and value not in (None, [], {}, "")}
    kept.setdefault("task", row.get("task") or "throughput")
    if kept.get("threads") is None and row.get("threads") is not None and row.get("threads") == row.get("threads"):
        kept["threads"] = int(row["threads"])  # the suite left it to the machine: what the row ran with
    return json.dumps(kept, sort_keys=True)


def _label(row: dict) -> str:
    """`throughput gam block forward float32 B=2 T=128 d_model=64 (cpu, 1 thread)`."""
    config = parse_config(row.get("config_json"))
    threads = config.get("threads") or row.get("threads")
    where = f"{row.get('device')}, {threads} thread{'s' if threads != 1 else ''}" if threads else str(row.get("device"))
    return f"{row.get('task')} {cell_label(row)} ({where})"
