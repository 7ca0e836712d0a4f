"""MQAR with the key-to-query distance controlled: one key-value pair per distance bin.

An example of length T is a row of S = T // 2 two-token cells. A pair takes one cell (key,
value) and its query another, later cell (key, filler); every other cell is two fillers.
The **distance** of a pair is query position - key position = 2 * (query cell - key cell):
even, from 2 (`k v k`: the value is the previous token) to `max_distance(T)` = 2 (S - 1).

The distance bins are consecutive ranges (lo, hi] of distances (`bins_for`): their upper
edges are a setting, clipped at `max_distance(T)`; edges past it are unused, so one list
serves several lengths. Every example has exactly one pair per bin (num_kv_pairs = number
of bins; pair i is in bin i), its distance drawn uniformly among the bin's even distances.
So, over a test set of N examples, each bin has N answers, one per example: independent
trials for a binomial interval per bin.

As in MQAR (gam_bench.tasks.recall.mqar): keys are distinct tokens of the key half of the
vocabulary, values distinct tokens of the value half, fillers uniform over the value half
(a key token appears only in its pair and at its query), the target at a query is its
key's value and IGNORE_INDEX elsewhere, and a filler follows every query.

Placement is vectorised over examples (numpy; the loop runs over the K pairs, never over
examples): the pairs are placed from the farthest bin down, each at a key cell drawn
uniformly among those whose key and query cells are both still free; an example with no
room left for a pair is redrawn whole. `train_test` draws disjoint training and test sets
(mqar.disjoint_splits: no test example poses a training problem).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gam_bench.errors import UserError
from gam_bench.tasks.recall import mqar

_MAX_PLACEMENT_ROUNDS = 64
_TRIAL_EXAMPLES = 64  # check_setting places this many examples' pairs to find a layout with no room


@dataclass(frozen=True)
class DistanceData(mqar.MQARData):
    """MQARData with where each pair sits: key_pos, query_pos (N, K) int64; pair i is in bin i."""

    key_pos: np.ndarray
    query_pos: np.ndarray

    @property
    def distances(self) -> np.ndarray:
        """(N, K) int64: query position - key position of each pair."""
        return self.query_pos - self.key_pos

    @property
    def structure_mask(self) -> np.ndarray:
        """(N, T) bool: keys, values and queries (the problem), fillers aside."""
        mask = np.zeros(self.inputs.shape, dtype=bool)  # (N, T)
        for pos in (self.key_pos, self.key_pos + 1, self.query_pos):
            np.put_along_axis(mask, pos, True, axis=1)
        return mask


def max_distance(seq_len: int) -> int:
    """The largest possible key-to-query distance at `seq_len` (key in the first cell, query in the last)."""
    return 2 * (seq_len // 2 - 1)


def bins_for(edges: list[int], seq_len: int) -> list[tuple[int, int]]:
    """The bins (lo, hi] at `seq_len`: consecutive edges from 0, hi clipped at `max_distance`, the
    edges past it dropped. A bin holding no possible (even) distance is a one-line UserError."""
    top = max_distance(seq_len)
    if top < 2:
        raise UserError(f"recall_distance: seq_len={seq_len} leaves no room for a pair and its query (needs >= 4)")
    bins, lo = [], 0
    for edge in edges:
        if lo >= top:
            break
        hi = min(edge, top)
        if hi // 2 * 2 <= lo:  # no even distance in (lo, hi]
            raise UserError(
                f"recall_distance.distance_bins: the bin {lo + 1}-{edge} holds no possible distance "
                f"(distances are even: 2, 4, ...)"
            )
        bins.append((lo, hi))
        lo = edge
    return bins


def check_setting(edges: list[int], seq_len: int, vocab_size: int) -> None:
    """Raise a one-line UserError for an impossible setting (bins, room, vocabulary)."""
    K = len(bins_for(edges, seq_len))
    if 2 * K > seq_len // 2:
        raise UserError(
            f"recall_distance: seq_len={seq_len} is too short for {K} distance bins: each bin's pair and "
            f"query take 2 of the {seq_len // 2} two-token cells (needs seq_len >= {8 * K})"
        )
    if vocab_size < 2 * K:
        raise UserError(
            f"recall_distance: vocab_size={vocab_size} is too small for {K} distance bins: each half of the "
            f"vocabulary (keys, values) needs {K} distinct tokens (needs vocab_size >= {2 * K})"
        )
    _place(np.random.default_rng(0), bins_for(edges, seq_len), seq_len // 2, _TRIAL_EXAMPLES)  # room for the pairs?


def generate(edges: list[int], seq_len: int, vocab_size: int, num_examples: int, seed: int) -> DistanceData:
    """`num_examples` examples with one pair per bin; the same arguments give the same arrays."""
    check_setting(edges, seq_len, vocab_size)
    return _draw(np.random.default_rng(seed), bins_for(edges, seq_len), seq_len, vocab_size, num_examples)


def train_test(
    edges: list[int], seq_len: int, vocab_size: int, train_examples: int, test_examples: int, seed: int
) -> mqar.MQARSplits:
    """Training and test sets from independent streams of `seed` that share no problem."""
    check_setting(edges, seq_len, vocab_size)
    bins = bins_for(edges, seq_len)
    what = f"distance bins {bins}, seq_len={seq_len}, vocab_size={vocab_size}"
    return mqar.disjoint_splits(
        lambda rng, n: _draw(rng, bins, seq_len, vocab_size, n), train_examples, test_examples, seed, what
    )


def _draw(rng: np.random.Generator, bins: list[tuple[int, int]], T: int, V: int, n: int) -> DistanceData:
    K, H = len(bins), V // 2
    key_cell, query_cell = _place(rng, bins, T // 2, n)  # (n, K) each
    key_pos, query_pos = 2 * key_cell, 2 * query_cell  # (n, K)
    keys = mqar.distinct(rng, n, H, K)  # (n, K) in [0, H)
    values = H + mqar.distinct(rng, n, V - H, K)  # (n, K) in [H, V)
    inputs = rng.integers(H, V, size=(n, T), dtype=np.int64)  # (n, T) fillers from the value half
    np.put_along_axis(inputs, key_pos, keys, axis=1)
    np.put_along_axis(inputs, key_pos + 1, values, axis=1)
    np.put_along_axis(inputs, query_pos, keys, axis=1)
    targets = np.full((n, T), mqar.IGNORE_INDEX, dtype=np.int64)  # (n, T)
    np.put_along_axis(targets, query_pos, values, axis=1)
    return DistanceData(inputs, targets, K, V, key_pos, query_pos)


def _place(rng: np.random.Generator, bins: list[tuple[int, int]], S: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(key cells, query cells), each (n, K): pair i's gap in cells is in bin i, all 2K cells distinct.
    Rows that ran out of room are redrawn, in rounds vectorised over them."""
    key = np.zeros((n, len(bins)), dtype=np.int64)
    query = np.zeros((n, len(bins)), dtype=np.int64)
    todo = np.arange(n)
    for _ in range(_MAX_PLACEMENT_ROUNDS):
        if todo.size == 0:
            return key, query
        k, q, ok = _place_once(rng, bins, S, todo.size)
        key[todo[ok]], query[todo[ok]] = k[ok], q[ok]
        todo = todo[~ok]
    raise UserError(
        f"recall_distance.distance_bins: cannot place one pair per distance bin {bins} in {2 * S} tokens "
        f"(no room left in {_MAX_PLACEMENT_ROUNDS} tries); use fewer or nearer bins"
    )


def _place_once(rng: np.random.Generator, bins: list[tuple[int, int]], S: int, n: int):
    """One attempt for n rows: key cells, query cells (n, K) and which rows found room (n,)."""
    K = len(bins)
    free = np.ones((n, S), dtype=bool)  # (n, S)
    key, query = np.zeros((n, K), dtype=np.int64), np.zeros((n, K), dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    cells = np.arange(S)  # (S,)
    for i in sorted(range(K), key=lambda i: -bins[i][1]):  # farthest bin first
        lo, hi = bins[i]
        gap = rng.integers(lo // 2 + 1, hi // 2 + 1, size=n)  # (n,) cells: distances 2*gap in (lo, hi]
        partner = cells[None, :] + gap[:, None]  # (n, S): the query cell of each key cell
        fits = partner < S
        room = free & fits & np.take_along_axis(free, np.minimum(partner, S - 1), axis=1)  # (n, S)
        scores = np.where(room, rng.random((n, S)), -1.0)  # (n, S)
        start = scores.argmax(axis=1)  # (n,) uniform among the free key cells
        ok &= room.any(axis=1)
        key[:, i], query[:, i] = start, start + gap
        rows = np.flatnonzero(ok)
        free[rows, start[rows]] = False
        free[rows, start[rows] + gap[rows]] = False
    return key, query, ok
