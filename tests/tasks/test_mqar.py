"""Invariants of the MQAR generator (gam_bench.tasks.recall.mqar)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gam_bench.errors import UserError
from gam_bench.tasks.recall import mqar

SETTINGS = [  # (num_kv_pairs, seq_len, vocab_size, power_a)
    (4, 64, 64, 0.01),
    (8, 40, 17, 1.0),  # odd length and odd vocabulary
    (16, 64, 32, 0.5),  # every slot taken: seq_len == 4 * num_kv_pairs
    (3, 100, 4096, 2.0),
]


@pytest.mark.parametrize("K, T, V, a", SETTINGS)
def test_layout_keys_values_and_answers(K, T, V, a):
    data = mqar.generate(K, T, V, a, num_examples=300, seed=1)
    x, y, H = data.inputs, data.targets, V // 2
    assert x.shape == y.shape == (300, T) and x.dtype == y.dtype == np.int64
    keys, values = x[:, 0 : 2 * K : 2], x[:, 1 : 2 * K : 2]  # (N, K)
    assert (keys >= 0).all() and (keys < H).all(), "keys from the lower half"
    assert (values >= H).all() and (values < V).all(), "values from the upper half"
    assert all(len(set(r)) == K for r in keys) and all(len(set(r)) == K for r in values)
    answers = data.answer_mask
    assert (answers.sum(axis=1) == K).all(), "one query per key"
    assert not answers[:, : 2 * K].any()
    n_idx, t_idx = np.nonzero(answers)
    assert ((t_idx - 2 * K) % 2 == 0).all(), "queries sit on the even slots after the pairs"
    assert (t_idx < T - 1).all(), "a filler follows every query"
    for n, t in zip(n_idx, t_idx):
        q = x[n, t]
        earlier = np.flatnonzero(x[n, :t] == q)
        assert earlier.size == 1 and earlier[0] < 2 * K and earlier[0] % 2 == 0, "queried key appears earlier once"
        assert y[n, t] == x[n, earlier[0] + 1], "the answer is the key's value"
        assert (x[n, t + 1 :] != q).all(), "the key is queried once"
    fillers = ~answers.copy()
    fillers[:, : 2 * K] = False
    assert (x[fillers] >= H).all(), "fillers never repeat a key"
    assert data.num_values == V - H


def test_determinism_per_seed():
    a = mqar.generate(4, 64, 64, 0.01, 50, seed=3)
    b = mqar.generate(4, 64, 64, 0.01, 50, seed=3)
    c = mqar.generate(4, 64, 64, 0.01, 50, seed=4)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, c.inputs)
    s1, s2 = mqar.train_test(4, 64, 64, 0.01, 40, 20, seed=5), mqar.train_test(4, 64, 64, 0.01, 40, 20, seed=5)
    assert np.array_equal(s1.train.inputs, s2.train.inputs) and np.array_equal(s1.test.inputs, s2.test.inputs)


def _problems(data: mqar.MQARData) -> set[bytes]:
    structural = data.answer_mask.copy()
    structural[:, : 2 * data.num_kv_pairs] = True
    return {row.tobytes() for row in np.where(structural, data.inputs, -1)}


def test_train_and_test_share_no_problem_even_when_collisions_are_likely():
    # 2 of 4 keys, 2 of 4 values, 2 of 3 slots, all ordered: 12 * 12 * 6 = 864 distinct
    # problems, so a plain second draw would repeat training problems; the generator redraws.
    splits = mqar.train_test(2, 10, 8, 1.0, train_examples=300, test_examples=50, seed=0)
    train, test = splits.train, splits.test
    assert len(train) == 300 and len(test) == 50 and splits.rejected > 0
    assert not _problems(train) & _problems(test)
    full_train = {r.tobytes() for r in train.inputs}
    assert not any(r.tobytes() in full_train for r in test.inputs), "no test sequence equals a train sequence"


def test_realistic_setting_needs_no_redraw_and_is_disjoint():
    splits = mqar.train_test(8, 128, 1024, 0.01, train_examples=2000, test_examples=300, seed=2)
    assert splits.rejected == 0 and len(splits.test) == 300
    assert not _problems(splits.train) & _problems(splits.test)


def test_too_few_distinct_problems_is_an_error():
    with pytest.raises(UserError, match="too few distinct problems"):
        mqar.train_test(1, 4, 2, 1.0, train_examples=5, test_examples=1, seed=0)


@pytest.mark.parametrize(
    "K, T, V, a, match",
    [
        (8, 31, 64, 0.01, "seq_len=31 is too short for num_kv_pairs=8"),
        (8, 64, 15, 0.01, "vocab_size=15 is too small for num_kv_pairs=8"),
        (0, 64, 64, 0.01, "num_kv_pairs=0"),
        (4, 64, 64, 0.0, "power_a=0.0"),
    ],
)
def test_impossible_settings_are_one_line_errors(K, T, V, a, match):
    with pytest.raises(UserError, match=match) as info:
        mqar.generate(K, T, V, a, 10, seed=0)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("power_a", [0.01, 0.3, 1.0])
def test_query_slots_follow_the_power_law(power_a):
    # One pair per example: its query slot is a single draw from P(s) ~ (s + 1) ** (a - 1).
    T, n = 2 + 2 * 12, 20000
    data = mqar.generate(1, T, 64, power_a, n, seed=11)
    slots = (np.nonzero(data.answer_mask)[1] - 2) // 2
    observed = np.bincount(slots, minlength=12)
    expected = n * mqar.slot_weights(12, power_a)
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    if power_a != 1.0:  # the test can fail: a uniform law is rejected
        assert stats.chisquare(observed, np.full(12, n / 12)).pvalue < 1e-6


def test_many_queries_concentrate_near_the_pairs_under_a_small_power():
    data = mqar.generate(4, 8 + 2 * 40, 64, 0.01, 5000, seed=0)
    slots = (np.nonzero(data.answer_mask)[1] - 8) // 2
    counts = np.bincount(slots, minlength=40)
    assert counts[:4].sum() > counts[-20:].sum() and counts[0] > counts[10] > counts[39]
