"""Multi-query associative recall (MQAR) data, our own construction after Zoology (arXiv 2312.04927).

One example of length T with K key-value pairs over a vocabulary of V tokens (H = V // 2):

    positions 0 .. 2K-1   k_0 v_0 k_1 v_1 ... k_{K-1} v_{K-1}
    positions 2K .. T-1   query slots at 2K, 2K+2, ...; S = (T - 2K) // 2 slots

- keys are K distinct tokens of the key half [0, H), values K distinct tokens of the value
  half [H, V): the halves are disjoint;
- every key is queried exactly once: key i is written into a distinct slot s_i, drawn
  without replacement with P(s) proportional to (s + 1) ** (power_a - 1) (Zoology's power
  law: power_a = 1 is uniform, small power_a puts most queries right after the pairs);
- every other position after the pairs is filler, drawn uniformly from the value half, so
  a key token appears only in its pair and at its query (Zoology draws filler from the whole
  vocabulary, where a filler can repeat a key);
- the target at a query position is the queried key's value; every other target is
  IGNORE_INDEX (-100), the ignore index of F.cross_entropy.

Every query slot is followed by a filler, so the answer is never in the input.

`generate` draws one seeded set of examples; `train_test` draws a training and a test set
with the guarantee that no test example poses the same problem as a training example (same
pairs in the same order and the same query positions; fillers aside). Everything is
vectorised over examples with numpy (no loop per token); no torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Self

import numpy as np

from gam_bench.errors import UserError

IGNORE_INDEX = -100
_CHUNK_ELEMENTS = 1 << 22  # random scores drawn per chunk of examples (bounds memory)
_MAX_REDRAW_ROUNDS = 32


@dataclass(frozen=True)
class MQARData:
    """inputs (N, T) int64 tokens; targets (N, T) int64, IGNORE_INDEX except at query positions."""

    inputs: np.ndarray
    targets: np.ndarray
    num_kv_pairs: int
    vocab_size: int

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def answer_mask(self) -> np.ndarray:
        """(N, T) bool: the positions that are scored."""
        return self.targets != IGNORE_INDEX

    @property
    def num_values(self) -> int:
        """Size of the value half: guessing a value token uniformly is right 1 / num_values of the time."""
        return self.vocab_size - self.vocab_size // 2

    @property
    def structure_mask(self) -> np.ndarray:
        """(N, T) bool: the positions that make the problem (pairs and queries), fillers aside."""
        structural = self.answer_mask.copy()  # (N, T)
        structural[:, : 2 * self.num_kv_pairs] = True
        return structural

    def take(self, rows: np.ndarray) -> Self:
        """The examples `rows` (an index or a boolean mask over examples), every per-example array alike."""
        return replace(self, **{f.name: getattr(self, f.name)[rows] for f in _arrays(self)})

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """The examples of `parts` (at least one, all of one setting) one after another."""
        arrays = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in _arrays(parts[0])}
        return replace(parts[0], **arrays)


def _arrays(data: MQARData) -> list:
    """The dataclass fields of `data` that hold one entry per example."""
    return [f for f in fields(data) if isinstance(getattr(data, f.name), np.ndarray)]


@dataclass(frozen=True)
class MQARSplits:
    """A training and a test set that share no problem; `rejected` test draws were redrawn."""

    train: MQARData
    test: MQARData
    rejected: int


def check_setting(num_kv_pairs: int, seq_len: int, vocab_size: int, power_a: float) -> None:
    """Raise a one-line UserError naming the field and value of an impossible setting."""
    if num_kv_pairs < 1:
        raise UserError(f"MQAR: num_kv_pairs={num_kv_pairs} must be at least 1")
    if seq_len < 4 * num_kv_pairs:
        raise UserError(
            f"MQAR: seq_len={seq_len} is too short for num_kv_pairs={num_kv_pairs}: the pairs take "
            f"{2 * num_kv_pairs} positions and each query a 2-position slot after them "
            f"(needs seq_len >= 4 * num_kv_pairs = {4 * num_kv_pairs})"
        )
    if vocab_size < 2 * num_kv_pairs:
        raise UserError(
            f"MQAR: vocab_size={vocab_size} is too small for num_kv_pairs={num_kv_pairs}: each half of the "
            f"vocabulary (keys, values) needs {num_kv_pairs} distinct tokens (needs vocab_size >= {2 * num_kv_pairs})"
        )
    if not power_a > 0:
        raise UserError(f"MQAR: power_a={power_a} must be > 0 (1 is uniform; Zoology uses 0.01)")


def slot_weights(num_slots: int, power_a: float) -> np.ndarray:
    """The normalised power law over query slots: P(s) proportional to (s + 1) ** (power_a - 1)."""
    w = np.arange(1, num_slots + 1, dtype=np.float64) ** (power_a - 1.0)
    return w / w.sum()


def generate(
    num_kv_pairs: int, seq_len: int, vocab_size: int, power_a: float, num_examples: int, seed: int
) -> MQARData:
    """`num_examples` MQAR examples; the same arguments always give the same arrays."""
    check_setting(num_kv_pairs, seq_len, vocab_size, power_a)
    if num_examples < 0:
        raise UserError(f"MQAR: num_examples={num_examples} must be >= 0")
    rng = np.random.default_rng(seed)
    return _draw(rng, num_kv_pairs, seq_len, vocab_size, power_a, num_examples)


def train_test(
    num_kv_pairs: int,
    seq_len: int,
    vocab_size: int,
    power_a: float,
    train_examples: int,
    test_examples: int,
    seed: int,
) -> MQARSplits:
    """A training set and a test set from independent streams of `seed`, with no shared problem
    (`disjoint_splits`)."""
    check_setting(num_kv_pairs, seq_len, vocab_size, power_a)
    args = (num_kv_pairs, seq_len, vocab_size, power_a)
    what = f"num_kv_pairs={num_kv_pairs}, seq_len={seq_len}, vocab_size={vocab_size}"
    return disjoint_splits(lambda rng, n: _draw(rng, *args, n), train_examples, test_examples, seed, what)


def disjoint_splits(
    draw: Callable[[np.random.Generator, int], MQARData],
    train_examples: int,
    test_examples: int,
    seed: int,
    what: str,
) -> MQARSplits:
    """Training and test sets of `draw(rng, n)` from the streams [seed, 0] and [seed, 1], with no
    shared problem.

    A test draw whose problem (`problem_hashes`) equals a training problem's is rejected and
    redrawn; equal hashes of different problems only cause a needless redraw, so the
    guarantee is exact. A setting with too few distinct problems (`what` names it) is an error.
    """
    train = draw(np.random.default_rng([seed, 0]), train_examples)
    seen = problem_hashes(train)
    rng = np.random.default_rng([seed, 1])
    kept: list[MQARData] = []
    need, rejected = test_examples, 0
    for _ in range(_MAX_REDRAW_ROUNDS):
        if need == 0:
            break
        batch = draw(rng, need)
        fresh = ~np.isin(problem_hashes(batch), seen)
        kept.append(batch.take(fresh))
        need -= int(fresh.sum())
        rejected += int((~fresh).sum())
    if need:
        raise UserError(
            f"MQAR: cannot draw test_examples={test_examples} disjoint from train_examples={train_examples} "
            f"({what}): too few distinct problems"
        )
    test = type(train).concat(kept) if kept else train.take(np.zeros(0, dtype=np.int64))
    return MQARSplits(train, test, rejected)


def problem_hashes(data: MQARData) -> np.ndarray:
    """(N,) uint64: a hash of each example's problem, i.e. its tokens with the fillers blanked.

    Equal problems always hash equal (the hash is a fixed function of the blanked row)."""
    structural = data.structure_mask  # (N, T)
    blanked = np.where(structural, data.inputs + 1, 0).astype(np.uint64)  # (N, T)
    weights = np.random.default_rng(0x6D716172).integers(1, 2**63, size=blanked.shape[1], dtype=np.uint64) | 1
    with np.errstate(over="ignore"):
        return (blanked * weights).sum(axis=1, dtype=np.uint64)  # (N,), wraps modulo 2**64


def _draw(
    rng: np.random.Generator, num_kv_pairs: int, seq_len: int, vocab_size: int, power_a: float, n: int
) -> MQARData:
    K, T, V, H = num_kv_pairs, seq_len, vocab_size, vocab_size // 2
    num_slots = (T - 2 * K) // 2
    keys = distinct(rng, n, H, K)  # (n, K) in [0, H)
    values = H + distinct(rng, n, V - H, K)  # (n, K) in [H, V)
    slots = _ranked_choice(rng, n, np.log(slot_weights(num_slots, power_a)), K)  # (n, K)
    inputs = rng.integers(H, V, size=(n, T), dtype=np.int64)  # (n, T) fillers from the value half
    inputs[:, 0 : 2 * K : 2] = keys
    inputs[:, 1 : 2 * K : 2] = values
    query_pos = 2 * K + 2 * slots  # (n, K)
    np.put_along_axis(inputs, query_pos, keys, axis=1)
    targets = np.full((n, T), IGNORE_INDEX, dtype=np.int64)  # (n, T)
    np.put_along_axis(targets, query_pos, values, axis=1)
    return MQARData(inputs, targets, K, V)


def distinct(rng: np.random.Generator, n: int, m: int, k: int) -> np.ndarray:
    """(n, k) int64: per row, k distinct integers of [0, m) in uniformly random order.

    Sparse draws (k * k <= m) redraw the rows that repeat a value, a few rounds at most;
    dense ones race Gumbel scores over all m."""
    if k * k > m:
        return _ranked_choice(rng, n, np.zeros(m), k)
    out = rng.integers(0, m, size=(n, k), dtype=np.int64)  # (n, k)
    bad = np.arange(n)
    while bad.size:
        rows = np.sort(out[bad], axis=1)  # (b, k)
        bad = bad[(rows[:, 1:] == rows[:, :-1]).any(axis=1)]
        out[bad] = rng.integers(0, m, size=(bad.size, k), dtype=np.int64)
    return out


def _ranked_choice(rng: np.random.Generator, n: int, log_weights: np.ndarray, k: int) -> np.ndarray:
    """(n, k) int64: per row, k distinct indices drawn in order without replacement with
    probabilities proportional to exp(log_weights) (Gumbel top-k, vectorised over rows)."""
    m = log_weights.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    rows = max(1, _CHUNK_ELEMENTS // m)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        scores = log_weights + rng.gumbel(size=(stop - start, m))  # (rows, m)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (rows, k), unordered
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start:stop] = np.take_along_axis(top, order, axis=1)
    return out
