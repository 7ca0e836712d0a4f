"""Validated settings of a perplexity suite (the `perplexity:` section of a suite file).

No torch here: suite validation must stay light. PLACEHOLDER, to be completed by the
perplexity work (issue 5); the suite schema imports `PerplexitySettings` from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PerplexitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = "wikitext-2-raw"
