"""Data loaders: local folders, provenance, honest errors for missing splits and bad paths."""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

import pytest

from gam_bench.errors import UserError
from gam_bench.text import data


def test_tokenized_wikitext2_train_is_read_from_gzip_with_content_hash(data_dir: Path) -> None:
    split = data.load_split("wikitext-2", "train", data_dir)
    assert split.source.endswith("wikitext-2/train.txt.gz")
    content = gzip.decompress((data_dir / "wikitext-2" / "train.txt.gz").read_bytes())
    assert split.sha256 == hashlib.sha256(content).hexdigest()
    assert len(split.lines) == content.count(b"\n")
    assert "<unk>" in " ".join(split.lines[:200])


def test_raw_wikitext2_train_missing_is_an_error_that_points_to_the_tokenized_release(data_dir: Path) -> None:
    if (data_dir / "wikitext-2-raw" / "wiki.train.raw").exists():
        pytest.skip("this data folder has the raw train split")
    with pytest.raises(UserError) as err:
        data.load_split("wikitext-2-raw", "train", data_dir)
    message = str(err.value)
    assert "\n" not in message
    assert "wiki.train.raw" in message and str(data_dir) in message
    assert "dataset: wikitext-2" in message  # suggests the tokenized release, never substitutes it


def test_raw_wikitext2_validation_is_available(data_dir: Path) -> None:
    split = data.load_split("wikitext-2-raw", "validation", data_dir)
    assert split.source.endswith("wiki.valid.raw") and split.split == "validation"
    assert "<unk>" not in " ".join(split.lines)


def test_tinystories_separator_lines_are_dropped(data_dir: Path) -> None:
    split = data.load_split("tinystories", "train", data_dir)
    text = (data_dir / "tinystories" / "TinyStories-train-head.txt").read_text()
    assert "<|endoftext|>" in text
    assert not any("<|endoftext|>" in line for line in split.lines)
    assert split.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_bad_data_path_gives_one_line_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    missing = tmp_path / "no-such-folder"
    with pytest.raises(UserError, match="no-such-folder.*does not exist") as err:
        data.load_split("wikitext-2", "train", missing)
    assert "\n" not in str(err.value) and "perplexity.data_dir" in str(err.value)


def test_empty_folder_names_files_folder_and_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the optional extra were not installed
    with pytest.raises(UserError) as err:
        data.load_split("tinystories", "validation", tmp_path)
    message = str(err.value)
    assert "TinyStories-valid.txt" in message and str(tmp_path) in message
    assert "roneneldan/TinyStories" in message and "datasets" in message and "\n" not in message


def test_no_folder_at_all_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(UserError, match="GAM_BENCH_DATA_DIR"):
        data.load_split("wikitext-2", "validation", None)


def test_env_folder_is_searched_before_the_suite_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "env", tmp_path / "suite"
    for folder, text in ((first, "from env\n"), (second, "from suite\n")):
        (folder / "wikitext-2").mkdir(parents=True)
        (folder / "wikitext-2" / "valid.txt").write_text(text)
    monkeypatch.setenv(data.DATA_DIR_ENV, str(first))
    assert data.load_split("wikitext-2", "validation", second).lines == ["from env"]
    # a suite folder that does not exist on this machine does not hide the env folder
    assert data.load_split("wikitext-2", "validation", tmp_path / "absent").lines == ["from env"]
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.load_split("wikitext-2", "validation", second).lines == ["from suite"]


def test_files_directly_in_the_folder_and_gzip_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    (tmp_path / "wiki.test.raw.gz").write_bytes(gzip.compress(b"a b\n\nc\n"))
    split = data.load_split("wikitext-2-raw", "test", tmp_path)
    assert split.lines == ["a b", "", "c"]
    assert split.sha256 == hashlib.sha256(b"a b\n\nc\n").hexdigest()


def test_unknown_split_and_dataset(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no split 'test'"):
        data.load_split("tinystories", "test", tmp_path)
    with pytest.raises(UserError, match="unknown data set"):
        data.load_split("ptb", "train", tmp_path)


def test_max_rows_keeps_the_first_lines_or_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    (tmp_path / "wiki.valid.raw").write_text("a\nb\nc\n")
    split = data.load_split("wikitext-2-raw", "validation", tmp_path, max_rows=2)
    assert split.lines == ["a", "b"] and split.source.endswith("(first 2 rows)")
    stories = "s1 l1\ns1 l2\n<|endoftext|>\ns2\n<|endoftext|>\ns3\n<|endoftext|>\n"
    (tmp_path / "TinyStories-train.txt").write_text(stories)
    assert data.load_split("tinystories", "train", tmp_path, max_rows=2).lines == ["s1 l1", "s1 l2", "s2"]
    assert len(data.load_split("tinystories", "train", tmp_path, max_rows=9).lines) == 4


def test_max_rows_needs_document_separators(data_dir: Path) -> None:
    with pytest.raises(UserError, match="no '<\\|endoftext\\|>' lines"):
        data.load_split("tinystories", "validation", data_dir, max_rows=10)
