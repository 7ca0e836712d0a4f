"""Tokenizers for the perplexity task, trained on the train split and cached on disk.

- "bpe" (the paper's): `tokenizers` BPE, whitespace/punctuation pre-tokenizer, special
  tokens [UNK] [PAD] [SOS] [EOS], vocabulary 10,000 by default. Lines are encoded one by
  one and concatenated with no separator token, as the paper's benchmark.py does. A data
  set's own unknown-word marker (`<unk>` in tokenized WikiText-2) is kept as one token.
- "word" (for the word-level tokenized WikiText-2): one token per whitespace-separated
  word, every training word in the vocabulary unless vocab_size caps it, and [EOS] after
  every line, as pytorch/examples word_language_model counts WikiText-2.

The cache (`$GAM_BENCH_CACHE`, default ~/.cache/gam-bench) holds the tokenizer JSON under
a key made of the train data hash and every setting that changes the result, and the
encoded token ids of each split under the tokenizer key plus the split's data hash.
Every cache write goes through `gam_bench.atomic.atomic_write` (hidden temporary file, fsync,
`os.replace`), so a crash or a concurrent worker never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gam_bench.atomic import atomic_write
from gam_bench.errors import UserError
from gam_bench.text.data import TextSplit

CACHE_ENV = "GAM_BENCH_CACHE"
SPECIAL_TOKENS = ("[UNK]", "[PAD]", "[SOS]", "[EOS]")
_FORMAT = 1  # bump when the cached content changes meaning
_ALL_WORDS = 2**31 - 1  # WordLevelTrainer's "no cap"


@dataclass(frozen=True)
class TrainedTokenizer:
    """A trained `tokenizers.Tokenizer` plus what identifies it."""

    tokenizer: Any  # tokenizers.Tokenizer
    kind: str  # "bpe" | "word"
    key: str  # cache key: hash of train data + settings
    vocab_size: int

    @property
    def name(self) -> str:
        """What the store's `tokenizer` column records, e.g. "bpe-10000"."""
        return f"{self.kind}-{self.vocab_size}"


def cache_dir() -> Path:
    """The cache root: $GAM_BENCH_CACHE, else ~/.cache/gam-bench."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gam-bench").expanduser()


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise UserError("the perplexity task needs the `tokenizers` package: pip install 'gam-bench[data]'") from exc
    return tokenizers


def get_tokenizer(
    kind: str, train: TextSplit, vocab_size: int | None = None, unk_marker: str | None = None
) -> TrainedTokenizer:
    """The tokenizer of `kind` trained on `train`: from the cache, else trained and cached."""
    tk = _tokenizers()
    settings = {
        "format": _FORMAT,
        "kind": kind,
        "vocab_size": vocab_size,
        "special_tokens": SPECIAL_TOKENS,
        "unk_marker": unk_marker,
        "train_sha256": train.sha256,
        "tokenizers": tk.__version__,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / "tokenizers" / f"{key}.json"
    if path.is_file():
        tokenizer = tk.Tokenizer.from_file(str(path))
    else:
        tokenizer = _train(tk, kind, train.lines, vocab_size, unk_marker)
        atomic_write(path, lambda tmp: tokenizer.save(str(tmp)))
    return TrainedTokenizer(tokenizer=tokenizer, kind=kind, key=key, vocab_size=tokenizer.get_vocab_size())


def _train(tk: Any, kind: str, lines: list[str], vocab_size: int | None, unk_marker: str | None) -> Any:
    from tokenizers import models, pre_tokenizers, trainers

    if kind == "bpe":
        tokenizer = tk.Tokenizer(models.BPE(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        specials = [*SPECIAL_TOKENS, *([unk_marker] if unk_marker else [])]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size or 10000, special_tokens=specials, show_progress=False)
    elif kind == "word":
        tokenizer = tk.Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size or _ALL_WORDS, special_tokens=list(SPECIAL_TOKENS), show_progress=False
        )
    else:
        raise UserError(f"perplexity.tokenizer: unknown tokenizer {kind!r}; known: bpe, word")
    tokenizer.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return tokenizer


def encode(tok: TrainedTokenizer, split: TextSplit) -> np.ndarray:
    """Token ids of `split` as one int32 array (N,), from the cache or encoded and cached."""
    path = cache_dir() / "tokens" / f"{tok.key}-{split.sha256[:32]}.npy"
    if path.is_file():
        return np.load(path)
    ids = _encode_lines(tok, split.lines)
    atomic_write(path, lambda tmp: _save_npy(tmp, ids))
    return ids


def _encode_lines(tok: TrainedTokenizer, lines: list[str]) -> np.ndarray:
    encodings = tok.tokenizer.encode_batch_fast(lines, add_special_tokens=False)
    eos = [tok.tokenizer.token_to_id("[EOS]")] if tok.kind == "word" else []
    ids = [i for enc in encodings for i in (*enc.ids, *eos)]
    return np.asarray(ids, dtype=np.int32)


def _save_npy(path: Path, ids: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, ids)
