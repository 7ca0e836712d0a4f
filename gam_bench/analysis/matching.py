"""Pairing the cells of two result sets, and refusing pairs whose environments differ.

- **Matching.** Cells are paired by `cell_id`. Cells left over on both sides are then paired by
  their configuration (`config_json` without the volatile keys in `VOLATILE_KEYS`), so a change
  to the harness that alters cell ids, measurement settings or limits still compares like with
  like. Cells found on one side only are listed, not judged.
- **Environment.** Times from different devices or thread counts are not comparable: paired
  cells that differ there raise `UserError` unless forced. A different CPU model or device name,
  or a clearly busier machine, is only noted.

No torch here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from gam_bench import store
from gam_bench.analysis.rows import parse_config, present
from gam_bench.errors import UserError

# Keys of a cell's config that do not change what is measured; dropped when matching by config.
# `device` is dropped too so that a cpu/cuda pair is matched and then refused with a reason.
VOLATILE_KEYS = ("limits", "measure", "device", "threads", "suite", "out", "plugins", "executor")

LOAD_NOTE_GAP = 1.0  # mean 1-minute load average difference that earns a note

Pair = tuple[pd.Series, pd.Series, str]  # (baseline row, candidate row, matched_by)


def gated_tasks() -> list[str]:
    """The tasks whose rows the gate compares: those with gate metrics (`Task.gate_metrics`)."""
    from gam_bench.tasks import all_tasks

    return [task.name for task in all_tasks() if task.gate_metrics]


def comparable_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The newest attempt of every cell of a task with gate metrics, one row per cell_id."""
    df = store.latest(df)
    if df.empty:
        return df
    df = df[df["task"].fillna("throughput").isin(gated_tasks())]
    return df.drop_duplicates("cell_id", keep="last").reset_index(drop=True)


def config_key(config_json: Any) -> str | None:
    """A cell's config without the volatile keys, as canonical JSON (None if unreadable)."""
    config = parse_config(config_json)
    if not config:
        return None
    return json.dumps({k: v for k, v in config.items() if k not in VOLATILE_KEYS}, sort_keys=True)


def match_cells(base: pd.DataFrame, cand: pd.DataFrame) -> tuple[list[Pair], pd.DataFrame, pd.DataFrame]:
    """Pairs (baseline row, candidate row, matched_by), then unmatched baseline and candidate rows."""
    base_by_id = {row["cell_id"]: row for _, row in base.iterrows()}
    pairs = [(base_by_id[row["cell_id"]], row, "cell_id") for _, row in cand.iterrows() if row["cell_id"] in base_by_id]
    matched = {c["cell_id"] for _, c, _ in pairs}
    base_keys = _unique_keys(base[~base["cell_id"].isin(matched)])
    cand_keys = _unique_keys(cand[~cand["cell_id"].isin(matched)])
    for key in sorted(set(base_keys) & set(cand_keys)):
        pairs.append((base_keys[key], cand_keys[key], "config"))
    paired_base = {b["cell_id"] for b, _, _ in pairs}
    paired_cand = {c["cell_id"] for _, c, _ in pairs}
    return pairs, base[~base["cell_id"].isin(paired_base)], cand[~cand["cell_id"].isin(paired_cand)]


def _unique_keys(df: pd.DataFrame) -> dict[str, pd.Series]:
    """config key -> row, for keys that occur exactly once (ambiguous keys are not matched)."""
    keys = df["config_json"].map(config_key) if not df.empty else pd.Series(dtype=object)
    unique = keys[keys.notna() & ~keys.duplicated(keep=False)]
    return {key: df.loc[index] for index, key in unique.items()}


def _setup(row: pd.Series) -> str:
    threads = row.get("threads")
    threads_text = int(threads) if present(threads) else "?"
    return f"device={row.get('device')!r}, threads={threads_text}"


def check_environment(pairs: list[Pair], names: tuple[str, str], force: bool) -> list[str]:
    """Refuse cross-device / cross-thread-count pairs unless forced; return notes for the reader."""
    notes: list[str] = []
    setups = sorted({(_setup(b), _setup(c)) for b, c, _ in pairs if _setup(b) != _setup(c)})
    if setups and not force:
        base_setup, cand_setup = setups[0]
        raise UserError(
            f"{names[0]}: {base_setup} but {names[1]}: {cand_setup}; times from different devices or "
            "thread counts are not comparable (rerun on the same setup, or pass --force)"
        )
    notes += [f"forced: comparing baseline {b} with candidate {c}" for b, c in setups]
    for column in ("cpu_model", "device_name"):
        seen = sorted({(_text(b.get(column)), _text(c.get(column))) for b, c, _ in pairs})
        notes += [f"{column} differs: baseline {b!r}, candidate {c!r}" for b, c in seen if b != c]
    return notes + _load_note(pairs)


def _load_note(pairs: list[Pair]) -> list[str]:
    """A note when one side ran on a clearly busier machine (1-minute load average, per cell)."""
    loads = [[row.get("load_avg_1m") for row in side] for side in zip(*[(b, c) for b, c, _ in pairs])]
    means = [np.mean([v for v in side if present(v)]) if any(present(v) for v in side) else None for side in loads]
    if None in means or abs(means[0] - means[1]) < LOAD_NOTE_GAP:
        return []
    return [
        f"load average differs: baseline {means[0]:.1f}, candidate {means[1]:.1f} "
        "(times from a busy machine are suspect)"
    ]


def _text(value: Any) -> str:
    return str(value) if present(value) else "unknown"
