"""Calibration: tiny sizes so each measurement takes well under a second."""

from __future__ import annotations

import json

import pytest
import torch

from gam_bench.measure import calibrate

TINY = {"sizes": (32, 64), "copy_mib": 0.25, "min_run_time": 0.01}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path))
    return tmp_path / "calibration.json"


@pytest.fixture
def spy(monkeypatch):
    """Counts real calibrations (the measurement itself still runs, at tiny sizes)."""
    calls = []
    real = calibrate.calibrate

    def counting(device, threads, **kwargs):
        calls.append((device, threads))
        return real(device, threads, **kwargs)

    monkeypatch.setattr(calibrate, "calibrate", counting)
    return calls


def test_matmul_peak_and_bandwidth_are_plausible():
    mm = calibrate.matmul_peak("cpu", "float32", 1, sizes=(32, 64), min_run_time=0.01)
    assert mm["supported"] and set(mm["by_size"]) == {"32", "64"}
    assert mm["peak_flops_per_s"] == max(mm["by_size"].values()) and mm["size"] in (32, 64)
    assert 1e6 < mm["peak_flops_per_s"] < 1e13  # a CPU core: MFLOP/s to TFLOP/s
    assert 1e6 < calibrate.copy_bandwidth("cpu", 1, copy_mib=0.25, min_run_time=0.01) < 1e13


def test_a_slow_size_stops_the_sweep(monkeypatch):
    monkeypatch.setattr(calibrate, "_best_s", lambda timer, min_run_time: 1.0)
    mm = calibrate.matmul_peak("cpu", "float32", 1, sizes=(32, 64, 128), max_call_s=5.0)
    assert list(mm["by_size"]) == ["32"]  # 1 s x 8 predicted for 64 > 5 s


def test_unsupported_dtype_is_recorded_with_the_reason(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("\"addmm\" not implemented for 'Half'")

    monkeypatch.setattr(torch, "ones", refuse)
    mm = calibrate.matmul_peak("cpu", "float16", 1, sizes=(32,))
    assert mm == {"supported": False, "reason": "\"addmm\" not implemented for 'Half'", "peak_flops_per_s": None}


def test_first_use_measures_then_the_cache_answers(cache, spy):
    first = calibrate.peak_for("cpu", "float32", 1, **TINY)
    assert spy == [("cpu", 1)] and first["measured_now"] and first["peak_flops_per_s"] > 0
    second = calibrate.peak_for("cpu", "float32", 1, **TINY)
    assert spy == [("cpu", 1)] and not second["measured_now"]
    assert second["peak_flops_per_s"] == first["peak_flops_per_s"]
    assert calibrate.peak_for("cpu", "bfloat16", 1, **TINY)["measured_now"] is False  # all dtypes in one go
    assert json.loads(cache.read_text())["version"] == calibrate.CACHE_VERSION
    calibrate.calibration("cpu", 1, force=True, **TINY)
    assert len(spy) == 2


def test_cache_key_holds_device_name_torch_version_and_threads(cache, spy, monkeypatch):
    calibrate.peak_for("cpu", "float32", 1, **TINY)
    calibrate.peak_for("cpu", "float32", 2, **TINY)  # another thread count: measured again
    assert spy == [("cpu", 1), ("cpu", 2)]
    keys = sorted(json.loads(cache.read_text())["entries"])
    assert all(f"torch {torch.__version__}" in k for k in keys)
    assert [k.endswith(f"| {n} threads") for k, n in zip(keys, (1, 2))] == [True, True]
    monkeypatch.setattr(calibrate.torch, "__version__", "9.9.9")
    calibrate.peak_for("cpu", "float32", 1, **TINY)  # another torch: measured again
    monkeypatch.setattr(calibrate, "device_name", lambda device: "Other CPU")
    calibrate.peak_for("cpu", "float32", 1, **TINY)  # another device: measured again
    assert len(spy) == 4
    assert any(k.startswith("Other CPU | torch 9.9.9 | 1 threads") for k in json.loads(cache.read_text())["entries"])


@pytest.mark.parametrize("content", ["{not json", '{"version": 0, "entries": {}}', '["a list"]'])
def test_corrupt_cache_is_measured_again_with_a_warning(cache, spy, content):
    cache.write_text(content)
    with pytest.warns(RuntimeWarning, match="calibration cache .* is unreadable"):
        result = calibrate.peak_for("cpu", "float32", 1, **TINY)
    assert spy == [("cpu", 1)] and result["measured_now"]
    assert json.loads(cache.read_text())["entries"]  # rewritten whole


def test_write_is_atomic_and_leaves_no_temporary_file(cache, monkeypatch):
    calibrate.save_cache({"k": {"x": 1}})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(calibrate.json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        calibrate.save_cache({"k": {"x": 2}})
    assert calibrate.load_cache() == {"k": {"x": 1}}
    assert [p.name for p in cache.parent.iterdir()] == ["calibration.json"]


def test_mfu():
    assert calibrate.mfu(25e9, 100e9) == 0.25
    assert calibrate.mfu(None, 100e9) is None and calibrate.mfu(1e9, None) is None


def test_an_unwritable_cache_warns_and_still_returns_the_figures(cache, spy, monkeypatch):
    def refuse(entries, path=None):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(calibrate, "save_cache", refuse)
    with pytest.warns(RuntimeWarning, match="cannot be written"):
        peak = calibrate.peak_for("cpu", "float32", 1, **TINY)
    assert peak["measured_now"] is True and peak["peak_flops_per_s"] > 0
