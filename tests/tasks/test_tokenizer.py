"""Tokenizers: trained on the train split, cached on disk by data hash + settings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from gam_bench.text import tokenizer as tk
from gam_bench.text.data import TextSplit


def _split(lines: list[str], split: str = "train") -> TextSplit:
    text = "\n".join(lines) + "\n"
    return TextSplit("toy", split, "<memory>", hashlib.sha256(text.encode()).hexdigest(), lines)


TRAIN = _split([f"the cat sat on the mat number {i} , and the dog <unk> ran away" for i in range(200)])


def test_bpe_has_the_paper_special_tokens_first() -> None:
    tok = tk.get_tokenizer("bpe", TRAIN, vocab_size=60)
    assert [tok.tokenizer.id_to_token(i) for i in range(4)] == ["[UNK]", "[PAD]", "[SOS]", "[EOS]"]
    assert tok.vocab_size <= 60 and tok.name == f"bpe-{tok.vocab_size}"


def test_tokenizer_is_cached_and_reused_without_training(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tk.get_tokenizer("bpe", TRAIN, vocab_size=60)
    files = list((cache / "tokenizers").iterdir())
    assert [f.name for f in files] == [f"{first.key}.json"]  # no temporary file left behind

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again despite a cached tokenizer")

    monkeypatch.setattr(tk, "_train", no_training)
    again = tk.get_tokenizer("bpe", TRAIN, vocab_size=60)
    assert again.key == first.key
    assert again.tokenizer.get_vocab() == first.tokenizer.get_vocab()


def test_cache_key_follows_data_and_settings() -> None:
    base = tk.get_tokenizer("bpe", TRAIN, vocab_size=60)
    other_data = _split(TRAIN.lines + ["one more line"])
    keys = {
        base.key,
        tk.get_tokenizer("bpe", TRAIN, vocab_size=70).key,
        tk.get_tokenizer("bpe", other_data, vocab_size=60).key,
        tk.get_tokenizer("bpe", TRAIN, vocab_size=60, unk_marker="<unk>").key,
        tk.get_tokenizer("word", TRAIN).key,
    }
    assert len(keys) == 5


def test_encoded_ids_are_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = tk.get_tokenizer("bpe", TRAIN, vocab_size=60)
    ids = tk.encode(tok, TRAIN)
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < tok.vocab_size
    monkeypatch.setattr(tk, "_encode_lines", lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded")))
    assert np.array_equal(tk.encode(tok, TRAIN), ids)


def test_unk_marker_stays_one_token() -> None:
    tok = tk.get_tokenizer("bpe", TRAIN, vocab_size=60, unk_marker="<unk>")
    ids = tok.tokenizer.encode("dog <unk> ran").ids
    assert tok.tokenizer.token_to_id("<unk>") in ids
    plain = tk.get_tokenizer("bpe", TRAIN, vocab_size=60)
    assert plain.tokenizer.token_to_id("<unk>") is None


def test_word_level_keeps_every_word_and_ends_lines_with_eos() -> None:
    tok = tk.get_tokenizer("word", TRAIN)
    words = {w for line in TRAIN.lines for w in line.split()}
    assert tok.vocab_size == len(words) + len(tk.SPECIAL_TOKENS)
    val = _split(["the cat", "zebra"], "validation")
    ids = tk.encode(tok, val).tolist()
    eos, unk = tok.tokenizer.token_to_id("[EOS]"), tok.tokenizer.token_to_id("[UNK]")
    assert ids == [tok.tokenizer.token_to_id("the"), tok.tokenizer.token_to_id("cat"), eos, unk, eos]


def test_word_level_matches_published_wikitext2_counts(data_dir: Path) -> None:
    from gam_bench.text import data

    train = data.load_split("wikitext-2", "train", data_dir)
    tok = tk.get_tokenizer("word", train)
    # 33,278 word types including <eos> (pytorch/examples Corpus); ours: 33,277 words + 4 specials.
    assert tok.vocab_size == 33_278 - 1 + 4
    assert len(tk.encode(tok, train)) == 2_088_628  # published train tokens with one <eos> per line
