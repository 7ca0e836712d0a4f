"""Validation loss: token-weighted, perplexity = exp(loss), per-position buckets, unigram baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gam_bench.tasks.perplexity.evaluate import bucket_edges, evaluate, unigram_perplexity


class Uniform(nn.Module):
    """Equal logits for every token: perplexity must be the vocabulary size."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab) + self.dummy  # (B, T, V)


class PositionLoss(nn.Module):
    """Puts probability 1/(t+2) ... on the right token: loss grows with the context position t."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        logits = torch.zeros(B, T, self.vocab)
        nxt = (idx + 1) % self.vocab  # the right answer for a stream of consecutive ids
        bonus = torch.linspace(5.0, 0.0, T).expand(B, T)  # confident early, unsure late
        return logits.scatter(2, nxt.unsqueeze(-1), bonus.unsqueeze(-1)) + self.dummy


@pytest.mark.parametrize("vocab, n_tokens, seq_len", [(50, 1000, 16), (10000, 333, 64), (7, 20, 32)])
def test_uniform_model_perplexity_equals_vocab_size(vocab: int, n_tokens: int, seq_len: int) -> None:
    tokens = torch.randint(0, vocab, (n_tokens,), generator=torch.Generator().manual_seed(0))
    result = evaluate(Uniform(vocab), tokens, seq_len, batch_size=4)
    assert result.n_tokens == n_tokens - 1
    assert result.ppl == pytest.approx(vocab, rel=1e-6)
    scored = [loss for loss in result.position_loss if not math.isnan(loss)]
    assert scored and all(loss == pytest.approx(math.log(vocab)) for loss in scored)
    empty = [lo for lo, loss in zip(result.bucket_edges, result.position_loss) if math.isnan(loss)]
    assert all(lo >= n_tokens - 1 for lo in empty)  # only buckets past the split's end are empty


def test_position_buckets_show_where_loss_is_made() -> None:
    vocab, seq_len = 20, 16
    tokens = torch.arange(16 * 10 + 1) % vocab
    result = evaluate(PositionLoss(vocab), tokens, seq_len, batch_size=3, n_buckets=4)
    assert result.bucket_edges == [0, 4, 8, 12, 16]
    assert result.position_loss == sorted(result.position_loss)  # later positions: higher loss here
    assert result.position_loss[0] < result.position_loss[-1]
    # token-weighted mean of equal-sized buckets is the overall loss
    assert result.loss == pytest.approx(sum(result.position_loss) / 4)


def test_overall_loss_is_token_weighted_over_unequal_buckets() -> None:
    """A short final window (5 targets) leaves the late buckets with fewer tokens, and the loss
    differs by position: the overall loss is the mean over tokens, not the mean of bucket means."""
    vocab, seq_len = 20, 16
    tokens = torch.arange(2 * seq_len + 6) % vocab  # windows of 16, 16 and 5 targets
    model = PositionLoss(vocab)
    result = evaluate(model, tokens, seq_len, batch_size=2, n_buckets=4)
    per_token = []
    for start in range(0, len(tokens) - 1, seq_len):
        window = tokens[start : start + seq_len + 1]
        logits = model(window[:-1].unsqueeze(0))[0]  # (T, V)
        per_token.append(torch.nn.functional.cross_entropy(logits, window[1:], reduction="none"))  # (T,)
    losses = torch.cat(per_token)  # (N,)
    assert result.n_tokens == len(losses) == 37
    assert result.loss == pytest.approx(losses.double().mean().item(), rel=1e-6)
    counts = [12, 9, 8, 8]  # positions 0-3, 4-7, 8-11, 12-15 over the three windows
    assert result.loss == pytest.approx(sum(c * b for c, b in zip(counts, result.position_loss)) / 37, rel=1e-6)
    assert abs(result.loss - sum(result.position_loss) / 4) > 0.05  # the unweighted mean is far off


def test_model_mode_is_restored() -> None:
    model = Uniform(5)
    model.train()
    evaluate(model, torch.arange(30) % 5, 8, 2)
    assert model.training
    model.eval()
    evaluate(model, torch.arange(30) % 5, 8, 2)
    assert not model.training


def test_bucket_edges() -> None:
    assert bucket_edges(256, 8) == [0, 32, 64, 96, 128, 160, 192, 224, 256]
    assert bucket_edges(3, 8) == [0, 1, 2, 3]  # never an empty bucket


def test_unigram_perplexity_by_hand() -> None:
    train = np.array([0, 0, 1, 2])  # counts + 1 -> [3, 2, 2, 1] / 8 with vocab 4
    val = np.array([3, 0, 1])  # the first token is context, not scored
    expected = math.exp(-(math.log(3 / 8) + math.log(2 / 8)) / 2)
    assert unigram_perplexity(train, val, 4) == pytest.approx(expected)
