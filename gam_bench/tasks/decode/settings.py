"""Validated settings of a decode suite (the `decode:` section of a suite file) and its modes.

No torch here: suite validation must stay light. The decode mode (what a cell times) is the
suite's `mode` field, as for throughput: `prefill` (prefill of N tokens only), `decode` (G
decode steps after an untimed prefill) or `both`. The context length N is the cell's
`seq_len` and the batch size its `batch_size`: suite axes, not settings here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DECODE_MODES = ("prefill", "decode", "both")


class DecodeSettings(BaseModel):
    """decode_tokens: G, the decode steps timed per cell (each stored); 0 only for prefill cells."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decode_tokens: int = Field(64, ge=0)

    def for_mode(self, mode: str) -> DecodeSettings:
        """The settings a cell of `mode` runs with: a prefill cell decodes nothing (G = 0), so its
        identity does not depend on a G it never uses. ValueError when a decoding mode has G < 1."""
        if mode == "prefill":
            return self.model_copy(update={"decode_tokens": 0})
        if self.decode_tokens < 1:
            raise ValueError(f"decode_tokens must be >= 1 when mode is {mode!r} (got {self.decode_tokens})")
        return self


def max_seq_len_needed(context_len: int, decode_tokens: int, mode: str) -> int:
    """The positions a decode cell feeds a model: N, plus G when it decodes."""
    return context_len + (decode_tokens if mode != "prefill" else 0)
