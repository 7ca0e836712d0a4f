"""Invariants of the distance-binned MQAR generator (gam_bench.tasks.recall_distance.layout)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gam_bench.errors import UserError
from gam_bench.tasks.recall import mqar
from gam_bench.tasks.recall_distance import layout

SETTINGS = [  # (edges, seq_len, vocab_size)
    ([2, 4, 8, 16, 32], 32, 64),  # the CPU profile: the last bin clipped to 30
    ([4, 16, 64], 128, 64),  # edges that stop short of the length
    ([4, 16, 64, 256], 100, 17),  # odd vocabulary; the last edge past the length is unused
    ([3, 8], 16, 8),  # an odd edge
]


@pytest.mark.parametrize("edges, T, V", SETTINGS)
def test_every_example_has_one_pair_per_bin_at_a_distance_in_that_bin(edges, T, V):
    data = layout.generate(edges, T, V, num_examples=300, seed=1)
    bins = layout.bins_for(edges, T)
    x, y, H, K = data.inputs, data.targets, V // 2, len(bins)
    assert x.shape == y.shape == (300, T) and data.key_pos.shape == data.query_pos.shape == (300, K)
    d = data.distances  # (N, K)
    for i, (lo, hi) in enumerate(bins):
        assert ((d[:, i] > lo) & (d[:, i] <= hi)).all(), f"bin {i} ({lo}, {hi}]"
    assert (d % 2 == 0).all() and (d >= 2).all() and d.max() <= layout.max_distance(T)
    assert (data.answer_mask.sum(axis=1) == K).all()
    rows = np.arange(300)[:, None]
    keys, values = x[rows, data.key_pos], x[rows, data.key_pos + 1]  # (N, K)
    assert (keys < H).all() and (values >= H).all() and all(len(set(r)) == K for r in keys)
    assert (x[rows, data.query_pos] == keys).all(), "the query repeats its key"
    assert (y[rows, data.query_pos] == values).all(), "the answer is the key's value"
    assert (data.query_pos + 1 < T).all(), "a filler follows every query"
    cells = np.concatenate([data.key_pos, data.query_pos], axis=1)  # (N, 2K)
    assert all(len(set(r)) == 2 * K for r in cells), "pairs and queries never overlap"
    assert ((x < H).sum(axis=1) == 2 * K).all(), "a key appears only in its pair and at its query"
    assert (x[~data.structure_mask] >= H).all(), "fillers come from the value half"


def test_distances_are_uniform_within_a_bin():
    data = layout.generate([4, 16], 64, 64, num_examples=6000, seed=2)
    far = data.distances[:, 1]  # bin (4, 16]: 6, 8, ..., 16
    observed = np.bincount(far // 2 - 3, minlength=6)
    assert stats.chisquare(observed).pvalue > 1e-3


def test_determinism_per_seed():
    a, b = layout.generate([2, 4, 8], 32, 32, 50, seed=3), layout.generate([2, 4, 8], 32, 32, 50, seed=3)
    c = layout.generate([2, 4, 8], 32, 32, 50, seed=4)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.query_pos, b.query_pos)
    assert not np.array_equal(a.inputs, c.inputs)
    s1 = layout.train_test([2, 4, 8], 32, 32, 40, 20, seed=5)
    s2 = layout.train_test([2, 4, 8], 32, 32, 40, 20, seed=5)
    assert np.array_equal(s1.train.inputs, s2.train.inputs) and np.array_equal(s1.test.inputs, s2.test.inputs)


def _problems(data: layout.DistanceData) -> set[bytes]:
    return {row.tobytes() for row in np.where(data.structure_mask, data.inputs, -1)}


def test_train_and_test_share_no_problem_even_when_collisions_are_likely():
    # 2 bins at seq_len 10 (5 cells): few layouts and 4 keys x 4 values choices; a plain second
    # draw would repeat training problems, so the generator redraws them.
    splits = layout.train_test([2, 4], 10, 8, train_examples=200, test_examples=40, seed=0)
    assert len(splits.train) == 200 and len(splits.test) == 40 and splits.rejected > 0
    assert isinstance(splits.test, layout.DistanceData) and splits.test.query_pos.shape == (40, 2)
    assert not _problems(splits.train) & _problems(splits.test)


def test_the_profile_setting_needs_no_redraw_and_is_disjoint():
    splits = layout.train_test([2, 4, 8, 16, 32], 32, 64, train_examples=4000, test_examples=256, seed=0)
    assert splits.rejected == 0 and not _problems(splits.train) & _problems(splits.test)


class CountingRng:
    """A numpy Generator that counts the calls made to it."""

    def __init__(self, seed: int):
        self.rng, self.calls = np.random.default_rng(seed), 0

    def __getattr__(self, name):
        method = getattr(self.rng, name)

        def call(*args, **kwargs):
            self.calls += 1
            return method(*args, **kwargs)

        return call


def test_generation_is_vectorised_over_examples():
    # A loop per example would call the generator at least once per example; vectorised draws
    # make a few calls per pair (mqar.distinct redraws its rare repeats in a few more rounds).
    bins = layout.bins_for([2, 4, 8, 16, 32], 32)
    rng = CountingRng(0)
    assert len(layout._draw(rng, bins, 32, 64, 20000)) == 20000
    assert rng.calls < 60


def test_bins_are_clipped_at_the_longest_distance():
    assert layout.max_distance(32) == 30 and layout.max_distance(33) == 30
    assert layout.bins_for([2, 4, 8, 16, 32], 32) == [(0, 2), (2, 4), (4, 8), (8, 16), (16, 30)]
    assert layout.bins_for([4, 16, 64, 256], 64) == [(0, 4), (4, 16), (16, 62)]
    assert layout.bins_for([4, 16], 128) == [(0, 4), (4, 16)]


@pytest.mark.parametrize(
    "edges, T, V, match",
    [
        ([2, 3, 8], 32, 64, "the bin 3-3 holds no possible distance"),
        ([2, 4, 8, 16], 14, 64, "seq_len=14 is too short for 4 distance bins"),
        ([2, 4], 8, 64, "cannot place one pair per distance bin"),
        ([2, 4, 8], 64, 5, "vocab_size=5 is too small for 3 distance bins"),
        ([2], 2, 8, "seq_len=2 leaves no room"),
    ],
)
def test_impossible_settings_are_one_line_errors(edges, T, V, match):
    with pytest.raises(UserError, match=match) as info:
        layout.generate(edges, T, V, 10, seed=0)
    assert "\n" not in str(info.value)


def test_mqar_data_take_and_concat_keep_every_per_example_array():
    data = layout.generate([2, 4], 16, 16, 10, seed=0)
    part = data.take(np.array([1, 3]))
    assert isinstance(part, layout.DistanceData) and np.array_equal(part.query_pos, data.query_pos[[1, 3]])
    both = layout.DistanceData.concat([part, data.take(np.array([5]))])
    assert np.array_equal(both.inputs, data.inputs[[1, 3, 5]]) and both.num_kv_pairs == 2
    plain = mqar.generate(2, 16, 16, 0.5, 4, seed=0)
    assert np.array_equal(plain.take(np.array([True, False, True, False])).targets, plain.targets[[0, 2]])
