"""Analysis of stored results. No torch here.

- `scaling`: scaling exponents and crossovers over plain numbers (`gam_bench.report` feeds it rows).
- `rows`: reading one stored row (config, label, which memory column to judge).
- The regression gate behind `gam-bench compare` / `check`: `compare` (entry points), `matching`
  (pairing cells, environment checks), `judge` (one metric's verdict), `runs` (several recorded
  runs), `verdicts` (result types), `compare_settings` (thresholds), `compare_render` (output).
"""

from gam_bench.analysis.scaling import (
    WINDOW_RULE,
    Crossover,
    ExponentFit,
    crossover,
    fit_exponent,
    window,
)

__all__ = ["WINDOW_RULE", "Crossover", "ExponentFit", "crossover", "fit_exponent", "window"]
