"""The fairness audit of a throughput group: how close each model comes to its own roofline.

A row's `roofline_ms` is the least time its step could take on this machine, max(FLOPs /
peak FLOP/s, minimal bytes / peak bandwidth) (models/work.py, measure/calibrate.py); its
fraction is roofline_ms / the measured time. Per length, a model whose fraction is under a
quarter of the best model's is flagged: its figures reflect its implementation more than its
architecture, so a comparison against it says little about the architecture. Naive attention
is flagged wherever it runs beside SDPA: the same math (the same FLOPs and minimal bytes) by a
slower algorithm that materialises the T x T scores, with SDPA's fraction beside it.
"""

from __future__ import annotations

import math

from gam_bench.report.curves import Group, Series
from gam_bench.report.tables import fmt_num, markdown_table

FAR_BELOW = 0.25  # a fraction under this share of the length's best is flagged
IMPLEMENTATION = "its figures reflect its implementation more than its architecture"


def has_audit(group: Group) -> bool:
    """True when some ok point of the group has a roofline fraction."""
    return any(s.ok["roofline_fraction"].notna().any() for s in group.series)


def _fractions(s: Series) -> dict[int, float]:
    ok = s.ok
    return {int(n): float(f) for n, f in zip(ok["seq_len"], ok["roofline_fraction"]) if not math.isnan(f)}


def flags(group: Group) -> list[str]:
    """One line per flagged (model, length): far below the best, or naive attention beside SDPA."""
    fractions = {s.label: _fractions(s) for s in group.series}
    lengths = sorted({n for by_len in fractions.values() for n in by_len})
    lines = []
    for n in lengths:
        here = {label: by_len[n] for label, by_len in fractions.items() if n in by_len}
        best_label = max(here, key=here.get)
        for label, f in here.items():
            if f < FAR_BELOW * here[best_label]:
                lines.append(
                    f"- **{label}** at {n}: {fmt_num(f)} of its roofline, under a quarter of the best "
                    f"({best_label}, {fmt_num(here[best_label])}): {IMPLEMENTATION}."
                )
    return lines + _naive_attention(group, fractions)


def _naive_attention(group: Group, fractions: dict[str, dict[int, float]]) -> list[str]:
    """Naive attention beside SDPA (same family, backends naive and sdpa) at every shared length."""
    naive = [s for s in group.series if _backend(s) == "naive"]
    sdpa = [s for s in group.series if _backend(s) == "sdpa"]
    lines = []
    for s in naive:
        twin = next((t for t in sdpa if _family(t) == _family(s)), None)
        if twin is None:
            continue
        shared = sorted(set(fractions[s.label]) & set(fractions[twin.label]))
        pairs = ", ".join(
            f"{n}: {fmt_num(fractions[s.label][n])} vs {fmt_num(fractions[twin.label][n])}" for n in shared
        )
        lines.append(
            f"- **{s.label}** computes the same attention as **{twin.label}** (the same FLOPs and minimal "
            f"bytes) by a slower algorithm that materialises the T x T scores; fraction of roofline, "
            f"naive vs SDPA, by length: {pairs or 'no shared length'}."
        )
    return lines


def _backend(s: Series) -> str:
    values = s.ok["backend"].dropna()
    return str(values.iloc[0]) if len(values) else ""


def _family(s: Series) -> str:
    values = s.ok["family"].dropna() if "family" in s.ok else ()
    return str(values.iloc[0]) if len(values) else s.model


def audit_markdown(group: Group) -> str:
    """The audit section: fraction of roofline per length and model, then the flags."""
    lengths = sorted({n for s in group.series for n in _fractions(s)})
    headers = ["Seq. length"] + [s.label for s in group.series]
    rows = []
    by_series = {s.label: _fractions(s) for s in group.series}
    for n in lengths:
        rows.append([n] + [fmt_num(by_series[s.label][n]) if n in by_series[s.label] else "" for s in group.series])
    found = flags(group)
    return "\n".join(
        [
            "### Fairness audit: fraction of each model's roofline\n",
            "Roofline: the least time the step could take here, max(FLOPs / peak FLOP/s, minimal bytes / "
            "peak bandwidth), from the calibrated peaks and each family's declared minimal bytes "
            "(`gam_bench/models/work.py`); the fraction is roofline / measured time (1 = at the roofline). "
            f"A model under {FAR_BELOW:g} of the best fraction at a length is flagged: {IMPLEMENTATION}.\n",
            markdown_table(headers, rows),
            ("\n".join(found) if found else "No model is far below the best at any length.") + "\n",
        ]
    )
