"""The answers of the searches stored in a results folder: one per model setting, from its probe
rows (the rows whose `search` column is set), with the cap they ran under. The report reads
these; the runner prints the same answers from the probes it ran (`bisect.answer` for both).

A model setting is the probes' cell config without seq_len (`config_json`), and the search
settings they ran under (the `search` column). The cap: `limits.mem_cap_gb` GiB, else
`limits.mem_cap_fraction` of the device's memory (the rows' `device_mem_total_bytes`), as the
worker applies it (measure/memory.py). No torch here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from gam_bench.search.bisect import Answer, Probe, answer
from gam_bench.search.settings import SearchSettings
from gam_bench.settings import Limits

# a stored cell's limits leave out what it did not set: the defaults it ran with
_DEFAULT = {name: field.default for name, field in Limits.model_fields.items()}


@dataclass(frozen=True)
class Searched:
    """One model setting's stored search: who, under which limits, and what it found."""

    task: str
    model: str
    config: dict[str, Any]  # the probes' cell config without seq_len
    d_model: int | None
    n_layers: int | None
    device: str
    cap_bytes: int | None
    timeout_s: float
    settings: SearchSettings
    answer: Answer
    peak_bytes: int | None = None  # the peak memory of the probe at the longest length that fits

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.config.get("overrides") or {})

    @property
    def cap_text(self) -> str:
        limits = self.config.get("limits") or {}
        if limits.get("mem_cap_gb") is not None:
            return f"{float(limits['mem_cap_gb']):g} GiB"
        where = "RAM" if self.device == "cpu" else "device memory"
        size = f" = {self.cap_bytes / 2**30:.1f} GiB" if self.cap_bytes else ""
        return f"{float(limits.get('mem_cap_fraction', _DEFAULT['mem_cap_fraction'])):g} × {where}{size}"


def probe_rows(newest: pd.DataFrame) -> pd.DataFrame:
    """The rows of search probes (`search` set), newest attempt of each cell."""
    if "search" not in newest or newest.empty:
        return newest.iloc[0:0]
    return newest[newest["search"].notna()]


def grid_rows(newest: pd.DataFrame) -> pd.DataFrame:
    """Every row that is not a search probe (what the tasks' own sections draw)."""
    if "search" not in newest or newest.empty:
        return newest
    return newest[newest["search"].isna()]


def stored_searches(newest: pd.DataFrame) -> list[Searched]:
    """One `Searched` per model setting and search settings, sorted by task then model."""
    rows = probe_rows(newest)
    if rows.empty:
        return []
    keys = [_setting_key(text) for text in rows["config_json"]]
    rows = rows.assign(_setting=keys)
    out = []
    for (setting, search), part in rows.groupby(["_setting", "search"], sort=True):
        out.append(_searched(json.loads(setting), SearchSettings.model_validate_json(search), part))
    return sorted(out, key=lambda s: (s.task, s.model, json.dumps(s.overrides, sort_keys=True, default=str)))


def _setting_key(config_json: str) -> str:
    config = json.loads(config_json)
    config.pop("seq_len", None)
    return json.dumps(config, sort_keys=True, default=str)


def _searched(config: dict[str, Any], settings: SearchSettings, part: pd.DataFrame) -> Searched:
    probes = [
        Probe(int(r.seq_len), str(r.status), float(r.duration_s) if pd.notna(r.duration_s) else 0.0, stored=True)
        for r in part.sort_values("started_at", kind="stable").itertuples(index=False)
    ]
    first = part.iloc[0]
    limits = config.get("limits") or {}
    total = part["device_mem_total_bytes"].dropna()
    if limits.get("mem_cap_gb") is not None:
        cap = int(float(limits["mem_cap_gb"]) * 2**30)
    else:
        fraction = float(limits.get("mem_cap_fraction", _DEFAULT["mem_cap_fraction"]))
        cap = int(fraction * int(total.iloc[0])) if len(total) else None
    found = answer(settings, probes)
    at_fits = part[(part["seq_len"] == found.fits) & (part["status"] == "ok")]["peak_mem_bytes"].dropna()
    return Searched(
        task=str(first["task"]),
        model=str(first["model"]),
        config=config,
        d_model=_int(part["d_model"]),
        n_layers=_int(part["n_layers"]),
        device=str(first["device"]),
        cap_bytes=cap,
        timeout_s=float(limits.get("timeout_s", _DEFAULT["timeout_s"])),
        settings=settings,
        answer=found,
        peak_bytes=int(at_fits.iloc[0]) if len(at_fits) else None,
    )


def _int(column: pd.Series) -> int | None:
    values = column.dropna()
    return int(values.iloc[0]) if len(values) else None
