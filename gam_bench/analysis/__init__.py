"""Analysis of stored results. No torch here.

- `scaling`: scaling exponents and crossovers over plain numbers (`gam_bench.report` feeds it rows).
- `rows`: reading one stored row (config, label, which memory column to judge).
- The regression gate behind `gam-bench compare` / `check`: `compare` (entry points), `matching`
  (pairing cells, environment checks), `judge` (one metric's verdict), `runs` (several recorded
  runs), `verdicts` (result types), `compare_settings` (thresholds), `compare_render` (output).
"""

from __future__ import annotations

from typing import Any

__all__ = ["WINDOW_RULE", "Crossover", "ExponentFit", "crossover", "fit_exponent", "window"]


def __getattr__(name: str) -> Any:
    """The scaling names, imported on first use (PEP 562): `gam_bench.suite` imports
    `analysis.compare_settings`, and the parent of a sweep should not pay for numpy (~0.1 s)
    before its first worker starts."""
    if name in __all__:
        from gam_bench.analysis import scaling

        return getattr(scaling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
