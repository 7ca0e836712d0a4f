"""Tasks: what a worker does with one cell.

A task is a function `run(cell: dict, ctx) -> list[dict]` in a module listed in
`TASKS`. `cell` is the expanded, JSON-able cell config; the returned dicts hold
measurement columns of `gam_bench.store.SCHEMA` (one dict per row: a throughput cell
gives one, a perplexity cell one per evaluation point). The runner adds identity,
status and environment columns. A task signals failure by raising; the runner turns
the exception into a row.
"""

TASKS = {
    "throughput": "gam_bench.tasks.throughput",
    "perplexity": "gam_bench.tasks.perplexity",
}
