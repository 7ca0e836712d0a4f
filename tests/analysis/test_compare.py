"""The comparison statistics on synthetic samples (fast, deterministic).

Real runs through the sweep engine (A/A, slowed model, memory, new failure) are in
test_compare_runs.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_rows import frame, row, samples  # noqa: E402

from gam_bench import store  # noqa: E402
from gam_bench.analysis.compare import compare_frames, compare_paths  # noqa: E402
from gam_bench.analysis.compare_render import render_markdown, render_terminal, summary_line  # noqa: E402
from gam_bench.analysis.compare_settings import RegressionSettings  # noqa: E402
from gam_bench.analysis.judge import (  # noqa: E402
    EffectSizeCheck,
    RankTestCheck,
    is_new_failure,
    judge_memory,
    judge_time,
)
from gam_bench.analysis.matching import config_key  # noqa: E402
from gam_bench.analysis.runs import confirm  # noqa: E402
from gam_bench.analysis.verdicts import (  # noqa: E402
    FIXED,
    IMPROVEMENT,
    NEW_FAILURE,
    NOT_CONFIRMED,
    ONLY_BASELINE,
    ONLY_CANDIDATE,
    REGRESSION,
    STILL_FAILING,
    UNCHANGED,
)
from gam_bench.baselines import recorded_runs  # noqa: E402
from gam_bench.errors import UserError  # noqa: E402

SETTINGS = RegressionSettings()
MIB = 2**20


def by_seq_len(comparison):
    return {int(cell.label.split("T=")[1].split()[0]): cell for cell in comparison.cells}


# ------------------------------------------------------------------ check objects


def test_effect_size_check_is_symmetric_around_the_threshold():
    check = EffectSizeCheck(0.10).direction
    assert check(100, 110) == REGRESSION
    assert check(100, 109.99) == UNCHANGED
    assert check(100, 90.01) == UNCHANGED
    assert check(100, 90) == IMPROVEMENT


def test_effect_size_check_needs_the_absolute_floor_too():
    check = EffectSizeCheck(0.05, floor=2.0).direction
    assert check(10, 11.9) == UNCHANGED  # +19% but only 1.9 units
    assert check(10, 12) == REGRESSION
    assert check(100, 104) == UNCHANGED  # 4 units but only +4%
    assert check(10, 8) == IMPROVEMENT


def test_rank_test_knows_when_the_sample_sizes_cannot_reach_alpha():
    check = RankTestCheck(0.01)
    assert not check.usable(4, 4)  # smallest p = 2 / C(8, 4) = 0.029
    assert check.usable(5, 5)  # smallest p = 2 / C(10, 5) = 0.0079
    assert not check.usable(1, 100)
    assert check.p_value([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) < 0.01
    assert check.p_value([1, 3, 5, 7, 9], [2, 4, 6, 8, 10]) > 0.5


def test_new_failure_check():
    check = is_new_failure
    assert all(check("ok", status) for status in ("oom", "error", "timeout", "skipped"))
    assert not check("ok", "ok")
    assert not check("oom", "oom")
    assert not check("error", "ok")


# ------------------------------------------------------------------ one metric


def test_large_significant_slowdown_is_a_regression():
    result = judge_time(np.array(samples(10.0)), np.array(samples(13.0, seed=1)), SETTINGS)
    assert result.verdict == REGRESSION
    assert result.p_value < SETTINGS.alpha
    assert result.change == pytest.approx(0.3, abs=0.02)
    low, high = result.ci
    assert low < result.change < high


def test_significant_but_small_shift_is_unchanged():
    """Rank test alone would flag a 3% shift with tight noise; the minimum effect size does not."""
    result = judge_time(np.array(samples(10.0, spread=0.002)), np.array(samples(10.3, spread=0.002, seed=1)), SETTINGS)
    assert result.p_value < SETTINGS.alpha
    assert result.verdict == UNCHANGED


def test_large_but_noisy_shift_is_unchanged():
    """A 15% median shift inside 40% noise is not significant: not flagged."""
    base = np.array([10.0, 4.0, 16.0, 9.0, 12.0, 6.0])
    cand = np.array([11.5, 5.0, 15.0, 7.0, 13.0, 12.0])
    result = judge_time(base, cand, SETTINGS)
    assert result.change >= SETTINGS.time_threshold
    assert result.p_value >= SETTINGS.alpha
    assert result.verdict == UNCHANGED


def test_speedup_is_an_improvement():
    result = judge_time(np.array(samples(10.0)), np.array(samples(8.0, seed=1)), SETTINGS)
    assert result.verdict == IMPROVEMENT


def test_too_few_samples_fall_back_to_the_effect_size():
    result = judge_time(np.array([10.0, 10.1, 9.9]), np.array([12.0, 12.1, 11.9]), SETTINGS)
    assert result.verdict == REGRESSION
    assert result.p_value is None
    assert "effect size only" in result.basis


STEP_BASE = [10.0 + 0.5 * i for i in range(10)]


def _shifted(steps: int) -> np.ndarray:
    """STEP_BASE shifted up by `steps` half-units: 4 steps is +16% at p=0.017, 5 steps +20% at p=0.005."""
    return np.array([10.0 + 0.5 * i for i in range(steps, steps + 10)])


def test_the_rank_test_uses_the_suites_alpha_not_a_fixed_level():
    """p = 0.017 (+16%): a regression at alpha 0.05, not at 0.01; p = 0.005 (+20%): not at alpha 0.001."""
    base = np.array(STEP_BASE)
    loose, strict = RegressionSettings(alpha=0.05), RegressionSettings(alpha=0.001)
    assert 0.01 < judge_time(base, _shifted(4), loose).p_value < 0.05
    assert judge_time(base, _shifted(4), loose).verdict == REGRESSION
    assert judge_time(base, _shifted(4), SETTINGS).verdict == UNCHANGED
    assert 0.001 < judge_time(base, _shifted(5), strict).p_value < 0.01
    assert judge_time(base, _shifted(5), strict).verdict == UNCHANGED
    assert judge_time(base, _shifted(5), SETTINGS).verdict == REGRESSION


def test_whether_the_rank_test_can_be_used_depends_on_alpha():
    """4 against 4 repeats reach p = 0.029 at best: usable at alpha 0.05, not at the default 0.01."""
    base, cand = np.array([10.0, 10.1, 10.2, 10.3]), np.array([11.5, 11.6, 11.7, 11.8])
    at_05 = judge_time(base, cand, RegressionSettings(alpha=0.05))
    assert at_05.basis == "Mann-Whitney U, n=4/4" and at_05.p_value == pytest.approx(2 / 70)
    assert judge_time(base, cand, SETTINGS).basis.startswith("effect size only")


def test_thresholds_are_configurable_per_metric():
    loose = RegressionSettings(time_threshold=0.5, mem_threshold=0.5)
    assert judge_time(np.array(samples(10.0)), np.array(samples(13.0, seed=1)), loose).verdict == UNCHANGED
    assert judge_memory(100 * MIB, 130 * MIB, loose).verdict == UNCHANGED
    assert judge_memory(100 * MIB, 130 * MIB, SETTINGS).verdict == REGRESSION


def test_memory_uses_the_effect_size_alone():
    assert judge_memory(100 * MIB, 105 * MIB, SETTINGS).verdict == REGRESSION
    assert judge_memory(100 * MIB, 104.9 * MIB, SETTINGS).verdict == UNCHANGED
    assert judge_memory(100 * MIB, 90 * MIB, SETTINGS).verdict == IMPROVEMENT
    assert judge_memory(100 * MIB, 105 * MIB, SETTINGS).basis.startswith("effect size only")
    assert judge_memory(None, 1050, SETTINGS) is None
    assert judge_memory(float("nan"), 1050, SETTINGS) is None


def test_small_memory_moves_stay_under_the_floor():
    """A +30% change of a 1 MiB peak is RSS noise (page and allocator granularity), not a regression."""
    assert judge_memory(1 * MIB, 1.3 * MIB, SETTINGS).verdict == UNCHANGED
    assert judge_memory(1 * MIB, 1.3 * MIB, SETTINGS.with_overrides(mem_floor_mib=0)).verdict == REGRESSION


def test_settings_validate_and_override():
    assert SETTINGS.with_overrides(time_threshold=0.2, mem_threshold=None).time_threshold == 0.2
    with pytest.raises(Exception, match="time_threshold"):
        SETTINGS.with_overrides(time_threshold=-0.1)
    with pytest.raises(Exception, match="extra"):
        RegressionSettings(time_treshold=0.2)


# ------------------------------------------------------------------ whole comparisons


def test_cells_get_their_verdicts():
    base = frame([row(64), row(128), row(256), row(512), row(1024, status="oom"), row(2048, status="error"), row(4096)])
    cand = frame(
        [
            row(64, samples(10.0, seed=5)),  # unchanged
            row(128, samples(26.0, seed=5)),  # +30% time
            row(256, mem=480 * 2**20),  # +20% memory
            row(512, status="oom", error="CPU out of memory\ntraceback..."),  # new failure
            row(1024),  # fixed
            row(2048, status="error"),  # still failing
            row(8192),  # only in candidate
        ]
    )
    comparison = compare_frames(base, cand)
    cells = by_seq_len(comparison)
    assert cells[64].verdict == UNCHANGED
    assert cells[128].verdict == REGRESSION and cells[128].note.startswith("time +")
    assert cells[256].verdict == REGRESSION and cells[256].note.startswith("memory +")
    assert cells[512].verdict == NEW_FAILURE and "CPU out of memory" in cells[512].note
    assert "traceback" not in cells[512].note
    assert cells[1024].verdict == FIXED
    assert cells[2048].verdict == STILL_FAILING
    assert cells[4096].verdict == ONLY_BASELINE
    assert cells[8192].verdict == ONLY_CANDIDATE
    assert comparison.failed
    assert [c.label.split("T=")[1].split()[0] for c in comparison.cells] == [
        "64",
        "128",
        "256",
        "512",
        "1024",
        "2048",
        "4096",
        "8192",
    ]


def test_improvements_and_one_sided_cells_do_not_fail_the_gate():
    base = frame([row(64), row(128)])
    cand = frame([row(64, samples(5.0)), row(256)])
    comparison = compare_frames(base, cand)
    assert {c.verdict for c in comparison.cells} == {IMPROVEMENT, ONLY_BASELINE, ONLY_CANDIDATE}
    assert not comparison.failed


def test_cells_are_matched_by_config_when_cell_ids_differ():
    """A new measurement setting changes every cell_id; the workload is the same."""
    base = frame([row(64), row(128)])
    cand = frame([row(64, measure={"repeats": 30}), row(128, samples(26.0, seed=3), measure={"repeats": 30})])
    comparison = compare_frames(base, cand)
    assert {c.matched_by for c in comparison.cells} == {"config"}
    assert by_seq_len(comparison)[128].verdict == REGRESSION
    assert by_seq_len(comparison)[64].verdict == UNCHANGED


def test_config_key_ignores_volatile_keys_only():
    a = '{"model": "gam", "seq_len": 64, "measure": {"repeats": 5}, "limits": {"timeout_s": 1}}'
    b = '{"model": "gam", "seq_len": 64, "measure": {"repeats": 9}, "limits": {"timeout_s": 2}}'
    c = '{"model": "gam", "seq_len": 128, "measure": {"repeats": 5}}'
    assert config_key(a) == config_key(b) != config_key(c)
    assert config_key(None) is None and config_key("not json") is None


def test_only_the_newest_attempt_of_a_cell_counts():
    base = frame([row(64)])
    cand = frame([row(64, status="oom", attempt=0), row(64, samples(10.0, seed=2), attempt=1)])
    assert compare_frames(base, cand).cells[0].verdict == UNCHANGED


def test_perplexity_rows_are_not_compared():
    base = frame([row(64), row(128, task="perplexity")])
    cand = frame([row(64), row(128, task="perplexity")])
    assert [c.label for c in compare_frames(base, cand).cells] == [compare_frames(base, cand).cells[0].label]


@pytest.mark.parametrize("column, value, shown", [("device", "cuda", "device='cuda'"), ("threads", 4, "threads=4")])
def test_different_device_or_threads_is_refused_unless_forced(column, value, shown):
    base = frame([row(64)])
    cand = frame([row(64, **{column: value})])
    with pytest.raises(UserError, match="--force") as info:
        compare_frames(base, cand, names=("base/", "cand/"))
    message = str(info.value)
    assert "\n" not in message and "base/: device='cpu', threads=2" in message and "cand/: " in message
    assert shown in message
    forced = compare_frames(base, cand, force=True)
    assert any(shown in note for note in forced.notes)


def test_a_different_cpu_model_is_noted_not_refused():
    comparison = compare_frames(frame([row(64)]), frame([row(64, cpu_model="Other CPU")]))
    assert comparison.notes == ["cpu_model differs: baseline 'Test CPU', candidate 'Other CPU'"]


def test_a_busier_candidate_machine_is_noted():
    comparison = compare_frames(frame([row(64, load_avg_1m=0.2)]), frame([row(64, load_avg_1m=2.5)]))
    assert comparison.notes == [
        "load average differs: baseline 0.2, candidate 2.5 (times from a busy machine are suspect)"
    ]
    assert compare_frames(frame([row(64, load_avg_1m=0.2)]), frame([row(64, load_avg_1m=0.9)])).notes == []


def test_nothing_in_common_or_nothing_to_compare_is_bad_input():
    with pytest.raises(UserError, match="no cells in common"):
        compare_frames(frame([row(64)]), frame([row(128, model="transformer")]))
    with pytest.raises(UserError, match="cand: no results to compare"):
        compare_frames(frame([row(64)]), frame([row(64, task="perplexity")]), names=("base", "cand"))


def test_confirm_fails_only_cells_that_fail_in_every_comparison():
    base = frame([row(64), row(128), row(256), row(512)])
    run1 = compare_frames(base, frame([row(64, samples(26.0 / 2)), row(128, samples(26.0)), row(256), row(512)]))
    run2 = compare_frames(base, frame([row(64), row(128, samples(26.0, seed=4)), row(256, samples(52.0)), row(512)]))
    combined = confirm([run1, run2])
    cells = by_seq_len(combined)
    assert cells[64].verdict == NOT_CONFIRMED and cells[64].note == "failing in 1 of 2 comparisons; last: unchanged"
    assert cells[128].verdict == REGRESSION and cells[128].note.startswith("time +")
    assert cells[128].note.endswith("; in all 2 comparisons")
    assert (
        cells[256].verdict == NOT_CONFIRMED
        and cells[256].note.startswith("failing in 1 of 2")
        and "last: regression (time +" in cells[256].note
    )
    assert cells[512].verdict == UNCHANGED
    assert combined.failed
    assert not confirm([run1, compare_frames(base, frame([row(64), row(128), row(256), row(512)]))]).failed
    assert confirm([run1]) is run1


def test_confirm_keeps_an_improvement_only_if_every_comparison_shows_it():
    base = frame([row(64), row(128)])
    run1 = compare_frames(base, frame([row(64, samples(5.0)), row(128, samples(10.0))]))
    run2 = compare_frames(base, frame([row(64, samples(5.0, seed=2)), row(128, samples(10.0, seed=2))]))
    run3 = compare_frames(base, frame([row(64), row(128, samples(10.0, seed=3))]))
    assert by_seq_len(confirm([run1, run2]))[64].verdict == IMPROVEMENT
    combined = by_seq_len(confirm([run1, run3]))
    assert combined[64].verdict == UNCHANGED and combined[64].note == "improvement in 1 of 2 comparisons only"


def test_a_baseline_with_several_runs_is_compared_run_by_run(tmp_path):
    """The candidate's cell must beat every recorded baseline run to fail the gate."""
    baseline = tmp_path / "baseline"
    store.append([row(64), row(128, samples(10.0))], baseline / "run-1")
    store.append([row(64), row(128, samples(24.0))], baseline / "run-2")  # a slow baseline run
    store.append([row(64), row(128)], baseline / "run-10")
    assert [p.name for p in recorded_runs(baseline)] == ["run-1", "run-2", "run-10"]
    candidate = tmp_path / "cand"
    store.append([row(64, samples(26.0 / 2)), row(128, samples(26.0))], candidate)
    comparison = compare_paths(baseline, candidate)
    assert comparison.baseline == f"{baseline} (3 runs)"
    cells = by_seq_len(comparison)
    assert cells[64].verdict == REGRESSION and cells[64].note.startswith("time +")
    assert cells[64].note.endswith("; in all 3 comparisons")
    assert cells[128].verdict == NOT_CONFIRMED and cells[128].note.startswith("failing in 2 of 3")
    assert recorded_runs(candidate) == [candidate]


def test_every_candidate_run_is_compared_with_every_baseline_run(tmp_path):
    baseline, candidate = tmp_path / "base", tmp_path / "cand"
    store.append([row(64), row(128)], baseline / "run-1")
    store.append([row(64), row(128)], baseline / "run-2")
    store.append([row(64, samples(13.0)), row(128, samples(26.0))], candidate / "run-1")
    store.append([row(64, samples(13.0, seed=3)), row(128, samples(20.0))], candidate / "run-2")  # 128: no change
    comparison = compare_paths(baseline, candidate)
    assert (comparison.baseline, comparison.candidate) == (f"{baseline} (2 runs)", f"{candidate} (2 runs)")
    cells = by_seq_len(comparison)
    assert cells[64].verdict == REGRESSION and cells[64].note.startswith("time +")
    assert cells[64].note.endswith("; in all 4 comparisons")
    assert cells[128].verdict == NOT_CONFIRMED and cells[128].note.startswith("failing in 2 of 4")


# ------------------------------------------------------------------ rendering


def test_markdown_lists_changes_first_and_all_cells_in_details():
    base = frame([row(64), row(128), row(256)])
    cand = frame([row(64), row(128, samples(26.0)), row(256, status="timeout", error="timed out | after 5 s")])
    comparison = compare_frames(base, cand, names=("results/base", "results/cand"))
    md = render_markdown(comparison)
    head, details = md.split("<details>")
    assert summary_line(comparison) in head and summary_line(comparison).startswith("FAIL: 3 cells")
    assert "`results/base`" in head and "`results/cand`" in head
    changes = [line for line in head.splitlines() if line.startswith("| gam")]
    assert len(changes) == 2  # the unchanged cell is only in the details
    assert "new failure" in changes[0] and "regression" in changes[1]
    assert "timed out \\| after 5 s" in changes[0]
    assert len([line for line in details.splitlines() if line.startswith("| gam")]) == 3
    assert "+30" in changes[1] or "+29" in changes[1] or "+31" in changes[1]


def test_markdown_says_pass_when_nothing_changed():
    comparison = compare_frames(frame([row(64)]), frame([row(64)]))
    md = render_markdown(comparison)
    assert ":white_check_mark:" in md and "PASS: 1 cells: 1 unchanged" in md
    assert "No cell changed beyond the thresholds." in md


def test_terminal_table_shows_every_cell_and_the_summary():
    from rich.console import Console

    comparison = compare_frames(frame([row(64), row(128)]), frame([row(64), row(128, samples(26.0))]))
    console = Console(record=True, width=250)
    render_terminal(comparison, console)
    text = console.export_text()
    assert "T=64" in text and "T=128" in text
    assert "regression" in text and "FAIL: 2 cells: 1 regression, 1 unchanged" in text


def test_comparison_modules_do_not_import_torch():
    code = (
        "import sys, gam_bench.analysis.compare, gam_bench.analysis.compare_render, "
        "gam_bench.cli.compare; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ the control kernel


def test_a_machine_slowed_as_a_whole_is_not_a_regression_relative_to_the_control_kernel():
    """Candidate 40% slower in the cell AND the control matmul (the machine): unchanged, relative to it."""
    base = frame([row(64, samples(10.0), control_ms=0.50), row(128, samples(20.0), control_ms=0.50)])
    cand = frame([row(64, samples(14.0, seed=3), control_ms=0.70), row(128, samples(28.0, seed=4), control_ms=0.50)])
    cells = by_seq_len(compare_frames(base, cand))
    assert cells[64].verdict == UNCHANGED and abs(cells[64].time.change) < 0.02
    assert cells[64].time.column == "time_samples_ms x control"
    assert cells[128].verdict == REGRESSION  # the code got slower, the control did not
    raw = by_seq_len(compare_frames(base, cand, RegressionSettings(control=False)))
    assert raw[64].verdict == REGRESSION and raw[64].time.column == "time_samples_ms"


def test_rows_without_a_control_are_judged_on_raw_times_and_the_rule_line_says_how_many_were_relative():
    base = frame([row(64, samples(10.0), control_ms=0.5), row(128, samples(10.0))])
    cand = frame([row(64, samples(10.0, seed=2), control_ms=0.5), row(128, samples(13.0, seed=2), control_ms=0.5)])
    comparison = compare_frames(base, cand)
    cells = by_seq_len(comparison)
    assert cells[128].time.column == "time_samples_ms" and cells[128].verdict == REGRESSION
    from gam_bench.analysis.compare_render import method_line

    assert "; time (relative to the control kernel in 1 of 2 cells): " in method_line(comparison)


# ------------------------------------------------------------------ per-process medians


def _over_processes(levels: list[float], per: int = 4, seed: int = 0) -> dict:
    """Columns of a row measured over len(levels) processes, each process at its own level."""
    values = [samples(level, n=per, seed=seed + i) for i, level in enumerate(levels)]
    return {"time": [v for vs in values for v in vs], "process_medians_ms": [float(np.median(v)) for v in values]}


def test_rows_over_processes_are_judged_on_their_process_medians_not_on_pooled_samples():
    """Processes at two levels, 4 of 5 at the low one in the baseline, 4 of 5 at the high one in
    the candidate: pooled, 20 samples against 20 call it a regression (p < 0.01); over
    the processes, 5 medians against 5 that overlap, the rank test cannot reject."""
    base = _over_processes([10.0, 10.0, 10.0, 10.0, 13.0])
    cand = _over_processes([10.0, 13.0, 13.0, 13.0, 13.0], seed=10)
    settings = RegressionSettings(control=False)
    cell = by_seq_len(compare_frames(frame([row(64, **base)]), frame([row(64, **cand)]), settings))[64]
    assert cell.time.column == "process_medians_ms" and cell.verdict == UNCHANGED
    assert cell.time.basis == "Mann-Whitney U, n=5/5" and cell.time.p_value > 0.01
    pooled = frame([row(64, time=base["time"])]), frame([row(64, time=cand["time"])])
    raw = by_seq_len(compare_frames(*pooled, settings))[64]
    assert raw.time.column == "time_samples_ms" and raw.verdict == REGRESSION and raw.time.p_value < 0.01


def test_two_processes_against_two_are_judged_on_their_process_medians():
    """The boundary: 2 processes a side are already per-process medians (not pooled samples);
    2 against 2 is too few for the rank test, so the effect size alone decides."""
    base = _over_processes([10.0, 10.2])
    cand = _over_processes([13.0, 13.1], seed=10)
    settings = RegressionSettings(control=False)
    cell = by_seq_len(compare_frames(frame([row(64, **base)]), frame([row(64, **cand)]), settings))[64]
    assert cell.time.column == "process_medians_ms"
    assert cell.time.basis == "effect size only (n=2/2, too few repeats for the rank test)"
    assert cell.time.baseline == pytest.approx(float(np.median(base["process_medians_ms"])))
    assert cell.verdict == REGRESSION


def test_a_slowdown_in_every_process_is_a_regression_over_process_medians():
    base = _over_processes([10.0, 10.5, 9.8, 10.2, 10.1])
    cand = _over_processes([13.0, 13.6, 12.9, 13.3, 13.1], seed=10)
    comparison = compare_frames(frame([row(64, **base)]), frame([row(64, **cand)]))
    cell = by_seq_len(comparison)[64]
    assert cell.verdict == REGRESSION and cell.time.p_value < 0.01
    from gam_bench.analysis.compare_render import method_line

    assert "per-process medians as the units in 1 of 1 cells" in method_line(comparison)
