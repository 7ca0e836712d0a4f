"""Text data for the perplexity task: WikiText-2 (raw and tokenized releases) and TinyStories.

Sources, in order:
1. local folders: `$GAM_BENCH_DATA_DIR`, then the suite's `perplexity.data_dir`. In each,
   a split's file is looked for under `<dir>/<dataset>/` and then `<dir>/` itself, plain
   or gzip-compressed (`name.gz`). The layout of gam-bench's shared data folder:
     wikitext-2/{train.txt.gz, valid.txt, test.txt}          (tokenized release, `<unk>`)
     wikitext-2-raw/{wiki.train.raw, wiki.valid.raw, wiki.test.raw}
     tinystories/{TinyStories-train.txt, TinyStories-valid.txt} or the `-head` excerpts
2. the Hugging Face hub through `datasets` (optional extra; imported lazily), when the
   package is installed and online.
A split found in neither place raises a one-line UserError naming what was looked for
and where. No split ever stands in for another.

A loaded split is a list of lines (the unit the tokenizer encodes) plus where it came
from and the SHA-256 of its text content (of the decompressed bytes for a .gz file).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from gam_bench.errors import UserError

DATA_DIR_ENV = "GAM_BENCH_DATA_DIR"


@dataclass(frozen=True)
class DatasetSpec:
    """Where one data set lives: local file names per split and its hub id."""

    name: str
    files: dict[str, tuple[str, ...]]  # split -> candidate file names, first found wins
    hub_path: str
    hub_config: str | None
    # A line that only separates documents (TinyStories' `<|endoftext|>`); dropped, as
    # the hub rows do not contain it.
    separator_line: str | None = None
    # The data set's own unknown-word marker (kept as one token by the BPE tokenizer).
    unk_marker: str | None = None
    missing_hint: dict[str, str] | None = None


DATASETS: dict[str, DatasetSpec] = {
    "wikitext-2-raw": DatasetSpec(
        name="wikitext-2-raw",
        files={"train": ("wiki.train.raw",), "validation": ("wiki.valid.raw",), "test": ("wiki.test.raw",)},
        hub_path="wikitext",
        hub_config="wikitext-2-raw-v1",
        missing_hint={
            "train": "the raw train split (wiki.train.raw) is missing; the word-level tokenized "
            "release has a complete train split: set perplexity.dataset: wikitext-2",
        },
    ),
    "wikitext-2": DatasetSpec(
        name="wikitext-2",
        files={
            "train": ("train.txt", "wiki.train.tokens"),
            "validation": ("valid.txt", "wiki.valid.tokens"),
            "test": ("test.txt", "wiki.test.tokens"),
        },
        hub_path="wikitext",
        hub_config="wikitext-2-v1",
        unk_marker="<unk>",
    ),
    "tinystories": DatasetSpec(
        name="tinystories",
        files={
            "train": ("TinyStories-train.txt", "TinyStories-train-head.txt"),
            "validation": ("TinyStories-valid.txt", "TinyStories-validation-head.txt"),
        },
        hub_path="roneneldan/TinyStories",
        hub_config=None,
        separator_line="<|endoftext|>",
    ),
}


@dataclass(frozen=True)
class TextSplit:
    """One split of one data set, as lines of text, with its provenance."""

    dataset: str
    split: str
    source: str  # a file path, or "hf:<path>[/<config>]:<split>"
    sha256: str  # of the text content
    lines: list[str]


def get_spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise UserError(f"perplexity.dataset: unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    return DATASETS[dataset]


def data_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[tuple[Path, str]]:
    """Local folders to search, in order, each with where it came from: $GAM_BENCH_DATA_DIR,
    then `data_dir` (the suite's perplexity.data_dir). Relative paths: from the working directory."""
    dirs = [(os.environ.get(DATA_DIR_ENV), DATA_DIR_ENV), (data_dir, "perplexity.data_dir")]
    return [(Path(d).expanduser(), origin) for d, origin in dirs if d]


def load_split(
    dataset: str, split: str, data_dir: str | os.PathLike[str] | None = None, max_rows: int | None = None
) -> TextSplit:
    """Load `split` of `dataset` from a local folder, else from the hub; else a one-line UserError.

    max_rows keeps the first rows only, as the paper's MAX_TRAIN_ROWS / MAX_VAL_ROWS do:
    hub rows, which are lines for WikiText and stories for TinyStories (a local TinyStories
    file needs its `<|endoftext|>` separators for that).
    """
    spec = get_spec(dataset)
    if split not in spec.files:
        raise UserError(f"{dataset} has no split {split!r}; known: {', '.join(spec.files)}")
    dirs = data_dirs(data_dir)
    for path in _candidates(spec, split, [d for d, _ in dirs if d.is_dir()]):
        if path.is_file():
            return _read_file(spec, split, path, max_rows)
    text, hub_note = _from_hub(spec, split, max_rows)
    if text is not None:
        return text
    raise UserError(_missing_message(spec, split, dirs, hub_note))


def _candidates(spec: DatasetSpec, split: str, dirs: list[Path]) -> list[Path]:
    names = spec.files[split]
    return [
        folder / sub / f"{name}{suffix}"
        for folder in dirs
        for sub in (spec.name, ".")
        for name in names
        for suffix in ("", ".gz")
    ]


def _read_file(spec: DatasetSpec, split: str, path: Path, max_rows: int | None) -> TextSplit:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except OSError as exc:
            raise UserError(f"{path}: not a readable gzip file ({exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return TextSplit(
        dataset=spec.name,
        split=split,
        source=str(path.resolve()) + (f" (first {max_rows} rows)" if max_rows else ""),
        sha256=hashlib.sha256(raw).hexdigest(),  # of the whole file, so `sha256sum` can check it
        lines=_lines(text, spec.separator_line, max_rows, path),
    )


def _lines(text: str, separator_line: str | None, max_rows: int | None = None, where: object = "") -> list[str]:
    """Split on "\\n" only (WikiText has other Unicode line breaks inside lines)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if max_rows is not None:
        lines = _first_rows(lines, separator_line, max_rows, where)
    if separator_line is not None:
        lines = [line for line in lines if line.strip() != separator_line]
    return lines


def _first_rows(lines: list[str], separator_line: str | None, max_rows: int, where: object) -> list[str]:
    """The lines of the first `max_rows` rows: lines, or documents ended by `separator_line`."""
    if separator_line is None:
        return lines[:max_rows]
    ends = [i for i, line in enumerate(lines) if line.strip() == separator_line]
    if not ends and lines:
        raise UserError(f"{where}: has no {separator_line!r} lines between documents, so max rows cannot be applied")
    return lines[: ends[max_rows - 1] + 1] if len(ends) >= max_rows else lines


def _from_hub(spec: DatasetSpec, split: str, max_rows: int | None) -> tuple[TextSplit | None, str]:
    """The split from the Hugging Face hub, or (None, why not) in one phrase."""
    hub_id = spec.hub_path + (f"/{spec.hub_config}" if spec.hub_config else "")
    hub_split = f"{split}[:{max_rows}]" if max_rows else split
    try:
        import datasets  # optional extra: pip install 'gam-bench[data]'
    except ImportError:
        return None, f"hub {hub_id} not tried (the `datasets` package is not installed)"
    try:
        rows = datasets.load_dataset(spec.hub_path, spec.hub_config, split=hub_split)["text"]
    except Exception as exc:  # offline, unknown split, ...: report, don't crash
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"hub {hub_id} failed ({reason})"
    text = "".join(row if row.endswith("\n") else row + "\n" for row in rows)
    content = text.encode("utf-8")
    return (
        TextSplit(
            dataset=spec.name,
            split=split,
            source=f"hf:{hub_id}:{hub_split}",
            sha256=hashlib.sha256(content).hexdigest(),
            lines=_lines(text, spec.separator_line),
        ),
        "",
    )


def _missing_message(spec: DatasetSpec, split: str, dirs: list[tuple[Path, str]], hub_note: str) -> str:
    names = ", ".join(f"{n}[.gz]" for n in spec.files[split])
    places = [
        f"{d}/{spec.name}/ and {d}/" if d.is_dir() else f"data folder {d} (from {origin}), which does not exist"
        for d, origin in dirs
    ]
    where = "in " + ", ".join(places) if places else f"in no local folder (set {DATA_DIR_ENV} or perplexity.data_dir)"
    hint = (spec.missing_hint or {}).get(split)
    message = f"{spec.name} {split} split not found: looked for {names} {where}; {hub_note}"
    return message + (f"; {hint}" if hint else "")
