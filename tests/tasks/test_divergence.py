"""Divergence is data: the shared training step stops on a non-finite loss or gradient (a
float16 GradScaler's skipped step excepted), and the training tasks place it in their run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_perplexity import _cell
from torch import nn

from gam_bench import store
from gam_bench.tasks.perplexity import measure as perplexity
from gam_bench.training.divergence import Diverged, check_metric, check_step, locate
from gam_bench.training.step import make_optimizer, make_scaler, train_step


def test_check_step_refuses_a_non_finite_loss_or_gradient_norm():
    check_step(2.5, 1.0)
    for loss, norm, what in ((math.nan, 1.0, "loss"), (math.inf, 1.0, "loss"), (2.5, math.inf, "gradient norm")):
        with pytest.raises(Diverged) as info:
            check_step(loss, norm)
        assert info.value.what == what
    check_step(2.5, math.inf, scaled=True)  # a GradScaler skips that step: not divergence
    with pytest.raises(Diverged):
        check_step(math.nan, 1.0, scaled=True)  # but a non-finite loss is, scaler or not
    with pytest.raises(Diverged, match="validation loss"):
        check_metric("validation loss", math.nan)


def test_a_placed_divergence_says_where_and_keeps_the_rows_before_it():
    exc = Diverged("loss", math.nan).at(step=7, tokens=1536, last_finite_loss=3.25, rows=[{"step": 4, "val_ppl": 9.0}])
    assert exc.reason == "training diverged: non-finite loss (nan) at step 7 after 1,536 tokens; last finite loss 3.25"
    before, marker = exc.stored_rows()
    where = {"diverged_step": 7, "diverged_tokens": 1536, "last_finite_loss": 3.25, "diverged_where": None}
    assert before == {"step": 4, "val_ppl": 9.0, **where}
    assert marker == {"step": 7, "tokens_seen": 1536, **where}
    first = Diverged("loss", math.nan).at(step=1, tokens=0, last_finite_loss=None)
    assert first.reason.endswith("last finite loss none")


class _Lm(nn.Module):
    """A bigram LM whose logits can be poisoned: `poison` multiplies them (nan / inf)."""

    def __init__(self, vocab: int = 11) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, vocab)
        self.poison = 1.0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        return self.head(self.embed(idx)) * self.poison


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 11, (2, 5), generator=g), torch.randint(0, 11, (2, 5), generator=g)  # (B, T) each


def test_train_step_raises_on_a_nan_loss():
    model = _Lm()
    optimizer = make_optimizer(model)
    assert math.isfinite(train_step(model, optimizer, *_batch()))
    model.poison = math.nan
    with pytest.raises(Diverged) as info:
        train_step(model, optimizer, *_batch())
    assert info.value.what == "loss"


@pytest.mark.parametrize("grad_clip", [1.0, None])
def test_train_step_raises_on_an_inf_gradient_with_a_finite_loss(grad_clip):
    model = _Lm()
    model.head.weight.register_hook(lambda g: g * math.inf)  # backward only: the loss stays finite
    with pytest.raises(Diverged) as info:
        train_step(model, make_optimizer(model), *_batch(), grad_clip=grad_clip)
    assert info.value.what == "gradient norm" and not math.isfinite(info.value.value)


def test_a_grad_scaler_skipped_step_is_not_divergence():
    model = _Lm()
    model.head.weight.register_hook(lambda g: g * math.inf)
    before = model.head.weight.detach().clone()
    scaler = make_scaler(torch.float16, "cpu")
    loss = train_step(model, make_optimizer(model), *_batch(), scaler=scaler)
    assert math.isfinite(loss)
    assert torch.equal(model.head.weight, before)  # the scaler skipped the step
    assert scaler.get_scale() < 2.0**16  # and lowered its scale


class _NanAfter(nn.Module):
    """Wraps a tiny LM: training forwards after `after` return NaN."""

    def __init__(self, inner: nn.Module, after: int) -> None:
        super().__init__()
        self.inner, self.after, self.calls = inner, after, 0
        self.config = getattr(inner, "config", None)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, V)
        out = self.inner(idx)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out = out * math.nan
        return out


def test_perplexity_stops_at_the_first_non_finite_step_and_keeps_the_rows_before(
    tiny_model: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    build = perplexity.build_model
    monkeypatch.setattr(perplexity, "build_model", lambda *a, **k: _NanAfter(build(*a, **k), after=5))
    cell = _cell(tiny_model, data_dir, budget={"tokens": 20 * 8 * 32}, eval_interval=2)
    with pytest.raises(Diverged) as info:
        perplexity.run(cell)
    exc = info.value
    tokens_per_step = cell.batch_size * cell.seq_len
    assert (exc.what, exc.step, exc.tokens) == ("loss", 6, 5 * tokens_per_step)
    assert exc.last_finite_loss is not None and math.isfinite(exc.last_finite_loss)
    assert [r["step"] for r in exc.rows] == [2, 4]  # the evaluations before it
    assert exc.where.startswith("forward of '<model>'") and exc.where in exc.reason
    assert all(math.isfinite(r["val_ppl"]) for r in exc.rows)


def test_the_store_refuses_an_ok_row_with_a_non_finite_metric():
    row = {"cell_id": "c", "status": "ok", "val_ppl": 12.0, "position_loss": [1.0, 2.0]}
    store.to_table([row])
    for bad in ({"val_ppl": math.inf}, {"val_loss": math.nan}, {"position_loss": [1.0, math.nan]}):
        with pytest.raises(ValueError, match="non-finite") as info:
            store.to_table([{**row, **bad}])
        assert next(iter(bad)) in str(info.value)
    store.to_table([{**row, "status": "diverged", "val_ppl": math.inf}])  # a failed row may say what it saw
    assert store.non_finite_columns({"a": 1, "b": float("nan"), "c": "x", "d": [0.5, -math.inf], "e": None}) == [
        "b",
        "d",
    ]


class _Blowup(nn.Module):
    """Three layers; `mid` overflows float32 in forward (scale 1e30 squared), or only its
    gradient does (`backward_only`)."""

    def __init__(self, backward_only: bool = False) -> None:
        super().__init__()
        self.first, self.mid, self.last = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 1)
        self.backward_only = backward_only

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 4) -> scalar
        h = self.first(x)
        if not self.backward_only:
            with torch.no_grad():
                self.mid.weight.fill_(1e30)
        h = self.mid(h)
        if self.backward_only:
            h.register_hook(lambda g: g * math.inf)
        return self.last(h * h).sum()


def test_locate_names_the_first_module_whose_forward_output_is_not_finite():
    model = _Blowup()
    where = locate(model, lambda: model(torch.ones(2, 4)))
    assert where.startswith("forward of 'last'"), where  # mid is finite (1e30); its square is not
    assert "largest finite |value| before it" in where and "forward of 'mid'" in where
    assert all(p.grad is None for p in model.parameters())


def test_locate_names_the_backward_of_a_module_whose_gradient_is_not_finite():
    model = _Blowup(backward_only=True)
    where = locate(model, lambda: model(torch.ones(2, 4)))
    assert where.startswith("backward of 'first'"), where


def test_locate_says_when_a_rerun_is_finite():
    model = _Lm()
    where = locate(model, lambda: model(_batch()[0]).sum())
    assert where == "none on a re-run of the same batch (not reproduced)"
