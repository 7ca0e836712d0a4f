"""The recall task on tiny settings: masked loss, accuracy only at answers, budgets, learning."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from gam_bench import store
from gam_bench.cell import Cell
from gam_bench.errors import UserError
from gam_bench.settings import Limits, Measure
from gam_bench.tasks import get_task
from gam_bench.tasks.recall import measure as recall
from gam_bench.tasks.recall import mqar, trainer
from gam_bench.tasks.recall.settings import RecallSettings
from gam_bench.training.step import make_scaler

TINY = dict(vocab_size=16, train_examples=256, test_examples=64, batch_size=16, eval_batch_size=32)


class InductionOracle(nn.Module):
    """Predicts the token that followed the latest earlier occurrence of the current token
    (a perfect induction head): right at every MQAR answer, since each queried key appears
    earlier exactly once, followed by its value."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        same = idx[:, :, None] == idx[:, None, :]  # (B, T, T): same[b, t, j] = idx[b, t] == idx[b, j]
        earlier = same & torch.ones(T, T, dtype=torch.bool).tril(-1)  # (B, T, T), j < t
        j = torch.where(earlier, torch.arange(T), -1).amax(dim=-1)  # (B, T), -1: none
        nxt = idx.gather(1, (j + 1).clamp(max=T - 1))  # (B, T)
        logits = torch.full((B, T, self.vocab_size), -1.0)
        logits.scatter_(2, nxt[:, :, None], 1.0)
        return logits  # (B, T, V)


class Constant(nn.Module):
    """Predicts one token everywhere."""

    def __init__(self, vocab_size: int, token: int):
        super().__init__()
        self.vocab_size, self.token = vocab_size, token

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*idx.shape, self.vocab_size)
        logits[..., self.token] = 1.0
        return logits  # (B, T, V)


def test_masked_loss_ignores_every_non_answer_position():
    logits = torch.randn(2, 5, 7)
    targets = torch.full((2, 5), mqar.IGNORE_INDEX)
    targets[0, 3], targets[1, 1] = 4, 6
    picked = torch.stack([logits[0, 3], logits[1, 1]])
    expected = torch.nn.functional.cross_entropy(picked, torch.tensor([4, 6]))
    assert torch.allclose(trainer.masked_loss(logits, targets), expected)
    logits2 = logits.clone()
    logits2[0, 0] += 100.0  # a non-answer position changes nothing
    assert torch.allclose(trainer.masked_loss(logits2, targets), expected)


def test_the_oracle_scores_one_and_a_constant_scores_its_share_of_answers():
    data = mqar.generate(3, 24, 16, 0.01, 200, seed=0)
    perfect = recall.evaluate(InductionOracle(16), data, batch_size=64)
    assert perfect["accuracy"] == 1.0 and perfect["n_answers"] == 600 and perfect["probe_correct"] == 200
    token = 9  # a value token; fillers use it too, so scoring any filler position would change the figure
    constant = recall.evaluate(Constant(16, token), data, batch_size=64)
    share = (data.targets[data.answer_mask] == token).mean()
    assert constant["accuracy"] == pytest.approx(share) and constant["correct"] == (data.targets == token).sum()
    assert 0 < share < 0.3  # about 1 / 8 values
    assert recall.evaluate(Constant(16, 0), data, batch_size=64)["accuracy"] == 0.0  # a key token is never an answer


def _settings(**kw) -> RecallSettings:
    return RecallSettings(**{**TINY, "num_kv_pairs": 2, "lr": 3e-3, "budget": {"steps": 40}, **kw})


def test_training_lowers_the_answer_loss_and_reports_the_run():
    torch.set_num_threads(1)
    settings = _settings()
    model = recall.build_model("transformer", settings, seq_len=16, d_model=32, n_layers=2)
    messages: list[str] = []
    result = recall.train_and_evaluate(model, settings, 16, progress=messages.append, progress_every_s=0.0)
    assert result["steps"] == 40 and result["n_answers"] == 64 * 2 and result["n_examples"] == 64
    assert result["chance"] == 1 / 8 and result["chance_in_context"] == 1 / 2
    assert 0.0 <= result["accuracy"] <= 1.0 and result["train_s"] > 0 and result["pos_init"] == "normal(std=0.02)"
    assert math.isfinite(result["train_loss"]) and result["train_loss"] < math.log(16) - 0.3
    assert len(messages) >= 40 and "accuracy" in messages[-1]


def test_loss_decreases_from_its_start():
    torch.set_num_threads(1)
    settings = _settings(budget={"steps": 60})
    model = recall.build_model("gam", settings, seq_len=16, d_model=32)
    data = mqar.generate(2, 16, 16, 0.01, 256, 0)
    run = trainer.Trainer(model, settings, 3e-3, data, torch.device("cpu"), contextlib.nullcontext)
    run.run(None, 1.0)
    start, end = np.mean(run.losses[:5]), np.mean(run.losses[-10:])
    assert run.clock.steps == 60 and end < start - 0.5


def test_a_seconds_budget_stops_after_its_time():
    torch.set_num_threads(1)
    settings = _settings(budget={"seconds": 0.5})
    # a transformer step takes milliseconds; mamba's first step here took 6 s at load 9 (its scan kernel)
    model = recall.build_model("transformer", settings, seq_len=16, d_model=16)
    result = recall.train_and_evaluate(model, settings, 16)
    assert result["train_s"] >= 0.5 and result["steps"] >= 1 and result["budget"] == "seconds=0.5"
    assert result["train_s"] < 0.5 + 5.0  # one step past the budget at most (a step here is well under 5 s)


def test_settings_schema():
    with pytest.raises(ValidationError, match="exactly one of steps, seconds"):
        RecallSettings(budget={"steps": 10, "seconds": 1.0})
    with pytest.raises(ValidationError, match="exactly one of steps, seconds"):
        RecallSettings(budget={})
    with pytest.raises(ValidationError, match="extra"):
        RecallSettings(learning_rate=1e-3)
    with pytest.raises(ValidationError, match="learning rates"):
        RecallSettings(lr=[])
    s = RecallSettings()  # the paper's defaults
    assert s.kv_pairs_for(512) == [64] and len(s.lrs) == 4 and s.vocab_size == 8192
    points = RecallSettings(num_kv_pairs=[4, 8], lr=[1e-3, 1e-2]).points(64)
    assert [(p.num_kv_pairs, p.lr) for p in points] == [(4, 1e-3), (4, 1e-2), (8, 1e-3), (8, 1e-2)]
    assert points[0].scalar() == (4, 1e-3)
    with pytest.raises(UserError, match="no entry for seq_len=100"):
        s.kv_pairs_for(100)
    with pytest.raises(UserError, match="one num_kv_pairs and one lr"):
        s.scalar()


def test_an_impossible_setting_fails_before_training():
    settings = _settings(num_kv_pairs=8)
    model = recall.build_model("transformer", settings, seq_len=16, d_model=16)
    with pytest.raises(UserError, match="seq_len=16 is too short for num_kv_pairs=8"):
        recall.train_and_evaluate(model, settings, 16)


def _cell(model: str = "transformer", **fields) -> Cell:
    """A resolved recall cell as expand and pre-flight make it (d_model, n_layers filled in)."""
    point = _settings(budget={"steps": 8})
    body = dict(
        task="recall",
        model=model,
        overrides={"d_model": 16, "n_layers": 1},
        level="lm",
        mode="forward_backward",
        dtype="float32",
        device="cpu",
        batch_size=point.batch_size,
        seq_len=16,
        seed=point.seed,
        threads=1,
        measure=Measure(),
        limits=Limits(),
        plugins=[],
        settings=point,
        family="transformer",
        d_model=16,
        n_layers=1,
    )
    return Cell(**{**body, **fields})


class _Ctx:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def progress(self, message: str) -> None:
        self.messages.append(message)


def test_run_gives_one_row_of_store_columns_and_reports_progress():
    torch.set_num_threads(1)
    ctx = _Ctx()
    (row,) = get_task("recall").run(_cell(), ctx)  # the registered task runs this module's `run`
    assert set(row) <= set(store.columns())
    assert row["step"] == 8 and row["wall_s"] > 0 and row["tokens_seen"] == 8 * 16 * 16
    assert row["n_answers"] == 64 * 2 and row["n_examples"] == 64 and 0 <= row["probe_correct"] <= 64
    assert row["accuracy"] == row["correct"] / row["n_answers"] and math.isfinite(row["train_loss"])
    assert (row["chance"], row["chance_in_context"], row["num_kv_pairs"], row["lr"]) == (1 / 8, 1 / 2, 2, 3e-3)
    assert (row["d_model"], row["n_layers"], row["backend"], row["dataset"]) == (16, 1, "sdpa", "mqar")
    assert row["pos_init"] == "normal(std=0.02)"
    expected = recall.build_cell_model(_cell())
    assert row["params"] == sum(p.numel() for p in expected.parameters())
    assert expected.config.d_model == 16 and expected.config.n_layers == 1 and expected.config.vocab_size == 16
    assert expected.config.max_seq_len == 16
    assert "accuracy" in ctx.messages[-1]
    store.to_table([{**row, "cell_id": "x", "status": "ok"}])  # every value fits its column type


def test_run_is_seeded_by_the_cell():
    torch.set_num_threads(1)
    first, again = recall.run(_cell())[0], recall.run(_cell())[0]
    assert (first["accuracy"], first["train_loss"]) == (again["accuracy"], again["train_loss"])


def test_run_records_which_scan_mamba_runs_and_why():
    torch.set_num_threads(1)
    (row,) = recall.run(_cell("mamba", settings=_settings(budget={"steps": 1})))
    from gam_bench.models import cpu_scan

    path = "cpu-fused-scan" if cpu_scan.available() else "torch-chunked-scan"
    assert row["backend"] == path and "cpu" in row["backend_reason"]


def test_float16_trains_with_the_shared_grad_scaler(monkeypatch):
    """Recall's float16 cells take the shared step's GradScaler (training/step.make_scaler)."""
    made = []
    monkeypatch.setattr(trainer, "make_scaler", lambda dtype, device: made.append(dtype) or make_scaler(dtype, device))
    torch.set_num_threads(1)
    (row,) = recall.run(_cell(dtype="float16"))
    assert made == ["float16"] and row["step"] == 8 and math.isfinite(row["train_loss"])


def test_run_refuses_what_the_task_sets_itself():
    with pytest.raises(UserError, match="sets vocab_size itself"):
        recall.run(_cell(overrides={"d_model": 16, "vocab_size": 99}))
    with pytest.raises(UserError, match="needs d_model and n_layers"):
        recall.run(_cell(d_model=None))


def test_build_model_redraws_learned_positions_and_the_row_says_so():
    settings = _settings(pos_init_std=0.02)
    model = recall.build_model("transformer", settings, seq_len=64, d_model=64)
    std = model.pos_embedding.weight.std().item()
    assert std == pytest.approx(0.02, rel=0.1)
    assert recall.position_init(model, settings) == "normal(std=0.02)"
    default = _settings(pos_init_std=None)
    kept = recall.build_model("transformer", default, seq_len=64, d_model=64)
    assert kept.pos_embedding.weight.std().item() == pytest.approx(1.0, rel=0.1)  # nn.Embedding's N(0, 1)
    assert recall.position_init(kept, default) == "model default"
    same_seed = recall.build_model("transformer", settings, seq_len=64, d_model=64)
    assert torch.equal(same_seed.pos_embedding.weight, model.pos_embedding.weight)
    mamba = recall.build_model("mamba", settings, seq_len=16, d_model=16)
    assert recall.position_init(mamba, settings) == "none (no learned positions)"
    assert RecallSettings().pos_init_std == 0.02


def test_the_end_of_sweep_table_shows_recall_not_empty_throughput_columns():
    from rich.console import Console

    from gam_bench.runner.progress import summary_table

    ok = {"model": "gam", "seq_len": 64, "num_kv_pairs": 8, "lr": 3e-3, "status": "ok", "accuracy": 0.4567}
    ok.update(chance=1 / 32, step=400, wall_s=12.3)
    failed = {"model": "transformer", "seq_len": 64, "status": "oom", "accuracy": float("nan")}
    task = get_task("recall")
    assert [(h, f(ok)) for h, _, f in task.summary_columns()] == [
        ("T", "64"),
        ("kv pairs", "8"),
        ("lr", "0.003"),
        ("status", "ok"),
        ("accuracy", "0.457"),
        ("chance", "0.031"),
        ("steps", "400"),
        ("train s", "12"),
    ]
    console = Console(width=200, record=True)
    console.print(summary_table([{**ok, "task": "recall"}, {**failed, "task": "recall"}], "recall"))
    text = console.export_text()
    assert "accuracy" in text and "0.457" in text and "tokens/s" not in text
    assert [f(failed) for h, _, f in task.summary_columns() if h in ("accuracy", "steps")] == ["-", "-"]
