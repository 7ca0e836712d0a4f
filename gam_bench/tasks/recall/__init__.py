"""The recall task: train a registered LM on MQAR (`mqar`) and score held-out recall (see `measure`).

Its `recall:` section (`settings.RecallSettings`) is required and sets the batch size and
seed of its cells; `num_kv_pairs` and `lr` may be lists, and each (num_kv_pairs, lr) at a
length is a cell of its own. Load-time checks (`check_suite`): level lm, no batch_size or
seed axes, a seconds budget below the timeout, a possible MQAR setting at every length.
Pre-flight: the task sets vocab_size and max_seq_len itself, and the model needs a d_model
and n_layers to train at.

No torch here: `measure` holds the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gam_bench.errors import UserError
from gam_bench.tasks.base import SILENT, ModelNeeds, Origin, RunContext, Task
from gam_bench.tasks.perplexity import TRAINING_COLUMNS
from gam_bench.tasks.recall.settings import RecallSettings, TrainingSettings

if TYPE_CHECKING:
    from gam_bench.cell import Cell

_F64, _I64, _STR = "float64", "int64", "string"


class Recall(Task):
    name = "recall"
    description = "train an LM on multi-query associative recall (MQAR); held-out accuracy"
    report = "gam_bench.report.recall"  # its report section (section, METHOD)
    settings = RecallSettings
    # Also fills tokens_per_s (core), and from the training columns step (optimiser steps),
    # wall_s (training seconds), tokens_seen, dataset ("mqar") and split ("test").
    columns = {
        **TRAINING_COLUMNS,
        "accuracy": _F64,  # correct / n_answers: argmax hits at every answer position of the test set
        "correct": _I64,
        "n_answers": _I64,
        "probe_correct": _I64,  # hits on one seeded answer per test example (independent trials)
        "n_examples": _I64,
        "chance": _F64,  # 1 / number of value tokens
        "chance_in_context": _F64,  # 1 / num_kv_pairs
        "num_kv_pairs": _I64,
        "lr": _F64,
        "vocab_size": _I64,
        "power_a": _F64,  # query placement power law
        "pos_init": _STR,  # how learned position embeddings were initialised (RecallSettings.pos_init_std)
        "train_examples": _I64,
        "test_rejected": _I64,  # test draws redrawn because they repeated a training problem
        "budget": _STR,  # "steps=N" or "seconds=S"
    }

    def check_suite(self, config: Any, raw: dict[str, Any], where: Any) -> None:
        """Level lm, batch size and seed from `recall:` (not from axes), a seconds budget below
        the cell timeout, and a possible MQAR setting (`mqar.check_setting`) at every length."""
        if config.level != ["lm"]:
            raise UserError(f"{where(['level'])}: the {self.name} task trains language models: use level: lm")
        for axis in ("batch_size", "seed"):
            if axis in raw["axes"]:
                raise UserError(
                    f"{where(['axes', axis])}: a {self.name} suite sets it in its section: {self.name}.{axis}"
                )
        for i, entry in enumerate(config.models):
            self._check_entry(config, i, entry, where)

    def _check_entry(self, config: Any, i: int, entry: Any, where: Any) -> None:
        settings = config.settings_for(entry)
        own = entry.task_settings.get(self.name, {})

        def at(field: str) -> str:  # the entry's own field if it sets it, else the suite's
            return where(["models", i, self.name, field] if field in own else [self.name, field])

        seconds, timeout = settings.budget.seconds, config.limits.timeout_s
        if seconds is not None and seconds >= timeout:
            raise UserError(f"{at('budget')}: seconds={seconds:g} leaves no time in limits.timeout_s={timeout:g}")
        for seq_len in sorted(config.axes.seq_len):
            self.check_data(settings, seq_len, at)

    def check_data(self, settings: RecallSettings, seq_len: int, at: Callable[[str], str]) -> None:
        """A possible MQAR setting at `seq_len` (`mqar.check_setting`); at(field) locates a field."""
        from gam_bench.tasks.recall import mqar

        try:
            for k in settings.kv_pairs_for(seq_len):
                mqar.check_setting(k, seq_len, settings.vocab_size, settings.power_a)
        except UserError as exc:
            field = "vocab_size" if str(exc).startswith("MQAR: vocab_size") else "num_kv_pairs"
            raise UserError(f"{at(field)}: {str(exc).removeprefix('recall.')}") from None

    def points(self, settings: Any, seq_len: int, mode: str) -> list[tuple[Any, dict]]:
        """One cell per (num_kv_pairs, lr) at the length; each sets its batch size and seed."""
        return [(point, {"batch_size": point.batch_size, "seed": point.seed}) for point in settings.points(seq_len)]

    def budget_identity(self, settings: dict[str, Any]) -> dict[str, Any]:
        """num_kv_pairs costs nothing per step and is often tied to seq_len: not a budget group of its own."""
        return {k: v for k, v in settings.items() if k != "num_kv_pairs"}

    def model_needs(self, cell: Cell) -> ModelNeeds:
        return self.needs(cell.settings, cell.seq_len, self.name)

    @staticmethod
    def needs(settings: TrainingSettings, seq_len: int, task: str = "recall") -> ModelNeeds:
        """seq_len positions, the settings' vocabulary and dropout."""
        return ModelNeeds(
            seq_len,
            f"a {task} cell at seq_len={seq_len}",
            vocab_size=settings.vocab_size,
            vocab_from=f"{task}.vocab_size={settings.vocab_size} (the {task} task sets vocab_size itself)",
            defaults={"dropout": settings.dropout},
        )

    def preflight(self, cell: Cell, config: Any, origin: Origin) -> None:
        """The task sets vocab_size and max_seq_len itself and trains at a width and a depth."""
        for field, given in (("vocab_size", f"{self.name}.vocab_size"), ("max_seq_len", "seq_len")):
            if field in cell.overrides:
                raise UserError(f"{origin.at(field)}: the {self.name} task sets {field} itself (from {given})")
        missing = [f for f in ("d_model", "n_layers") if getattr(config, f, None) is None]
        if missing:
            raise UserError(f"{origin.model}.name: model {cell.model!r} has no {' or '.join(missing)} to train at")

    def run(self, cell: Cell, ctx: RunContext = SILENT) -> list[dict[str, Any]]:
        from gam_bench.tasks.recall import measure

        return measure.run(cell, ctx)

    def outcome(self, row: dict[str, Any]) -> str:
        if row.get("accuracy") is not None:
            return f"accuracy {row['accuracy']:.3f}  {row.get('step') or 0} steps  {row.get('duration_s', 0):.0f} s"
        return ""

    def summary_columns(self) -> list[tuple[str, str, Callable[[dict[str, Any]], str]]]:
        """The end-of-sweep table: length, MQAR setting, status, held-out accuracy and chance,
        steps done and training seconds."""
        return [
            ("T", "right", _column("seq_len", "d")),
            ("kv pairs", "right", _column("num_kv_pairs", "d")),
            ("lr", "right", _column("lr", "g")),
            ("status", "left", _column("status", "s")),
            ("accuracy", "right", _column("accuracy", ".3f")),
            ("chance", "right", _column("chance", ".3f")),
            ("steps", "right", _column("step", "d")),
            ("train s", "right", _column("wall_s", ".0f")),
        ]


def _column(key: str, spec: str) -> Callable[[dict[str, Any]], str]:
    """A summary column's text: the row's `key` formatted with `spec`, "-" where it has none."""

    def text(row: dict[str, Any]) -> str:
        value = row.get(key)
        if value is None or (isinstance(value, float) and value != value):
            return "-"
        return format(int(value) if spec == "d" else value, spec)

    return text


TASK = Recall()
