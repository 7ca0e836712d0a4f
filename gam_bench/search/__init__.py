"""The longest context that fits: a search over seq_len instead of a grid.

A suite with a `search:` section (`settings.SearchSettings`) has no `axes.seq_len`: for each
of its model settings (a budget group: everything but seq_len) the runner doubles the length
from `search.start` until a cell fails its limits (`oom`: the memory cap; `timeout`: the
cell's time limit), then bisects between the last length that ran ok and the first that
failed, to `search.precision` (a fraction of the length) or `search.multiple_of` tokens,
whichever is coarser. Every probe is an ordinary cell run in a fresh worker and stored as a
row (its `search` column holds the settings), so the cap and the failure rows work as for any
sweep, and re-running skips probes already stored (ok, oom or timeout).

Modules, one concept each:
- settings: the `search:` section (no torch);
- bisect: the search itself over a probe function, and the answer from probe outcomes;
- sweep: the runner's side: probe cells, resume, progress lines, the dry-run table;
- answers: the answers from stored rows (what the report reads).
"""
