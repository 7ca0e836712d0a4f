"""`gam-bench calibrate` prints the table, uses the cache the second time, and re-measures on --force."""

from __future__ import annotations

import json

from gam_bench.cli.main import main

ARGS = ["calibrate", "--device", "cpu", "--threads", "1", "--sizes", "32", "64", "--copy-mib", "0.25"]


def test_calibrate_prints_a_table_and_caches(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert "measured now" in out and "| 1 threads" in out
    for row in ("matmul float32", "matmul bfloat16", "matmul float16", "copy bandwidth", "GFLOP/s", "GB/s"):
        assert row in out
    assert str(tmp_path / "calibration.json") in out.replace("\n", "")
    entry = next(iter(json.loads((tmp_path / "calibration.json").read_text())["entries"].values()))
    assert set(entry["matmul"]["float32"]["by_size"]) == {"32", "64"}

    assert main(ARGS) == 0
    assert "cached, measured" in capsys.readouterr().out
    assert main([*ARGS, "--force"]) == 0
    assert "measured now" in capsys.readouterr().out


def test_bad_threads_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path))
    assert main(["calibrate", "--device", "cpu", "--threads", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gam-bench: error: calibrate: --threads") and err.count("\n") == 1
