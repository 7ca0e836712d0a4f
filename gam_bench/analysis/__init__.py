"""Analysis of stored results: scaling exponents and crossovers. No torch, no Parquet.

Functions here take plain numbers; `gam_bench.report` turns store rows into them.
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
