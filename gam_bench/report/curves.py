"""Throughput rows -> figure groups -> one curve per model, with fits and crossovers.

A group is one (device, level, mode, dtype, batch_size): everything in it is comparable
on one set of axes. A series is one model in a group (split by config overrides when a suite
sweeps them, e.g. d_model). A point is one sequence length of a series; when several cells land
on one point (seeds), their repeats are pooled and the point is ok if any cell was.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gam_bench.analysis import Crossover, ExponentFit, crossover, fit_exponent
from gam_bench.analysis.rows import parse_config
from gam_bench.report.labels import execution_mode, variant_labels
from gam_bench.store import STATUSES

GROUP_COLUMNS = ("device", "level", "mode", "dtype", "batch_size")


@dataclass(frozen=True, order=True)
class GroupKey:
    device: str
    level: str
    mode: str
    dtype: str
    batch_size: int

    @property
    def title(self) -> str:
        return f"{self.level} · {self.mode} · {self.dtype} · batch {self.batch_size} · {self.device}"

    @property
    def slug(self) -> str:
        return f"{self.device}-{self.level}-{self.mode}-{self.dtype}-b{self.batch_size}"


@dataclass
class Series:
    """One model's curve. `points` has one row per seq_len (ascending), columns:
    seq_len, status, time_ms, time_q25, time_q75, samples, peak_mem_bytes, tokens_per_s,
    tps_q25, tps_q75, backend, error, mfu (fraction of the calibrated matmul peak; NaN without),
    roofline_ms and roofline_fraction (the fairness audit, report/audit.py; NaN without), family."""

    label: str
    model: str
    points: pd.DataFrame
    time_fit: ExponentFit | None = None
    mem_fit: ExponentFit | None = None

    @property
    def ok(self) -> pd.DataFrame:
        return self.points[self.points["status"] == "ok"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.points[self.points["status"] != "ok"]


@dataclass
class Group:
    key: GroupKey
    series: list[Series]
    crossovers: list[Crossover] = field(default_factory=list)


def build_groups(rows: pd.DataFrame) -> list[Group]:
    """Latest throughput rows -> groups sorted by key, series sorted by label, fitted."""
    rows = rows[rows["task"] == "throughput"]
    groups = []
    for values, part in rows.groupby(list(GROUP_COLUMNS), dropna=False, sort=True):
        key = GroupKey(*(_text(v) for v in values[:4]), _int(values[4]))
        series = [_fitted(s) for s in _series(part)]
        groups.append(Group(key, series, _crossovers(series)))
    return sorted(groups, key=lambda g: g.key)


def _text(value: object) -> str:
    return "?" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _int(value: object) -> int:
    return -1 if pd.isna(value) else int(value)


def _series(part: pd.DataFrame) -> list[Series]:
    """One series per model and config overrides (seeds are pooled, not split)."""
    part = part.assign(_variant=[variant(r) for r in part.itertuples()])
    labels = variant_labels(
        ((model, variant), str(model), json.loads(variant))
        for model, variant in part[["model", "_variant"]].drop_duplicates().itertuples(index=False)
    )
    out = [
        Series(labels[key], str(key[0]), _points(rows)) for key, rows in part.groupby(["model", "_variant"], sort=True)
    ]
    return sorted(out, key=lambda s: s.label)


def variant(row: object) -> str:
    """The cell's model overrides and execution mode as canonical JSON (d_model / n_layers when not on record)."""
    config = parse_config(row.config_json)
    if "overrides" in config:
        overrides = config["overrides"] or {}
    else:
        overrides = {"d_model": _int(row.d_model), "n_layers": _int(row.n_layers)}
    # execution mode: compiled and eager cells of a model are separate curves, never pooled
    return json.dumps({**overrides, **execution_mode(config)}, sort_keys=True, default=str)


POINT_COLUMNS = (
    "seq_len",
    "status",
    "time_ms",
    "time_q25",
    "time_q75",
    "samples",
    "peak_mem_bytes",
    "tokens_per_s",
    "tps_q25",
    "tps_q75",
    "backend",
    "error",
    "mfu",
    "roofline_ms",
    "roofline_fraction",
    "family",
)


def _points(rows: pd.DataFrame) -> pd.DataFrame:
    points = [_point(int(n), cells) for n, cells in rows.groupby("seq_len", sort=True)]
    return pd.DataFrame(points, columns=list(POINT_COLUMNS)).sort_values("seq_len").reset_index(drop=True)


def _point(seq_len: int, cells: pd.DataFrame) -> dict:
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        worst = min(cells["status"], key=STATUSES.index)  # first in STATUSES order after ok
        first = cells[cells["status"] == worst].iloc[0]
        return {"seq_len": seq_len, "status": worst, "error": first["error"], "samples": None}
    time_ms, q25, q75, samples = _pooled_time(ok)
    tps = float(ok["tokens_per_s"].median())
    return {
        "seq_len": seq_len,
        "status": "ok",
        "time_ms": time_ms,
        "time_q25": q25,
        "time_q75": q75,
        "samples": samples,
        "peak_mem_bytes": float(ok["peak_mem_bytes"].median()),
        "tokens_per_s": tps,
        # tokens/s is inversely proportional to time: the time IQR maps onto it.
        "tps_q25": tps * time_ms / q75 if q75 else np.nan,
        "tps_q75": tps * time_ms / q25 if q25 else np.nan,
        "backend": ", ".join(sorted(set(ok["backend"].dropna()))),
        "error": None,
        "mfu": _median(ok, "mfu"),  # fraction of the calibrated matmul peak
        "roofline_ms": _median(ok, "roofline_ms"),  # the fairness audit (report/audit.py)
        "roofline_fraction": _median(ok, "roofline_ms") / time_ms if time_ms else np.nan,
        "family": ", ".join(sorted(set(ok["family"].dropna()))) if "family" in ok else "",
    }


def _median(ok: pd.DataFrame, column: str) -> float:
    """Median of a column over a point's ok cells; NaN when absent (rows from before the column)."""
    values = ok[column].dropna() if column in ok else ()
    return float(values.median()) if len(values) else np.nan


def _pooled_time(ok: pd.DataFrame) -> tuple[float, float, float, np.ndarray | None]:
    """(median, q25, q75, repeats) of one point: the stored figures for one cell, pooled for several."""
    lists = [np.asarray(s, dtype=float) for s in ok["time_samples_ms"] if s is not None and len(s)]
    if len(ok) == 1:
        row = ok.iloc[0]
        return (
            float(row["time_ms"]),
            float(row["time_ms_q25"]),
            float(row["time_ms_q75"]),
            (lists[0] if lists else None),
        )
    if not lists:
        return float(ok["time_ms"].median()), np.nan, np.nan, None
    pooled = np.concatenate(lists)
    q25, med, q75 = np.percentile(pooled, [25, 50, 75])
    return float(med), float(q25), float(q75), pooled


def _fitted(series: Series) -> Series:
    ok = series.ok
    series.time_fit = fit_exponent(ok["seq_len"], ok["time_ms"], list(ok["samples"]))
    mem = ok.dropna(subset=["peak_mem_bytes"])
    series.mem_fit = fit_exponent(mem["seq_len"], mem["peak_mem_bytes"])
    return series


def _crossovers(series: list[Series]) -> list[Crossover]:
    out = []
    for a, b in itertools.combinations(series, 2):
        a_points = dict(zip(a.ok["seq_len"], a.ok["time_ms"]))
        b_points = dict(zip(b.ok["seq_len"], b.ok["time_ms"]))
        found = crossover(a.label, a_points, b.label, b_points, a.time_fit, b.time_fit)
        if found is not None:
            out.append(found)
    return out
