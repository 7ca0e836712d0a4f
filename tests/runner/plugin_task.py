"""A task defined outside gam_bench/ (a suite names this module in `plugins:`).

`param-count` builds the cell's model and stores its parameter count and the MiB its weights
would take at `bytes_per_param` bytes each: one row per cell, its own columns, a report
section and a gate metric (`param_mib`, lower is better, deterministic). No file under
gam_bench/ knows it; tests/runner/test_plugin_task.py runs it end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gam_bench.tasks import register_task
from gam_bench.tasks.base import SILENT, GateMetric, Task

NAME = "param-count"
HEADING = "## Parameter count"


class ParamCountSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bytes_per_param: float = Field(4.0, gt=0)


@register_task(NAME)
class ParamCount(Task):
    description = "count a model's parameters (a test task)"
    settings = ParamCountSettings
    modes = ("count",)
    default_mode = "count"
    columns = {"param_count": "int64", "param_mib": "float64"}
    gate_metrics = (GateMetric("param_mib", "param_mib", "lower", deterministic=True, threshold=0.01),)

    def run(self, cell: Any, ctx: Any = SILENT) -> list[dict[str, Any]]:
        from gam_bench.models import registry

        build = registry.build_block if cell.level == "block" else registry.build
        model = build(cell.model, **cell.overrides)
        count = sum(p.numel() for p in model.parameters())
        ctx.progress(f"{cell.model}: {count} parameters")
        mib = count * cell.settings.bytes_per_param / 2**20
        return [{"param_count": count, "param_mib": mib, "params": count}]

    def outcome(self, row: dict[str, Any]) -> str:
        return f"{row['param_count']} parameters"

    def report_section(self, newest: Any, out_dir: Path, figures: str, colors: dict[str, str]) -> str:
        lines = [f"{HEADING}\n", "| model | level | parameters | MiB |", "| --- | --- | --- | --- |"]
        for row in newest.sort_values(["model", "cell_id"]).itertuples():
            if row.status == "ok":
                lines.append(f"| {row.model} | {row.level} | {int(row.param_count)} | {row.param_mib:.4f} |")
        return "\n".join(lines) + "\n"

    def method_note(self) -> str:
        return "- **Parameter count**: the sum of the model's parameter sizes (a test task).\n"
