"""The perplexity task: train a registered LM on a text data set and evaluate it.

`run(cell, ctx) -> list[dict]`: one row of store columns per evaluation point (after each
epoch, every `eval_interval` steps if set, and at the end of the budget). The protocol is
the paper's (see perplexity_settings): blocks of seq_len + 1 tokens, the cell's batch
size, AdamW, warmup + cosine LambdaLR, gradient clipping, the shared step (training/loop.py).
bfloat16 autocast is used when the cell's dtype is bfloat16 (suites ask for it on GPUs);
float32 runs without autocast; float16 is refused (gam_bench/precision.py).

Row columns of note: `wall_s` is cumulative training time (evaluation excluded),
`epoch_time_s` the average training time per epoch so far (wall_s / epoch), `train_loss`
the mean training loss since the previous row, `split` the evaluation split (with
`[:N rows]` / `[:N tokens]` when max_val_rows / max_eval_tokens cut it), and `data_source` /
`data_sha256` name both the train and the validation data.

A non-finite training loss or gradient, or a non-finite validation loss, stops the run at once
(`training.divergence.Diverged`): the cell is stored as `diverged` with the evaluation rows so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gam_bench.cell import Cell
from gam_bench.models.builder import build_for
from gam_bench.precision import autocast_for, require_trainable
from gam_bench.tasks.base import SILENT, RunContext
from gam_bench.tasks.perplexity.evaluate import EvalResult, evaluate
from gam_bench.tasks.perplexity.settings import PerplexitySettings
from gam_bench.text import data
from gam_bench.text.batching import epoch_batches, steps_per_epoch, train_blocks
from gam_bench.text.tokenizer import TrainedTokenizer, encode, get_tokenizer
from gam_bench.training.divergence import Diverged, check_metric
from gam_bench.training.loop import TrainingRun
from gam_bench.training.schedule import BudgetClock
from gam_bench.training.step import make_optimizer


@dataclass(frozen=True)
class Corpus:
    """Tokenized train and validation data plus provenance."""

    train: data.TextSplit
    val: data.TextSplit
    tokenizer: TrainedTokenizer
    train_ids: torch.Tensor  # (N_train,) int64
    val_ids: torch.Tensor  # (N_val,) int64, cut to max_eval_tokens
    val_label: str  # e.g. "validation" or "validation[:100000 tokens]"


def load_corpus(settings: PerplexitySettings) -> Corpus:
    """Load train + validation, train (or reuse) the tokenizer, encode both splits."""
    spec = data.get_spec(settings.dataset)
    train = data.load_split(settings.dataset, "train", settings.data_dir, settings.max_train_rows)
    val = data.load_split(settings.dataset, "validation", settings.data_dir, settings.max_val_rows)
    tok = get_tokenizer(settings.tokenizer, train, settings.effective_vocab_size, spec.unk_marker)
    train_ids = torch.from_numpy(encode(tok, train)).long()
    val_ids = torch.from_numpy(encode(tok, val)).long()
    label = "validation" + (f"[:{settings.max_val_rows} rows]" if settings.max_val_rows else "")
    if settings.max_eval_tokens is not None and val_ids.numel() > settings.max_eval_tokens:
        val_ids = val_ids[: settings.max_eval_tokens]
        label += f"[:{settings.max_eval_tokens} tokens]"
    return Corpus(train, val, tok, train_ids, val_ids, label)


def run(cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
    """Train and evaluate the cell's model; one row per evaluation point."""
    settings = cell.settings
    require_trainable(cell, "perplexity")  # before any data is loaded
    ctx.progress(f"{cell.model}: loading {settings.dataset} and its {settings.tokenizer} tokenizer")
    corpus = load_corpus(settings)
    torch.manual_seed(cell.seed)
    model = build_model(cell, settings, corpus.tokenizer.vocab_size)
    return Trainer(model, corpus, settings, cell, ctx).run()


def build_model(cell: Cell, settings: PerplexitySettings, vocab_size: int) -> nn.Module:
    """The cell's LM (models/builder.py) on its device, its vocabulary the tokenizer's."""
    why = f"the {settings.tokenizer} tokenizer's {vocab_size}; drop vocab_size from the perplexity suite"
    model, _config = build_for(cell, vocab_size=vocab_size, vocab_from=why)
    return model


class Trainer:
    """One training run under a budget, evaluating as it goes."""

    def __init__(self, model: nn.Module, corpus: Corpus, settings: PerplexitySettings, cell: Cell, ctx: RunContext):
        self.model, self.corpus, self.settings, self.cell, self.ctx = model, corpus, settings, cell, ctx
        self.seq_len, self.batch_size = cell.seq_len, cell.batch_size
        self.device = next(model.parameters()).device
        self.blocks = train_blocks(corpus.train_ids, self.seq_len)  # (n_blocks, L+1)
        self.clock = BudgetClock(
            settings.budget,
            steps_per_epoch=steps_per_epoch(self.blocks.shape[0], self.batch_size),
            tokens_per_epoch=self.blocks.shape[0] * self.seq_len,
        )
        self.training = TrainingRun(
            model,
            make_optimizer(model, settings.lr, tuple(settings.betas), settings.weight_decay),
            self.clock,
            warmup_steps=settings.warmup_steps,
            autocast=lambda: autocast_for(cell),
            grad_clip=settings.grad_clip,
        )
        self.generator = torch.Generator().manual_seed(cell.seed)
        self.recent_losses: list[float] = []
        self.rows: list[dict[str, Any]] = []

    def run(self) -> list[dict[str, Any]]:
        self.model.train()
        while not self.clock.done():
            for inputs, targets in epoch_batches(self.blocks, self.batch_size, self.generator):
                self._step(inputs, targets)
                if self.clock.done() or self._interval_due():
                    self._evaluate()
                if self.clock.done():
                    break
            else:  # a whole epoch ended
                if self.recent_losses:
                    self._evaluate()
        return self.rows

    def _step(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        try:
            loss = self.training.step(inputs.to(self.device), targets.to(self.device))
        except Diverged as exc:
            raise exc.at(
                step=exc.step, tokens=exc.tokens, last_finite_loss=exc.last_finite_loss, rows=self.rows
            ) from None
        self.recent_losses.append(loss)

    def _placed(self, exc: Diverged, step: int) -> Diverged:
        """`exc` with where it happened and the evaluation rows stored before it."""
        last = self.training.last_finite_loss
        return exc.at(step=step, tokens=self.clock.tokens, last_finite_loss=last, rows=self.rows)

    def _interval_due(self) -> bool:
        interval = self.settings.eval_interval
        return interval is not None and self.clock.steps % interval == 0

    def _evaluate(self) -> None:
        result = evaluate(
            self.model,
            self.corpus.val_ids,
            self.seq_len,
            self.batch_size,
            n_buckets=self.settings.position_buckets,
            autocast=autocast_for(self.cell),
        )
        try:
            check_metric("validation loss", result.loss)
        except Diverged as exc:
            raise self._placed(exc, step=self.clock.steps) from None
        self.rows.append(self._row(result))
        self.recent_losses.clear()
        self.ctx.progress(
            f"{self.cell.model}: step {self.clock.steps} epoch {self.clock.epoch:.2f} "
            f"val loss {result.loss:.4f} ppl {result.ppl:.2f}",
        )

    def _row(self, result: EvalResult) -> dict[str, Any]:
        clock, corpus = self.clock, self.corpus
        config = getattr(self.model, "config", None)
        return {
            "dataset": self.settings.dataset,
            "split": corpus.val_label,
            "data_source": f"train={corpus.train.source}; validation={corpus.val.source}",
            "data_sha256": f"train={corpus.train.sha256}; validation={corpus.val.sha256}",
            "tokenizer": corpus.tokenizer.name,
            "seed": self.cell.seed,
            "step": clock.steps,
            "epoch": clock.epoch,
            "tokens_seen": clock.tokens,
            "wall_s": clock.train_s,
            "epoch_time_s": clock.train_s / clock.epoch,
            "tokens_per_s": clock.tokens / clock.train_s if clock.train_s > 0 else None,
            "train_loss": sum(self.recent_losses) / len(self.recent_losses),
            "val_loss": result.loss,
            "val_ppl": result.ppl,
            "position_loss": result.position_loss,
            "position_bucket_edges": result.bucket_edges,
            "params": sum(p.numel() for p in self.model.parameters()),
            "backend": getattr(self.model, "backend", None),
            "d_model": getattr(config, "d_model", None),
            "n_layers": getattr(config, "n_layers", None),
        }
