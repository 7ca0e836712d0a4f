"""The recall_distance task: settings, load-time checks, scoring per bin, the step budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from gam_bench import store
from gam_bench.errors import UserError
from gam_bench.suite import suite_from_dict
from gam_bench.tasks import get_task
from gam_bench.tasks.recall import measure as recall
from gam_bench.tasks.recall.trainer import fit
from gam_bench.tasks.recall_distance import layout
from gam_bench.tasks.recall_distance import measure as distance
from gam_bench.tasks.recall_distance.settings import RecallDistanceSettings

EDGES = [2, 4, 8, 16]


class ReachOracle(nn.Module):
    """Predicts the token after the latest earlier occurrence of the current token when that
    occurrence is at most `reach` tokens back (an induction head with a limited reach), else
    a filler token: its horizon is `reach`."""

    def __init__(self, vocab_size: int, reach: int):
        super().__init__()
        self.vocab_size, self.reach = vocab_size, reach

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        same = idx[:, :, None] == idx[:, None, :]  # (B, T, T)
        back = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # (T, T): t - j
        seen = same & (back >= 1) & (back <= self.reach)  # (B, T, T)
        j = torch.where(seen, torch.arange(T), -1).amax(dim=-1)  # (B, T), -1: none in reach
        nxt = torch.where(j >= 0, idx.gather(1, (j + 1).clamp(max=T - 1)), self.vocab_size - 1)  # (B, T)
        logits = torch.zeros(B, T, self.vocab_size)
        logits.scatter_(2, nxt[:, :, None], 1.0)
        return logits  # (B, T, V)


@pytest.mark.parametrize("reach, label, tokens", [(1, "none", 0), (2, "1–2", 2), (4, "3–4", 4), (9, "5–8", 8)])
def test_a_model_that_sees_r_tokens_back_has_the_horizon_of_r(reach, label, tokens):
    data = layout.generate(EDGES, 32, 64, 300, seed=0)
    hits = recall.predict_hits(ReachOracle(64, reach), data, batch_size=100)  # (N, T)
    scores = distance.score(hits, data, layout.bins_for(EDGES, 32))
    near = [hi <= reach for hi in scores["distance_hi"]]
    assert [a == 1.0 for a in scores["bin_accuracy"]] == near
    assert all(a < 0.1 for a, n in zip(scores["bin_accuracy"], near) if not n)  # a fixed guess: ~1/32
    assert scores["horizon_bin"] == label and scores["horizon"] == tokens
    assert scores["bin_trials"] == [300] * 4 and scores["n_answers"] == 1200 and scores["num_kv_pairs"] == 4
    assert scores["accuracy"] == pytest.approx(np.mean(scores["bin_accuracy"]))
    assert scores["distance_lo"] == [0, 2, 4, 8] and scores["distance_hi"] == [2, 4, 8, 16]
    low, high = scores["bin_ci_low"], scores["bin_ci_high"]
    assert all(lo <= a <= hi for lo, a, hi in zip(low, scores["bin_accuracy"], high))
    row = {"task": "recall_distance", "status": "ok", **scores}
    assert store.non_finite_columns(row) == [] and set(scores) <= set(get_task("recall_distance").columns)


def test_settings():
    s = RecallDistanceSettings()
    assert s.edges(1024) == [4, 16, 64, 256, 1024] and s.bins(64) == [(0, 4), (4, 16), (16, 62)]
    assert RecallDistanceSettings(distance_bins=[2, 8]).edges(64) == [2, 8]
    assert [p.lr for p in RecallDistanceSettings(lr=[1e-3, 1e-2]).points(64)] == [1e-3, 1e-2]
    with pytest.raises(UserError, match="one lr"):
        s.scalar_lr()
    for bad in ([], [4, 4], [8, 4], [1, 4]):
        with pytest.raises(ValidationError, match="increasing upper edges"):
            RecallDistanceSettings(distance_bins=bad)
    with pytest.raises(ValidationError, match="extra"):
        RecallDistanceSettings(num_kv_pairs=4)


BASE = {"name": "r", "task": "recall_distance", "models": ["transformer"], "axes": {"seq_len": [32]}, "level": "lm"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recall_distance": {"distance_bins": [2, 3, 8]}}, "recall_distance.distance_bins: the bin 3-3 holds no"),
        ({"recall_distance": {"distance_bins": [2, 4, 8, 16], "vocab_size": 6}}, "recall_distance.vocab_size: "),
        (
            {"axes": {"seq_len": [14]}, "recall_distance": {"distance_bins": [2, 4, 8, 16]}},
            "recall_distance.distance_bins: seq_len=14 is too short for 4 distance bins",
        ),
        ({"recall_distance": {}, "axes": {"seq_len": [32], "seed": 1}}, "axes.seed: a recall_distance suite sets it"),
        ({"recall_distance": {}, "level": "block"}, "level: the recall_distance task trains language models"),
        ({}, "task 'recall_distance' needs a 'recall_distance:' section"),
        (
            {"recall_distance": {"budget": {"seconds": 9}}, "limits": {"timeout_s": 9}},
            "recall_distance.budget: seconds=9 leaves no time",
        ),
    ],
)
def test_impossible_settings_are_one_line_errors_at_load_time(change, message):
    with pytest.raises(UserError) as info:
        suite_from_dict({**BASE, **change}, source="s.yaml")
    assert str(info.value).startswith("s.yaml: ") and message in str(info.value) and "\n" not in str(info.value)


def test_the_step_budget_is_honoured_and_seconds_are_recorded():
    torch.set_num_threads(1)
    settings = RecallDistanceSettings(
        distance_bins=EDGES, vocab_size=32, train_examples=64, test_examples=16, batch_size=8, lr=3e-3
    )
    data = layout.generate(EDGES, 32, 32, 64, seed=0)
    for steps in (3, 11):  # 11 steps: more than the 8 batches of one pass over the data
        budgeted = RecallDistanceSettings.model_validate({**settings.model_dump(), "budget": {"steps": steps}})
        model = recall.build_model("gam", budgeted, 32, d_model=8, n_layers=1)
        trainer = fit(model, budgeted, 3e-3, data, torch.device("cpu"))
        assert trainer.clock.steps == steps and trainer.clock.train_s > 0 and len(trainer.losses) == steps
        assert math.isfinite(trainer.final_loss) and budgeted.budget_text == f"steps={steps}"


def test_progress_and_summary_show_the_horizon_steps_and_seconds():
    task = get_task("recall_distance")
    row = {"horizon_bin": "3–4", "accuracy": 0.5, "step": 300, "wall_s": 12.3, "duration_s": 20.0}
    assert task.outcome(row) == "horizon 3–4  accuracy 0.500  300 steps  20 s"
    assert [(h, f(row)) for h, _, f in task.summary_columns()] == [
        ("horizon", "3–4"),
        ("accuracy", "0.500"),
        ("steps", "300"),
        ("train s", "12"),
    ]
    assert task.outcome({}) == "" and all(f({}) == "-" for _, _, f in task.summary_columns())
