"""The decode section of a report: per-token decode latency, state bytes and prefill
time against context length, with fitted exponents, a Table-2-layout table, crossovers and a
one-line reading of each exponent. No torch.

Rows of the decode task, the newest attempt of each cell (`store.latest`), one row per cell with
the columns of gam_bench.tasks.decode (decode_ms_per_token, decode_samples_ms, state_bytes,
prefill_ms, prefill_samples_ms, ...). A group is one (device, level, dtype, batch_size); a
series is one model in it (variants labelled as in report.labels). Exponents are fitted as the
time plots' are (analysis.scaling.fit_exponent: the longest lengths, bootstrap CI over the
stored samples; state bytes are measured once, so no CI).

    text = render_decode_section(rows, out_dir)   # Markdown; writes decode-*.png into out_dir
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from gam_bench.analysis import Crossover, ExponentFit, crossover, fit_exponent
from gam_bench.analysis.rows import parse_config
from gam_bench.report import crossings, tables
from gam_bench.report.labels import execution_mode, variant_labels
from gam_bench.report.plots import new_figure, palette, plot_style, save_png
from gam_bench.report.tables import MIB, MISSING, fmt_len, fmt_num, fmt_slope, markdown_table, status_label

GROUP_COLUMNS = ("device", "level", "dtype", "batch_size")
NEAR = 0.2  # a slope within this of 0 / 1 / 2 reads as constant / linear / quadratic


@dataclass(frozen=True)
class DecodeMetric:
    name: str
    column: str
    samples: str | None  # per-repeat column for the bootstrap CI (None: measured once)
    scale: float
    ylabel: str
    title: str


METRICS = {
    "decode": DecodeMetric(
        "decode", "decode_ms_per_token", "decode_samples_ms", 1.0, "Decode latency (ms / token)", "Decode latency"
    ),
    "state": DecodeMetric("state", "state_bytes", None, 1 / MIB, "State (MiB)", "Decode state"),
    "prefill": DecodeMetric("prefill", "prefill_ms", "prefill_samples_ms", 1.0, "Prefill time (ms)", "Prefill time"),
}


@dataclass
class DecodeSeries:
    """One model's points (one row per context length, ascending) and a fit per metric."""

    label: str
    points: pd.DataFrame
    fits: dict[str, ExponentFit | None] = field(default_factory=dict)

    def ok(self, metric: DecodeMetric) -> pd.DataFrame:
        p = self.points[self.points["status"] == "ok"]
        values = pd.to_numeric(p[metric.column], errors="coerce")
        return p[values.notna() & (values > 0)]


@dataclass
class DecodeGroup:
    key: tuple[str, str, str, int]
    series: list[DecodeSeries]
    crossovers: list[Crossover] = field(default_factory=list)

    @property
    def title(self) -> str:
        device, level, dtype, batch = self.key
        return f"{level} · {dtype} · batch {batch} · {device}"

    @property
    def slug(self) -> str:
        device, level, dtype, batch = self.key
        return f"{device}-{level}-{dtype}-b{batch}"


READINGS = ((0, "constant"), (1, "linear"), (2, "quadratic"))


def reading(fit: ExponentFit | None, quantity: str) -> str:
    """One line on what a fitted exponent says, e.g. "... constant in context (slope 0.03)".

    A slope within NEAR of 0 / 1 / 2 (and, with a CI, a CI that holds it) reads as constant /
    linear / quadratic; a slope farther off whose CI holds exactly one of them reads as
    "consistent with" it; any other slope as a power of N."""
    if fit is None:
        return MISSING
    s = fit.slope
    ci = f", 95% CI [{fit.ci_low:.2f}, {fit.ci_high:.2f}]" if fit.has_ci else ""
    inside = [(t, w) for t, w in READINGS if fit.has_ci and fit.ci_low <= t <= fit.ci_high]
    for target, words in READINGS:
        if abs(s - target) <= NEAR and (not fit.has_ci or (target, words) in inside):
            return f"{quantity} {words} in context (slope {s:.2f}{ci})"
    if len(inside) == 1:
        return f"{quantity} consistent with {inside[0][1]} in context (slope {s:.2f}{ci})"
    trend = "grows" if s > 0 else "falls"
    return f"{quantity} {trend} like N^{s:.2f} (slope {s:.2f}{ci})"


def build_decode_groups(rows: pd.DataFrame) -> list[DecodeGroup]:
    """Latest decode rows -> groups sorted by key, series by label, with fits and crossovers."""
    rows = rows[rows["task"] == "decode"]
    groups = []
    for values, part in rows.groupby(list(GROUP_COLUMNS), dropna=False, sort=True):
        key = (str(values[0]), str(values[1]), str(values[2]), int(values[3]))
        series = [_fitted(s) for s in _series(part)]
        groups.append(DecodeGroup(key, series, _crossovers(series)))
    return sorted(groups, key=lambda g: g.key)


def _variant(config_json: object) -> str:
    """A cell's config without its context length (canonical JSON): the cells of one curve."""
    config = {k: v for k, v in parse_config(config_json).items() if k != "seq_len"}
    return json.dumps({**config, **execution_mode(config)}, sort_keys=True, default=str)


def _series(part: pd.DataFrame) -> list[DecodeSeries]:
    configs = part.get("config_json", pd.Series(index=part.index, dtype=object))
    part = part.assign(_config=[_variant(c) for c in configs])
    variants = {(m, c): (m, json.loads(c)) for m, c in zip(part["model"], part["_config"])}
    labels = variant_labels((k, m, cfg) for k, (m, cfg) in variants.items())
    out = []
    for (model, config), rows in part.groupby(["model", "_config"], sort=True):
        points = rows.sort_values("seq_len").drop_duplicates("seq_len", keep="last").reset_index(drop=True)
        missing = [c for m in METRICS.values() for c in (m.column, m.samples) if c and c not in points]
        points = points.assign(**dict.fromkeys(missing))  # a mode that did not measure them
        out.append(DecodeSeries(labels[(model, config)], points))
    return sorted(out, key=lambda s: s.label)


def _fitted(s: DecodeSeries) -> DecodeSeries:
    for name, m in METRICS.items():
        ok = s.ok(m)
        samples = list(ok[m.samples]) if m.samples and m.samples in ok else None
        values = pd.to_numeric(ok[m.column]).to_numpy(float) if len(ok) else []
        s.fits[name] = fit_exponent(ok["seq_len"].astype(int).tolist(), values, samples) if len(ok) else None
    return s


def _crossovers(series: list[DecodeSeries]) -> list[Crossover]:
    m = METRICS["decode"]
    points = {s.label: dict(zip(s.ok(m)["seq_len"].astype(int), s.ok(m)[m.column].astype(float))) for s in series}
    found = []
    for a, b in itertools.combinations(series, 2):
        c = crossover(a.label, points[a.label], b.label, points[b.label], a.fits.get("decode"), b.fits.get("decode"))
        if c is not None:
            found.append(c)
    return found


def decode_figure(group: DecodeGroup, metric: str, colors: dict[str, str]) -> Figure:
    """One metric against context length, a curve (and its fitted power law) per model."""
    m = METRICS[metric]
    with plot_style():
        fig, ax = new_figure()
        for s in group.series:
            ok = s.ok(m)
            if ok.empty:
                continue
            x, y = ok["seq_len"].to_numpy(float), ok[m.column].to_numpy(float) * m.scale
            fit = s.fits.get(metric)
            label = s.label if fit is None else f"{s.label} (slope {fit.slope:.2f})"
            (line,) = ax.plot(x, y, marker="o", markersize=4, linewidth=1.2, color=colors[s.label], label=label)
            line.set_gid(f"series:{s.label}")
            if fit is not None:
                wx = np.array([fit.window[0], fit.window[-1]], dtype=float)
                ax.plot(wx, fit.predict(wx) * m.scale, "--", linewidth=0.9, color=colors[s.label], gid=f"fit:{s.label}")
        if metric == "decode":
            found = noise(group)
            for c in group.crossovers:
                if found.get((c.a, c.b)):  # measured, and outside the noise (crossings)
                    ax.axvline(c.seq_len, color="0.4", linestyle=":", linewidth=0.9, gid=f"crossover:{c.a}|{c.b}")
        _finish_axes(ax, group, m)
    return fig


def _finish_axes(ax, group: DecodeGroup, m: DecodeMetric) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    lengths = sorted({int(n) for s in group.series for n in s.points["seq_len"]})
    if lengths:
        ax.set_xlim(lengths[0] / 1.25, lengths[-1] * 1.5)
        ticks = lengths[:: max(1, len(lengths) // 8)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.set_xticklabels([fmt_len(n) for n in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
    if not ax.lines:
        ax.set_ylim(1, 10)
        ax.text(0.5, 0.5, "no cell measured this", transform=ax.transAxes, ha="center", color="0.4")
    ax.set_xlabel("Context length N (tokens)")
    ax.set_ylabel(m.ylabel)
    ax.set_title(f"{m.title} vs context length\n{group.title}")
    if ax.lines:
        ax.legend(loc="best", frameon=True)


def decode_table(group: DecodeGroup) -> str:
    """Table-2 layout: a row per context length; decode ms/token, state MiB, prefill ms per model."""
    headers = ["Context N"]
    for s in group.series:
        headers += [f"{s.label} decode (ms/token)", f"{s.label} state (MiB)", f"{s.label} prefill (ms)"]
    lengths = sorted({int(n) for s in group.series for n in s.points["seq_len"]})
    rows = []
    for n in lengths:
        row: list[object] = [n]
        for s in group.series:
            row += _cells(s.points[s.points["seq_len"] == n])
        rows.append(row)
    return markdown_table(headers, rows)


def _cells(point: pd.DataFrame) -> list[str]:
    if point.empty:
        return ["", "", ""]
    p = point.iloc[0]
    if p["status"] != "ok":
        return [status_label(p["status"])] * 3
    state = p.get("state_bytes")
    return [
        fmt_num(p.get("decode_ms_per_token")),
        fmt_num(None if state is None or pd.isna(state) else state / MIB),
        fmt_num(p.get("prefill_ms")),
    ]


def exponent_table(group: DecodeGroup) -> str:
    """Per model and metric: the fitted slope, its CI, the window and a one-line reading."""
    quantities = {"decode": "per-token decode latency", "state": "state size", "prefill": "prefill time"}
    rows = []
    for s in group.series:
        for name, words in quantities.items():
            fit = s.fits.get(name)
            slope, ci = fmt_slope(fit)
            win = f"{fmt_len(fit.window[0])}–{fmt_len(fit.window[-1])}" if fit else MISSING
            rows.append([s.label, METRICS[name].title, slope, ci, win, reading(fit, words)])
    return markdown_table(["Model", "Quantity", "Slope", "95% CI", "Window", "Reading"], rows, align="llrrll")


def crossover_table(group: DecodeGroup) -> str:
    """Where each pair of models swaps order in per-token decode latency."""
    return tables.crossover_table(group.crossovers, length="N", noise=noise(group))


def noise(group: DecodeGroup) -> dict[tuple[str, str], bool]:
    """(a, b) -> whether a measured crossover of decode latency is outside the noise: the IQRs
    of the stored per-token repeats separate on both sides of it (report/crossings.py)."""
    m = METRICS["decode"]
    iv = {s.label: crossings.sample_intervals(s.ok(m), "seq_len", m.column, m.samples) for s in group.series}
    return {(c.a, c.b): crossings.separated_intervals(c, iv[c.a], iv[c.b]) for c in group.crossovers}


def render_decode_section(rows: pd.DataFrame, out_dir: str | Path, heading: str = "##", figures: str = "") -> str:
    """The decode section's Markdown ("" when there are no decode rows). Figures go to
    out_dir/figures and are linked relative to out_dir (where report.md is)."""
    groups = build_decode_groups(rows)
    if not groups:
        return ""
    folder = Path(out_dir) / figures
    colors = palette([s.label for g in groups for s in g.series])
    parts = [f"{heading} Inference: prefill, decode latency and state vs context\n", _INTRO]
    for g in groups:
        parts.append(f"{heading}# {g.title}\n")
        for metric in METRICS:
            path = save_png(decode_figure(g, metric, colors), folder / f"decode-{metric}-{g.slug}.png")
            link = f"{figures}/{path.name}" if figures else path.name
            parts.append(f"![{METRICS[metric].title} vs context, {g.title}]({link})\n")
        parts += [
            f"{heading}## Decode latency, state and prefill time (paper Table 2 layout)\n",
            decode_table(g),
            f"{heading}## Exponents and readings\n",
            exponent_table(g),
        ]
        if g.crossovers:
            parts += [f"{heading}## Crossovers of decode latency\n", crossover_table(g)]
    return "\n".join(parts)


def section(rows: pd.DataFrame, out_dir: str | Path, figures: str, colors: object = None) -> str:
    """The decode section as the decode task's report hook gives it (its own palette)."""
    return render_decode_section(rows, out_dir, figures=figures)


_INTRO = (
    "Per cell: prefill time of N tokens (median of its repeats), per-token decode latency at "
    "context N (median of the decode_tokens steps, each timed on its own), and the decode "
    "state's tensor bytes at N (KV cache, conv window, SSM state). Slopes are fitted as in the "
    "throughput sections (longest lengths, bootstrap 95% CI over the stored steps; the state "
    "is measured once, so it has no CI). A decode slope near 0 means constant-time decode.\n"
)
