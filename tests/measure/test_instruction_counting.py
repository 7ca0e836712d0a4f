"""Instruction counting plumbing, without valgrind: the shim build, profile parsing, the launcher,
and `count_steps` driven by a fake callgrind that writes profiles as the real one does."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from gam_bench.measure import callgrind, valgrind
from gam_bench.measure.callgrind import CountingUnavailable, read_totals
from gam_bench.measure.instructions import count_steps

PROFILE = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
cmd:  python
part: 2

desc: Trigger: Client Request: step 0

positions: line
events: Ir
summary: {total}

fn=(1) main
0 {total}

totals: {total}
"""


class FakeCallgrind:
    """A shim stand-in: `dump` writes the next numbered profile, holding the step's 'instructions'
    (what `count` returns at that moment)."""

    def __init__(self, folder: Path, count, running: bool = True) -> None:
        self.folder, self.count, self._running = folder, count, running
        self.calls: list[str] = []
        self.dumps = 0

    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def zero(self) -> None:
        self.calls.append("zero")

    def toggle(self) -> None:
        self.calls.append("toggle")

    def dump(self, name: str) -> None:
        self.calls.append("dump")
        self.dumps += 1
        path = self.folder / f"callgrind.out.{os.getpid()}.{self.dumps}"
        path.write_text(PROFILE.format(total=self.count()))


def test_read_totals_takes_the_events_and_totals_lines(tmp_path):
    path = tmp_path / "callgrind.out.1.1"
    path.write_text(PROFILE.format(total=36_094_984))
    assert read_totals(path) == {"Ir": 36_094_984}
    path.write_text("events: Ir Dr\nsummary: 10 4\n")  # an older writer: summary only
    assert read_totals(path) == {"Ir": 10, "Dr": 4}
    path.write_text("not a profile\n")
    with pytest.raises(ValueError, match="not a callgrind profile"):
        read_totals(path)


def test_count_steps_counts_each_step_between_toggles_and_removes_its_profiles(tmp_path):
    counts = iter([1000, 1010, 990])
    shim = FakeCallgrind(tmp_path, lambda: next(counts))
    stepped = []
    result = count_steps(lambda: stepped.append(shim.calls[-1]), 3, tmp_path, shim=shim)
    assert result.samples == [1000, 1010, 990] and result.median == 1000
    assert result.spread == pytest.approx(0.02)
    assert stepped == ["toggle"] * 3  # every step ran with collection just switched on
    assert shim.calls == ["start"] + ["zero", "toggle", "toggle", "dump"] * 3 + ["stop"]
    assert list(tmp_path.iterdir()) == []


def test_count_steps_switches_instrumentation_off_even_when_a_step_fails(tmp_path):
    shim = FakeCallgrind(tmp_path, lambda: 1)

    def step() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        count_steps(step, 2, tmp_path, shim=shim)
    assert shim.calls == ["start", "zero", "toggle", "stop"]


def test_count_steps_ignores_profiles_written_before_it(tmp_path):
    (tmp_path / f"callgrind.out.{os.getpid()}.1").write_text(PROFILE.format(total=5))
    shim = FakeCallgrind(tmp_path, lambda: 7)
    shim.dumps = 1
    assert count_steps(lambda: None, 2, tmp_path, shim=shim).samples == [7, 7]


def test_count_steps_outside_valgrind_is_a_reason_not_a_zero(tmp_path):
    with pytest.raises(CountingUnavailable, match="not running under valgrind"):
        count_steps(lambda: None, 3, tmp_path, shim=FakeCallgrind(tmp_path, lambda: 1, running=False))


def test_a_missing_compiler_is_a_recorded_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-anywhere")
    with pytest.raises(CountingUnavailable, match="no C compiler"):
        callgrind.build_shim()


def test_a_compiler_without_callgrind_h_is_a_recorded_reason(tmp_path, monkeypatch):
    fake_cc = tmp_path / "cc"
    fake_cc.write_text("#!/bin/sh\necho 'fatal error: valgrind/callgrind.h: No such file' >&2\nexit 1\n")
    fake_cc.chmod(fake_cc.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(fake_cc))
    with pytest.raises(CountingUnavailable, match="callgrind.h"):
        callgrind.build_shim()
    assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-built left behind


@pytest.mark.skipif(callgrind.compiler() is None, reason="no C compiler here")
def test_the_shim_builds_into_the_cache_and_is_a_no_op_outside_valgrind(tmp_path, monkeypatch):
    monkeypatch.setenv("GAM_BENCH_CACHE", str(tmp_path))
    try:
        shim = callgrind.Callgrind.load()
    except CountingUnavailable as exc:  # a compiler but no valgrind headers
        pytest.skip(str(exc))
    assert callgrind.shim_path().is_relative_to(tmp_path)
    assert not shim.running()
    shim.start(), shim.zero(), shim.toggle(), shim.toggle(), shim.dump("x"), shim.stop()  # no-ops natively


def test_parse_version():
    assert valgrind.parse_version("valgrind-3.19.0\n") == (3, 19, 0)
    assert valgrind.parse_version("valgrind-3.22") == (3, 22)
    assert valgrind.parse_version("what") is None


def fake_valgrind(folder: Path, version: str) -> str:
    path = folder / "valgrind"
    path.write_text(f"#!/bin/sh\necho '{version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_find_says_why_valgrind_cannot_count(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "not installed" in valgrind.find().reason
    old = valgrind.find(fake_valgrind(tmp_path, "valgrind-3.10.1"))
    assert not old.usable and "3.10.1 is too old (need 3.15 or newer)" in old.reason
    good = valgrind.find(fake_valgrind(tmp_path, "valgrind-3.19.0"))
    assert good.usable and good.label == "callgrind 3.19.0"


def test_the_launcher_runs_python_under_callgrind_with_counting_off_and_a_repeatable_environment(tmp_path):
    found = valgrind.Valgrind("/usr/bin/valgrind", (3, 19, 0))
    path = valgrind.write_launcher(tmp_path / "c", found, python="/bin/echo")
    text = path.read_text()
    for part in ("--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no", "OMP_NUM_THREADS=1"):
        assert part in text
    assert "PYTHONHASHSEED=0" in text and f"GAM_BENCH_COUNTING={tmp_path / 'c'}" in text
    assert os.access(path, os.X_OK)
    with pytest.raises(ValueError, match="cannot count"):
        valgrind.write_launcher(tmp_path, valgrind.Valgrind(None, None, "missing"))


def test_the_launcher_picks_kernels_valgrind_runs_fast_and_says_which():
    """x86-64: no AVX-512 (valgrind 3.19 dies on it) and no FMA (emulated lane by lane) in the
    fused scan's build, MKL's and oneDNN's kernels; elsewhere the native kernels."""
    env = valgrind.kernel_env("x86_64")
    assert env[valgrind.SCAN_TARGET_ENV] == "-march=x86-64-v3 -mno-fma"
    assert env["MKL_ENABLE_INSTRUCTIONS"] == "SSE4_2" and env["ONEDNN_MAX_CPU_ISA"] == "AVX"
    assert valgrind.kernel_env("aarch64") == {}
    found = valgrind.Valgrind("/usr/bin/valgrind", (3, 19, 0))
    script = valgrind.launcher_script(found, Path("/tmp/c"), python="/bin/echo")
    assert ("GAM_BENCH_CPU_SCAN_TARGET=" in script) == (valgrind.kernel_env() != {})


def test_the_launcher_passes_its_arguments_on(tmp_path):
    """With valgrind replaced by a script that drops the options, the interpreter gets the arguments."""
    runner = tmp_path / "valgrind"
    runner.write_text('#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    runner.chmod(runner.stat().st_mode | stat.S_IXUSR)
    found = valgrind.Valgrind(str(runner), (3, 19, 0))
    path = valgrind.write_launcher(tmp_path / "c", found, python="/bin/echo")
    out = subprocess.run([str(path), "-c", "x y"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "-c x y"
