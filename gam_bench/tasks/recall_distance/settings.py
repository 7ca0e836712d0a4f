"""Validated settings of a recall-distance suite: the `recall_distance:` section of a suite file.

No torch here. Everything but the data is recall's (`TrainingSettings`: vocabulary, examples,
budget, learning rates, batch sizes, optimiser, position init, seed); the data is set by the
distance bins: `distance_bins` lists their upper edges in tokens (bin i covers distances
(edge[i-1], edge[i]], the first from 1), or is left out for powers of 4 (1-4, 5-16, 17-64,
65-256, ...). At each length the bins are clipped to the longest possible distance
(layout.bins_for), and every example holds one pair per bin.
"""

from __future__ import annotations

from pydantic import field_validator

from gam_bench.errors import UserError
from gam_bench.tasks.recall.settings import TrainingSettings
from gam_bench.tasks.recall_distance import layout


class RecallDistanceSettings(TrainingSettings):
    """Recall's training settings and the distance bins."""

    # Upper edges of the distance bins, in tokens, increasing (None: 4, 16, 64, ... up to the length).
    distance_bins: list[int] | None = None

    @field_validator("distance_bins")
    @classmethod
    def _increasing(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or value[0] < 2 or any(b <= a for a, b in zip(value, value[1:]))):
            raise ValueError(f"distance_bins must be increasing upper edges >= 2 (got {value})")
        return value

    def edges(self, seq_len: int) -> list[int]:
        """The upper edges in force at `seq_len`: the setting's, or powers of 4 to the longest distance."""
        if self.distance_bins is not None:
            return list(self.distance_bins)
        edges = [4]
        while edges[-1] < layout.max_distance(seq_len):
            edges.append(4 * edges[-1])
        return edges

    def bins(self, seq_len: int) -> list[tuple[int, int]]:
        """The bins (lo, hi] of distances at `seq_len` (layout.bins_for)."""
        return layout.bins_for(self.edges(seq_len), seq_len)

    def points(self, seq_len: int) -> list[RecallDistanceSettings]:
        """One settings object per learning rate swept."""
        return [self.model_copy(update={"lr": lr}) for lr in self.lrs]

    def scalar_lr(self) -> float:
        """The learning rate of a single point; a UserError if it is still a sweep."""
        if isinstance(self.lr, list):
            raise UserError(
                f"recall_distance: one cell needs one lr (got lr={self.lr}); expand the sweep with points(seq_len)"
            )
        return float(self.lr)
