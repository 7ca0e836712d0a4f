"""The gate's deterministic metrics (instructions, FLOPs, dispatched ops, tensor bytes: judged
first, each against its own threshold, with no significance test) and the settings that can
never fire (analysis/reachability.py)."""

from __future__ import annotations

import pytest
from compare_rows import frame, row, samples

from gam_bench.analysis.compare import compare_frames
from gam_bench.analysis.compare_render import cell_fields, method_line
from gam_bench.analysis.compare_settings import RegressionSettings
from gam_bench.analysis.judge import judge_count
from gam_bench.analysis.reachability import count_spread_note, fewest_per_side, problems, smallest_p
from gam_bench.analysis.verdicts import IMPROVEMENT, REGRESSION, UNCHANGED
from gam_bench.suite import Measure

INSTR = 36_094_984


def counted(seq_len: int, instructions: float, time_median: float = 10.0, seed: int = 0, **columns):
    """A row with instruction counts (three identical steps) and times around `time_median`."""
    return row(
        seq_len,
        samples(time_median, seed=seed),
        instructions=float(instructions),
        instructions_samples=[int(instructions)] * 3,
        **columns,
    )


def test_a_three_percent_instruction_growth_fails_at_one_percent_with_no_test_and_the_note_says_by_how_much():
    base = frame([counted(64, INSTR), counted(128, INSTR)])
    cand = frame([counted(64, INSTR * 1.03, seed=1), counted(128, INSTR * 1.005, seed=1)])
    comparison = compare_frames(base, cand)
    cells = {cell.label.split("T=")[1].split()[0]: cell for cell in comparison.cells}
    grown, same = cells["64"], cells["128"]
    assert grown.verdict == REGRESSION and grown.note == "instructions +3.00%"
    [instructions] = grown.counts
    assert instructions.p_value is None and instructions.basis.startswith("deterministic")
    assert grown.time.verdict == UNCHANGED  # the times did not move: the count alone caught it
    assert same.verdict == UNCHANGED and same.counts[0].change == pytest.approx(0.005)
    assert "instr 36.09M → 37.18M +3.00% !" in cell_fields(grown)[2]
    assert comparison.failed
    assert method_line(comparison).startswith("deterministic first, no test: instructions (in 2 of 2 cells) >= 1.00%")


def test_each_count_has_its_own_threshold_and_improvements_are_seen():
    settings = RegressionSettings(instructions_threshold=0.05)
    base = frame([counted(64, INSTR, flops=1e9, dispatched_ops=300)])
    cand = frame([counted(64, INSTR * 1.03, seed=1, flops=1e9, dispatched_ops=304)])
    cell = compare_frames(base, cand, settings).cells[0]
    assert [c.metric for c in cell.counts] == ["instructions", "flops", "ops"]
    assert cell.verdict == REGRESSION and cell.note == "ops +1.33%"  # 3% instructions is under 5%
    faster = compare_frames(base, frame([counted(64, INSTR * 0.9, seed=1, flops=1e9, dispatched_ops=300)]))
    assert faster.cells[0].verdict == IMPROVEMENT and faster.cells[0].note == "instructions -10.00%"


def test_judge_count_needs_both_counts():
    assert judge_count("instructions", "instructions", None, 5.0, 0.01) is None
    assert judge_count("instructions", "instructions", 0.0, 5.0, 0.01) is None
    assert judge_count("instructions", "instructions", 100.0, 101.0, 0.01).verdict == REGRESSION


def test_time_is_still_judged_with_its_statistics_unless_the_suite_turns_it_off():
    base = frame([counted(64, INSTR)])
    slow = frame([counted(64, INSTR, time_median=20.0, seed=1)])
    judged = compare_frames(base, slow).cells[0]
    assert judged.verdict == REGRESSION and judged.note.startswith("time +") and judged.time.p_value is not None
    off = compare_frames(base, slow, RegressionSettings(time=False))
    assert off.cells[0].verdict == UNCHANGED and off.cells[0].time is None
    assert "time: not judged (regression: time: false)" in method_line(off)


def test_counted_tensor_bytes_have_their_own_tight_threshold_and_no_floor():
    mib = 2**20
    base = frame([row(64, peak_tensor_bytes=10 * mib)])
    cand = frame([row(64, samples(10.0, seed=1), peak_tensor_bytes=int(10.2 * mib))])  # +2%, 0.2 MiB
    cell = compare_frames(base, cand).cells[0]
    assert cell.memory.verdict == REGRESSION and cell.memory.basis.startswith("deterministic")
    loose = compare_frames(base, cand, RegressionSettings(tensor_bytes_threshold=0.05)).cells[0]
    assert loose.memory.verdict == UNCHANGED


def test_a_cell_that_asked_for_instructions_and_has_none_says_why():
    base = frame([counted(64, INSTR)])
    cand = frame([row(64, samples(10.0, seed=1), instructions_reason="valgrind is not installed (not on PATH)")])
    cell = compare_frames(base, cand).cells[0]
    assert cell.counts == () and "instructions not counted in the candidate: valgrind is not installed" in cell.note
    assert "instructions (in 0 of 1 cells)" in method_line(compare_frames(base, cand))


def test_counts_of_different_kernel_builds_are_noted():
    build = "selective_scan -march=x86-64-v3 -mno-fma"
    base = frame([counted(64, INSTR, instructions_build=build)])
    same = compare_frames(base, frame([counted(64, INSTR, seed=1, instructions_build=build)])).cells[0]
    assert "kernel build" not in same.note
    other = compare_frames(base, frame([counted(64, INSTR, seed=1, instructions_build=None)])).cells[0]
    assert f"instructions counted with another kernel build: baseline {build}, candidate None" in other.note


def test_steps_whose_counts_vary_by_half_the_threshold_are_noted():
    base = frame([row(64, instructions=100.0, instructions_samples=[100, 100, 100])])
    cand = frame([row(64, samples(10.0, seed=1), instructions=100.0, instructions_samples=[99, 100, 100])])
    notes = compare_frames(base, cand).notes
    assert any("instructions varied 1.01% between the counted steps" in note for note in notes)
    assert count_spread_note("instructions", [[100, 100, 100]], 0.01) is None


def test_the_smallest_rank_test_p_value_and_the_fewest_units_that_reach_alpha():
    assert smallest_p(2, 2) == pytest.approx(1 / 3)
    assert smallest_p(5, 5) == pytest.approx(2 / 252)
    assert [fewest_per_side(alpha) for alpha in (0.01, 0.05, 0.1, 0.001)] == [5, 4, 3, 7]
    for alpha in (0.01, 0.05, 0.001):
        n = fewest_per_side(alpha)
        assert smallest_p(n, n) <= alpha < smallest_p(n - 1, n - 1)


def test_problems_name_the_fewest_processes_that_can_reach_alpha():
    settings = RegressionSettings(alpha=0.01)
    [rank, bootstrap] = problems(Measure(processes=2, repeats=4), settings)
    assert rank.startswith("measure.processes: 2 a side can never reach regression.alpha = 0.01")
    assert "5 processes a side are the fewest that can" in rank and "0.33" in rank
    assert "bootstrap" in bootstrap
    [repeats] = problems(Measure(processes=1, repeats=4, max_repeats=4), settings)
    assert repeats.startswith("measure.repeats: 4 a side") and "5 repeats a side" in repeats
    assert problems(Measure(processes=5, repeats=4), settings) == []
    assert problems(Measure(processes=2), RegressionSettings(time=False)) == []  # time not judged: no trap
    assert problems(Measure(processes=4), RegressionSettings(alpha=0.05)) == []


def test_one_counted_step_is_reported_as_a_spread_that_can_never_be_seen():
    settings = RegressionSettings()
    [note] = problems(Measure(processes=5, instructions=True, instruction_steps=1), settings)
    assert note.startswith("measure.instruction_steps: 1 counts one step a cell") and "2 steps are the fewest" in note
    assert problems(Measure(processes=5, instructions=True, instruction_steps=2), settings) == []
    assert problems(Measure(processes=5, instruction_steps=1), settings) == []  # nothing counted: no trap
    untimed = problems(Measure(processes=5, instructions=True, instruction_steps=1), RegressionSettings(time=False))
    assert len(untimed) == 1 and untimed[0].startswith("measure.instruction_steps: 1")  # time not judged: still said


def test_a_comparison_too_small_for_the_rank_test_says_so():
    base = frame([row(64, [10.0, 10.1], process_medians_ms=[10.0, 10.1])])
    cand = frame([row(64, [20.0, 20.1], process_medians_ms=[20.0, 20.1])])
    comparison = compare_frames(base, cand)
    assert comparison.cells[0].time.p_value is None
    [note] = comparison.notes
    assert note.startswith("time in 1 cells judged on the effect size alone (effect size only (n=2/2")
    assert "5 processes (or repeats) a side are the fewest that can" in note
