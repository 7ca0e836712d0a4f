"""The decode task: prefill time, per-token decode latency and decode-state bytes at one
context length N (see `measure`).

Modes prefill | decode | both (default both). Its `decode:` section (`settings.DecodeSettings`,
optional: defaults apply) gives G = decode_tokens; a prefill cell's settings say G = 0 (so its
cell_id does not depend on a G it never uses). It honours compile and CUDA graphs
(execution/decode); pre-flight checks that the model decodes at the cell's level and that a
CUDA-graph decode has a state of fixed size.

No torch here: `measure` holds the work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gam_bench.errors import UserError
from gam_bench.tasks.base import SILENT, Capabilities, ModelNeeds, Origin, RunContext, Task
from gam_bench.tasks.decode.settings import DECODE_MODES, DecodeSettings, max_seq_len_needed

if TYPE_CHECKING:
    from gam_bench.cell import Cell

_F64, _I64, _STR = "float64", "int64", "string"


class Decode(Task):
    name = "decode"
    description = "prefill time, per-token decode latency and decode-state bytes at context N"
    report = "gam_bench.report.decode"  # its report section (section, METHOD)
    settings = DecodeSettings
    section_required = False
    modes = DECODE_MODES
    default_mode = "both"
    capabilities = Capabilities(compile=True, search=True)
    # Context N = seq_len, G = decode_tokens decode steps after a prefill of N tokens; null
    # where the mode measures no such thing.
    columns = {
        "decode_tokens": _I64,  # G (0 for mode prefill)
        "prefill_ms": _F64,  # median prefill of N tokens (an LM computes the last position's logits only)
        "prefill_ms_q25": _F64,
        "prefill_ms_q75": _F64,
        "prefill_samples_ms": "list<float64>",
        "prefill_tokens_per_s": _F64,  # batch * N / prefill_ms
        "decode_ms_per_token": _F64,  # median of the G decode steps (latency at context N)
        "decode_ms_q25": _F64,
        "decode_ms_q75": _F64,
        "decode_samples_ms": "list<float64>",  # every decode step, in order
        "decode_tokens_per_s": _F64,  # batch / decode_ms_per_token
        "state_bytes": _I64,  # decode-state tensor bytes at N (after prefill)
        "state_bytes_final": _I64,  # at N + G
        "decode_backend": _STR,  # the implementation decode ran (e.g. torch step, mamba-ssm)
    }

    def check_suite(self, config: Any, raw: dict[str, Any], where: Any) -> None:
        for mode in config.mode:
            try:
                config.settings.for_mode(mode)
            except ValueError as exc:
                raise UserError(f"{where([self.name])}: {exc}") from None

    def points(self, settings: Any, seq_len: int, mode: str) -> list[tuple[Any, dict]]:
        return [(settings.for_mode(mode), {})]

    def check_cell(self, cell: Cell) -> None:
        cell.settings.for_mode(cell.mode)  # ValueError: a decoding mode with decode_tokens < 1

    def model_needs(self, cell: Cell) -> ModelNeeds:
        """N positions, plus G when the cell decodes (the state never holds more than N + G)."""
        positions = max_seq_len_needed(cell.seq_len, cell.settings.decode_tokens, cell.mode)
        return ModelNeeds(positions, f"a {cell.mode} cell at seq_len={cell.seq_len}")

    def preflight(self, cell: Cell, config: Any, origin: Origin) -> None:
        from gam_bench.models import registry
        from gam_bench.models.decode import check_decode_capability, state_grows

        check_decode_capability(cell.model, cell.level, where=origin.model)  # fails here, not mid-sweep
        if not cell.cuda_graph:
            return
        source = origin.source
        if cell.level != "block":  # a captured decode step needs a state of fixed size
            raise UserError(
                f"{source}: cuda_graph: true decodes at level block only: an LM's state keeps its position as a "
                "host int, which a captured step would replay unchanged"
            )
        if state_grows(registry.get_spec(cell.model)):
            raise UserError(
                f"{source}: cuda_graph: true cannot capture model {cell.model!r}'s decode step: its state grows by "
                "one position per token (a KV cache), and a CUDA graph replays fixed buffers"
            )

    def run(self, cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
        from gam_bench.tasks.decode import measure

        return measure.run(cell, ctx)

    def outcome(self, row: dict[str, Any]) -> str:
        if row.get("decode_ms_per_token") is not None:
            return f"{row['decode_ms_per_token']:.2f} ms/token  state {(row.get('state_bytes') or 0) / 2**10:.1f} KiB"
        if row.get("prefill_ms") is not None:
            return f"prefill {row['prefill_ms']:.2f} ms"
        return ""


TASK = Decode()
