"""Perplexity settings (budget: exactly one kind) and the warmup + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from gam_bench.tasks.perplexity.settings import Budget, PerplexitySettings
from gam_bench.training.schedule import BudgetClock, warmup_cosine


def test_defaults_are_the_paper_protocol() -> None:
    s = PerplexitySettings()
    assert (s.dataset, s.tokenizer, s.effective_vocab_size) == ("wikitext-2-raw", "bpe", 10000)
    assert (s.lr, s.betas, s.weight_decay, s.warmup_steps, s.grad_clip, s.dropout) == (
        3e-4,
        (0.9, 0.95),
        0.1,
        100,
        1.0,
        0.1,
    )
    assert s.budget.kind == "epochs" and s.budget.epochs == 5


def test_word_tokenizer_keeps_every_word_by_default() -> None:
    assert PerplexitySettings(tokenizer="word").effective_vocab_size is None


@pytest.mark.parametrize("budget", [{"epochs": 1, "tokens": 10}, {"tokens": 1, "seconds": 2.0}])
def test_budget_takes_exactly_one_kind(budget: dict) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Budget(**budget)


@pytest.mark.parametrize("field, value", [("datset", "x"), ("dataset", "ptb"), ("tokenizer", "char"), ("lr", 0)])
def test_bad_fields_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        PerplexitySettings(**{field: value})


def test_model_dump_round_trips() -> None:
    s = PerplexitySettings(budget={"tokens": 1000}, max_eval_tokens=500)
    assert PerplexitySettings.model_validate(s.model_dump()) == s


def _lrs(budget: Budget, warmup: int, steps: int, steps_per_epoch: int = 10, tokens: int = 100) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    clock = BudgetClock(budget, steps_per_epoch=steps_per_epoch, tokens_per_epoch=steps_per_epoch * tokens)
    sched = warmup_cosine(opt, warmup, clock)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        clock.record_step(tokens, 0.1)
        sched.step()
    return lrs


def test_epoch_budget_follows_the_paper_formula() -> None:
    warmup, total = 4, 20  # 2 epochs of 10 steps
    lrs = _lrs(Budget(epochs=2), warmup, total)
    for step, lr in enumerate(lrs):
        if step < warmup:
            expected = step / warmup
        else:
            expected = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert lr == pytest.approx(expected)


def test_token_and_time_budgets_decay_to_zero_at_their_end() -> None:
    by_tokens = _lrs(Budget(tokens=1500), warmup=3, steps=15)  # 100 tokens per step -> done at 15
    by_time = _lrs(Budget(seconds=1.5), warmup=3, steps=15)  # 0.1 s per step -> done at 15
    for lrs in (by_tokens, by_time):
        assert lrs[3] == pytest.approx(1.0)
        assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # monotone decay after warmup
        assert lrs[-1] < 0.02


def test_clock_progress_and_epochs() -> None:
    clock = BudgetClock(Budget(tokens=250), steps_per_epoch=4, tokens_per_epoch=400)
    for _ in range(2):
        clock.record_step(100, 1.0)
    assert (clock.progress(), clock.epoch, clock.done()) == (0.8, 0.5, False)
    clock.record_step(100, 1.0)
    assert clock.done() and clock.steps == 3 and clock.train_s == 3.0
