"""Tasks: what a worker does with one cell.

A task is a function `run(cell: Cell, ctx) -> list[dict]`, registered in `TASKS` by name as
"module:run" (imported by the worker on first use). The returned dicts hold measurement
columns of `gam_bench.store.SCHEMA` (one dict per row: a throughput cell gives one, a
perplexity cell one per evaluation point, a recall cell one). The runner adds identity, status and environment
columns. A task signals failure by raising; the worker turns the exception into a row.
`ctx.progress(message)` reports to the parent's progress display.

Adding a task: its module with `run`, an entry here, and (if it has settings) a field on
`gam_bench.cell.Cell` and a section in `gam_bench.suite.SuiteConfig` (see gam_bench.cell).
"""

from gam_bench.registry import Registry

TASKS: Registry = Registry(
    "task",
    {
        "throughput": "gam_bench.tasks.throughput:run",
        "perplexity": "gam_bench.tasks.perplexity:run",
        "decode": "gam_bench.tasks.decode:run",
        "recall": "gam_bench.tasks.recall:run",
    },
)
