"""This machine's roofline: dense matmul peak FLOP/s per dtype and memory bandwidth, measured here.

- Matmul peak: square `a @ b` at several sizes (ascending; the next size is skipped when this
  size's best call time, times 8, exceeds `max_call_s`), each timed with
  `torch.utils.benchmark.Timer.blocked_autorange` at the given thread count; the best block
  (the minimum of `Measurement.times`) of the best size is the peak: 2 n^3 FLOPs per call.
  A dtype the device cannot multiply is recorded as unsupported with the reason.
- Bandwidth: `dst.copy_(src)` of a large float32 buffer; bytes read + written (2 x size) per
  second, best block.

Results are cached in `$GAM_BENCH_CACHE/calibration.json` (default ~/.cache/gam-bench), one
entry per (device name, torch version, thread count); the file is replaced atomically. A
cache that cannot be read is measured again with a warning. `peak_for` calibrates on first
use; `mfu = flops_per_s / peak_flops_per_s`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.benchmark import Timer

from gam_bench.measure.environment import device_name

CACHE_ENV = "GAM_BENCH_CACHE"
CACHE_FILE = "calibration.json"
CACHE_VERSION = 1
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SIZES = (512, 1024, 2048, 4096)
COPY_MIB = 256
MIN_RUN_TIME_S = 0.3
MAX_CALL_S = 1.0


def cache_path() -> Path:
    """$GAM_BENCH_CACHE/calibration.json, else ~/.cache/gam-bench/calibration.json."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gam-bench").expanduser()
    return root / CACHE_FILE


def cache_key(device: str, threads: int) -> str:
    """What a calibration is valid for: the device's name, the torch version and the thread count."""
    return f"{device_name(device)} | torch {torch.__version__} | {threads} threads"


def mfu(flops_per_s: float | None, peak_flops_per_s: float | None) -> float | None:
    """Fraction of the measured matmul peak; None when either side is unknown."""
    if flops_per_s is None or not peak_flops_per_s:
        return None
    return flops_per_s / peak_flops_per_s


def roofline_ms(
    flops: float | None, min_bytes: float | None, peak_flops_per_s: float | None, bandwidth: float | None
) -> float | None:
    """The least time a step could take here: max(flops / peak, bytes / bandwidth), in ms;
    None when any of the four is unknown (no FLOP count, no calibration)."""
    if None in (flops, min_bytes) or not peak_flops_per_s or not bandwidth:
        return None
    return 1e3 * max(flops / peak_flops_per_s, min_bytes / bandwidth)


def _best_s(timer: Timer, min_run_time: float) -> float:
    return min(timer.blocked_autorange(min_run_time=min_run_time).times)


def matmul_peak(
    device: str,
    dtype: str,
    threads: int,
    sizes: tuple[int, ...] = SIZES,
    min_run_time: float = MIN_RUN_TIME_S,
    max_call_s: float = MAX_CALL_S,
) -> dict[str, Any]:
    """{"supported", "peak_flops_per_s", "size", "by_size"} for square matmuls of `dtype` on `device`."""
    dev, torch_dtype = torch.device(device), DTYPES[dtype]
    try:
        torch.ones(8, 8, device=dev, dtype=torch_dtype) @ torch.ones(8, 8, device=dev, dtype=torch_dtype)
    except (RuntimeError, NotImplementedError) as exc:
        return {"supported": False, "reason": str(exc).splitlines()[0][:200], "peak_flops_per_s": None}
    by_size: dict[str, float] = {}
    predicted_s = 0.0
    for n in sizes:
        if by_size and predicted_s > max_call_s:
            break
        a = torch.randn(n, n, device=dev).to(torch_dtype)  # (n, n)
        b = torch.randn(n, n, device=dev).to(torch_dtype)  # (n, n)
        timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=threads)
        best_s = _best_s(timer, min_run_time)
        by_size[str(n)] = 2 * n**3 / best_s
        predicted_s = best_s * 8  # the next size is usually twice as large: 8x the FLOPs
    best = max(by_size, key=by_size.get)
    return {"supported": True, "peak_flops_per_s": by_size[best], "size": int(best), "by_size": by_size}


def copy_bandwidth(
    device: str, threads: int, copy_mib: float = COPY_MIB, min_run_time: float = MIN_RUN_TIME_S
) -> float:
    """Bytes read + written per second by `dst.copy_(src)` of a `copy_mib` MiB float32 buffer (best block)."""
    n = int(copy_mib * 2**20) // 4
    src = torch.rand(n, device=torch.device(device))  # (n,)
    dst = torch.empty_like(src)  # (n,)
    timer = Timer("dst.copy_(src)", globals={"src": src, "dst": dst}, num_threads=threads)
    return 2 * src.nbytes / _best_s(timer, min_run_time)


def calibrate(
    device: str,
    threads: int,
    dtypes: tuple[str, ...] = tuple(DTYPES),
    sizes: tuple[int, ...] = SIZES,
    copy_mib: float = COPY_MIB,
    min_run_time: float = MIN_RUN_TIME_S,
) -> dict[str, Any]:
    """Measure every dtype's matmul peak and the copy bandwidth now; returns one cache entry."""
    return {
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": threads,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "matmul": {d: matmul_peak(device, d, threads, sizes, min_run_time) for d in dtypes},
        "bandwidth_bytes_per_s": copy_bandwidth(device, threads, copy_mib, min_run_time),
        "copy_mib": copy_mib,
    }


def load_cache(path: Path | None = None) -> dict[str, Any]:
    """The cached entries by key; an unreadable or malformed file warns and counts as empty."""
    path = path or cache_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data["entries"], dict):
            raise ValueError(f"not a version-{CACHE_VERSION} calibration cache")
        return data["entries"]
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(f"calibration cache {path} is unreadable ({exc}); measuring again", RuntimeWarning, stacklevel=2)
        return {}


def save_cache(entries: dict[str, Any], path: Path | None = None) -> None:
    """Write all entries atomically (a temporary file in the same folder, then os.replace)."""
    path = path or cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".calibration-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def calibration(device: str, threads: int, *, force: bool = False, **measure: Any) -> tuple[dict[str, Any], bool]:
    """(entry, measured_now) for this device and thread count: from the cache, or measured and cached.

    measure: keyword arguments for `calibrate` (dtypes, sizes, copy_mib, min_run_time).
    A cached entry that lacks a requested dtype is measured again.
    """
    key = cache_key(device, threads)
    entries = load_cache()
    entry = entries.get(key)
    wanted = measure.get("dtypes", tuple(DTYPES))
    if entry is not None and not force and all(d in entry.get("matmul", {}) for d in wanted):
        return entry, False
    entry = calibrate(device, threads, **measure)
    entries = load_cache()  # another process may have written meanwhile: merge, don't clobber
    entries[key] = entry
    try:
        save_cache(entries)
    except OSError as exc:  # a read-only home must not stop a sweep: use the figures, measure next time
        warnings.warn(f"calibration cache {cache_path()} cannot be written ({exc}); not cached", RuntimeWarning, 2)
    return entry, True


def peak_for(device: str, dtype: str, threads: int, **measure: Any) -> dict[str, Any]:
    """The peak for one dtype: {"peak_flops_per_s" (None if unsupported), "bandwidth_bytes_per_s", ...}.

    Calibrates the device on first use (all dtypes and the bandwidth, then cached).
    """
    entry, measured = calibration(device, threads, **measure)
    mm = entry["matmul"].get(dtype) or {"supported": False, "reason": f"{dtype} not calibrated"}
    return {
        "key": cache_key(device, threads),
        "device_name": entry["device_name"],
        "torch": entry["torch"],
        "threads": entry["threads"],
        "dtype": dtype,
        "peak_flops_per_s": mm.get("peak_flops_per_s"),
        "supported": mm.get("supported", False),
        "reason": mm.get("reason", ""),
        "bandwidth_bytes_per_s": entry["bandwidth_bytes_per_s"],
        "measured_now": measured,
        "measured_at": entry["measured_at"],
    }
