"""The results store: schema, atomic append-only parts, loader, latest attempt, migration."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gam_bench import store
from gam_bench.errors import UserError

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def row(cell="c1", run="r1", status="ok", minutes=0, **extra):
    return {
        "suite": "s",
        "cell_id": cell,
        "run_id": run,
        "model": "gam",
        "status": status,
        "seq_len": 128,
        "time_samples_ms": [1.0, 2.0, 3.0],
        "started_at": T0 + dt.timedelta(minutes=minutes),
        **extra,
    }


def test_round_trip_keeps_types_and_fills_missing_columns(tmp_path):
    path = store.append([row(time_ms=2.0, peak_mem_bytes=10), row("c2", "r2", "oom", error="OOM")], tmp_path)
    assert path.parent == tmp_path and path.name.startswith("part-") and path.suffix == ".parquet"
    df = store.load(tmp_path)
    assert list(df.columns) == list(store.columns())
    assert len(df) == 2
    first = df.iloc[0]
    assert first["schema_version"] == store.SCHEMA_VERSION
    assert list(first["time_samples_ms"]) == [1.0, 2.0, 3.0]
    assert first["time_ms"] == 2.0 and first["peak_mem_bytes"] == 10
    assert df.iloc[1]["status"] == "oom" and df.iloc[1]["error"] == "OOM"
    assert df["flops"].isna().all()
    assert str(df["started_at"].dt.tz) == "UTC"


def test_load_accepts_a_single_file_and_an_empty_folder(tmp_path):
    path = store.append([row()], tmp_path / "a")
    assert len(store.load(path)) == 1
    (tmp_path / "empty").mkdir()
    empty = store.load(tmp_path / "empty")
    assert empty.empty and list(empty.columns) == list(store.columns())
    with pytest.raises(UserError, match="no such results file or folder"):
        store.load(tmp_path / "missing")


def test_append_is_append_only(tmp_path):
    first = store.append([row()], tmp_path)
    before = first.read_bytes()
    store.append([row("c2", "r2")], tmp_path)
    assert first.read_bytes() == before
    assert len(store.part_files(tmp_path)) == 2 and len(store.load(tmp_path)) == 2
    assert store.append([], tmp_path) is None


def test_rejects_unknown_columns_and_statuses(tmp_path):
    with pytest.raises(ValueError, match="outside the schema"):
        store.append([row(speed=1.0)], tmp_path)
    with pytest.raises(ValueError, match="status 'great'"):
        store.append([row(status="great")], tmp_path)
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.append([row()], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_writer_stopped_between_write_and_rename_is_invisible(tmp_path, monkeypatch):
    """The writer is parked after the part's bytes are on disk and before the rename: a loader
    then sees only the earlier part, and the stopped write leaves nothing behind."""
    store.append([row("old")], tmp_path)
    seen: dict = {}

    def parked_rename(src, dst):
        seen["tmp_size"] = os.path.getsize(src)  # the new part is fully written ...
        seen["cells"] = sorted(store.load(tmp_path)["cell_id"])  # ... and not visible under any name
        seen["final_exists"] = os.path.exists(dst)
        raise KeyboardInterrupt  # the writer stops here

    monkeypatch.setattr(os, "replace", parked_rename)
    with pytest.raises(KeyboardInterrupt):
        store.append([row("new")], tmp_path)
    monkeypatch.undo()
    assert seen == {"tmp_size": seen["tmp_size"], "cells": ["old"], "final_exists": False}
    assert seen["tmp_size"] > 0
    assert [p.name for p in tmp_path.iterdir()] == [p.name for p in store.part_files(tmp_path)]
    assert sorted(store.load(tmp_path)["cell_id"]) == ["old"]


def test_an_append_fsyncs_the_part_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    store.append([row()], tmp_path)
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, the folder entry


def test_latest_keeps_the_newest_attempt_and_done_cell_ids(tmp_path):
    store.append([row("a", "r1", "oom", 0), row("b", "r2", "ok", 0), row("c", "r3", "ok", 0)], tmp_path)
    store.append([row("a", "r4", "ok", 5), row("b", "r5", "timeout", 5)], tmp_path)
    latest = store.latest(store.load(tmp_path)).set_index("cell_id")
    assert latest.loc["a", "run_id"] == "r4" and latest.loc["b", "run_id"] == "r5"
    assert store.done_cell_ids(tmp_path) == {"a", "c"}
    assert store.done_cell_ids(tmp_path / "never-written") == set()


def test_latest_keeps_every_row_of_a_multi_row_attempt(tmp_path):
    rows = [row("p", "r1", step=s, minutes=0) for s in (1, 2)] + [row("p", "r2", step=s, minutes=9) for s in (1, 2, 3)]
    store.append(rows, tmp_path)
    latest = store.latest(store.load(tmp_path))
    assert sorted(latest["step"]) == [1, 2, 3] and set(latest["run_id"]) == {"r2"}


def test_migrate_adds_missing_columns_and_refuses_newer_schemas(tmp_path):
    old = pa.table({"schema_version": [1], "cell_id": ["x"], "status": ["ok"], "time_ms": [1.5]})
    pq.write_table(old, tmp_path / "part-old.parquet")
    df = store.load(tmp_path)
    assert list(df.columns) == list(store.columns()) and df.iloc[0]["time_ms"] == 1.5 and df["model"].isna().all()
    newer = pa.table({"schema_version": [store.SCHEMA_VERSION + 1], "cell_id": ["y"], "status": ["ok"]})
    pq.write_table(newer, tmp_path / "part-new.parquet")
    with pytest.raises(UserError, match="newer than this gam-bench understands"):
        store.load(tmp_path)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (lambda path: path.write_bytes(b"not parquet"), "not a readable Parquet file"),
        (lambda path: pq.write_table(pa.table({"x": [1, 2]}), path), "not a gam-bench results part (no cell_id"),
        (
            lambda path: pq.write_table(pa.table({"cell_id": ["z"], "status": ["ok"], "seq_len": ["long"]}), path),
            "not a gam-bench results part (",
        ),
    ],
    ids=["corrupt", "foreign", "wrong-type"],
)
def test_a_bad_part_is_named_in_one_warning_and_the_rest_loads(tmp_path, capsys, bad, reason):
    store.append([row("good")], tmp_path)
    bad(tmp_path / "part-bad.parquet")
    df = store.load(tmp_path)
    assert list(df["cell_id"]) == ["good"]
    err = capsys.readouterr().err
    assert err.startswith(f"warning: skipped {tmp_path / 'part-bad.parquet'}: {reason}")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match=r"part-bad.parquet: .*\(--strict\)$") as info:
        store.load(tmp_path, strict=True)
    assert "\n" not in str(info.value)


def test_suite_meta_round_trips_atomically(tmp_path, capsys):
    assert store.read_suite_meta(tmp_path) is None
    path = store.write_suite_meta(tmp_path, suite="ci", source="suites/ci.yaml", regression={"alpha": 0.05})
    assert store.read_suite_meta(tmp_path) == {"suite": "ci", "source": "suites/ci.yaml", "regression": {"alpha": 0.05}}
    assert store.suite_meta_files(tmp_path) == [path] and store.part_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.SUITE_META]  # no temporary left
    path.write_text("{not json")
    assert store.read_suite_meta(tmp_path) is None
    assert capsys.readouterr().err.startswith(f"warning: ignored {path}: unreadable suite record")
    with pytest.raises(UserError, match="unreadable suite record"):
        store.read_suite_meta(tmp_path, strict=True)


def test_memory_columns_are_nullable_int64_in_the_schema():
    assert store.schema().field("peak_tensor_bytes").type == pa.int64()
    assert store.schema().field("peak_rss_bytes").type == pa.int64()
    assert store.schema().field("peak_tensor_bytes").nullable


def test_store_does_not_import_torch():
    code = "import sys, gam_bench.store; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
