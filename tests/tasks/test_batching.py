"""Training blocks cover a split exactly once per epoch; eval windows score every token once."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from gam_bench.text.batching import epoch_batches, eval_windows, steps_per_epoch, train_blocks


@pytest.mark.parametrize("n_tokens, seq_len, batch", [(1000, 8, 4), (997, 16, 5), (90, 8, 32)])
def test_one_epoch_covers_every_block_exactly_once(n_tokens: int, seq_len: int, batch: int) -> None:
    tokens = torch.arange(n_tokens)  # distinct ids: a token's id is its position
    blocks = train_blocks(tokens, seq_len)
    n_blocks = n_tokens // (seq_len + 1)
    assert blocks.shape == (n_blocks, seq_len + 1)
    seen: Counter[int] = Counter()
    n_batches = 0
    for inputs, targets in epoch_batches(blocks, batch, torch.Generator().manual_seed(0)):
        n_batches += 1
        assert inputs.shape == targets.shape and inputs.shape[1] == seq_len and inputs.shape[0] <= batch
        assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are inputs shifted by one
        for row_in, row_t in zip(inputs, targets):
            seen.update(row_in.tolist() + [int(row_t[-1])])
    assert n_batches == steps_per_epoch(n_blocks, batch)
    covered = n_blocks * (seq_len + 1)
    assert seen == Counter(range(covered))  # each token of every block once; the short tail dropped


def test_epoch_order_is_seeded() -> None:
    blocks = train_blocks(torch.arange(2000), 9)

    def order(seed: int) -> list[int]:
        return [int(x[0, 0]) for x, _ in epoch_batches(blocks, 1, torch.Generator().manual_seed(seed))]

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert sorted(order(3)) == list(range(0, 2000 - 2000 % 10, 10))


def test_too_short_for_one_block() -> None:
    with pytest.raises(ValueError, match="no training block"):
        train_blocks(torch.arange(8), 8)


@pytest.mark.parametrize("n_tokens, seq_len, batch", [(101, 10, 3), (100, 10, 4), (5, 10, 2), (2, 10, 2)])
def test_eval_windows_score_every_token_but_the_first_once(n_tokens: int, seq_len: int, batch: int) -> None:
    tokens = torch.arange(n_tokens)
    targets_seen: list[int] = []
    for inputs, targets in eval_windows(tokens, seq_len, batch):
        assert inputs.shape == targets.shape and inputs.shape[1] <= seq_len
        assert torch.equal(targets, inputs + 1)  # each target is the token after its input
        targets_seen += targets.flatten().tolist()
    assert sorted(targets_seen) == list(range(1, n_tokens))
