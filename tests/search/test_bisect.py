"""The search for the longest length that fits, on a fake cell runner (gam_bench.search.bisect)."""

from __future__ import annotations

import pytest

from gam_bench.search.bisect import Probe, answer, next_length, search
from gam_bench.search.settings import SearchSettings


def fake_cells(limit: int | None, status: str = "oom", seconds: float = 1.0, error_at: int | None = None):
    """A cell runner whose cells fit up to `limit` tokens (None: always); records what it ran."""
    ran: list[int] = []

    def probe(seq_len: int) -> Probe:
        ran.append(seq_len)
        if error_at is not None and seq_len >= error_at:
            return Probe(seq_len, "error", seconds)
        fits = limit is None or seq_len <= limit
        return Probe(seq_len, "ok" if fits else status, seconds)

    return probe, ran


def test_doubles_then_bisects_to_the_precision():
    settings = SearchSettings(start=1024, max_seq_len=2**20, precision=0.05, multiple_of=64)
    probe, ran = fake_cells(limit=10_000)
    found = search(settings, probe)
    assert ran[:5] == [1024, 2048, 4096, 8192, 16384]  # doubling until the first failure
    assert ran[5:] == [12288, 10240, 9216, 9728, 9984]  # bisection on multiples of 64
    assert (found.fits, found.fails) == (9984, 10240)  # the answer never exceeds the true limit
    assert found.fails - found.fits <= settings.tolerance(found.fits)  # within 5%
    assert found.status == "converged" and found.fail_status == "oom"


def test_bisection_stops_at_multiple_of():
    settings = SearchSettings(start=1024, max_seq_len=2**20, precision=0.01, multiple_of=512)
    probe, ran = fake_cells(limit=3000)
    found = search(settings, probe)
    assert (found.fits, found.fails) == (2560, 3072)  # 1% of 2560 is below one step of 512
    assert ran == [1024, 2048, 4096, 3072, 2560]


def test_a_timeout_is_a_limit_too():
    settings = SearchSettings(start=256, max_seq_len=4096, precision=0.25, multiple_of=256)
    probe, _ran = fake_cells(limit=1500, status="timeout")
    found = search(settings, probe)
    assert found.fits == 1280 and found.fails == 1536 and found.fail_status == "timeout"


def test_a_model_that_never_fits():
    settings = SearchSettings(start=1024, max_seq_len=8192, multiple_of=128)
    probe, ran = fake_cells(limit=0)
    found = search(settings, probe)
    assert ran == [1024, 512, 256, 128]  # halving down to one step, then nothing is left
    assert found.fits is None and found.fails == 128 and found.status == "none fits"


def test_halving_finds_a_limit_below_the_start():
    settings = SearchSettings(start=4096, max_seq_len=8192, precision=0.1, multiple_of=128)
    probe, ran = fake_cells(limit=700)
    found = search(settings, probe)
    assert ran[:3] == [4096, 2048, 1024] and 512 in ran
    assert found.fits <= 700 < found.fails and found.status == "converged"


def test_a_model_that_fits_beyond_the_max():
    settings = SearchSettings(start=1024, max_seq_len=5000 // 64 * 64, multiple_of=64)
    probe, ran = fake_cells(limit=None)
    found = search(settings, probe)
    assert ran == [1024, 2048, 4096, 4992]  # the last doubling is clipped to max_seq_len
    assert found.fits == 4992 and found.fails is None and found.status == "fits at max"


def test_resume_asks_only_for_what_is_not_stored():
    settings = SearchSettings(start=1024, max_seq_len=2**20, precision=0.05, multiple_of=64)
    first, ran_first = fake_cells(limit=10_000)
    full = search(settings, first)
    stored = [Probe(p.seq_len, p.status, p.duration_s, stored=True) for p in full.probes[:6]]
    again, ran_again = fake_cells(limit=10_000)
    resumed = search(settings, again, done=stored)
    assert ran_again == ran_first[6:]  # the stored six are not run again
    assert (resumed.fits, resumed.fails) == (full.fits, full.fails)
    done, ran_done = fake_cells(limit=10_000)
    assert search(settings, done, done=full.probes).probes == full.probes and ran_done == []


def test_an_error_ends_the_search_with_why():
    settings = SearchSettings(start=1024, max_seq_len=2**20, multiple_of=64)
    probe, ran = fake_cells(limit=10_000, error_at=4096)
    found = search(settings, probe)
    assert ran == [1024, 2048, 4096]
    assert found.fits == 2048 and found.status == "stopped: error at 4096"


def test_the_time_budget_stops_new_probes():
    settings = SearchSettings(start=1024, max_seq_len=2**20, multiple_of=64, budget_s=3.5)
    probe, ran = fake_cells(limit=10_000, seconds=1.0)
    found = search(settings, probe)
    assert ran == [1024, 2048, 4096, 8192]  # 4 s spent after the fourth: no fifth
    assert found.status == "stopped: search budget of 3.5 s spent" and found.fits == 8192


def test_a_failure_below_a_success_is_not_the_bracket():
    settings = SearchSettings(start=1024, max_seq_len=2**20, multiple_of=64)
    probes = [Probe(1024, "ok"), Probe(2048, "timeout"), Probe(4096, "ok")]  # a noisy timeout
    assert answer(settings, probes).fits == 4096
    assert next_length(settings, probes) == 8192


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": 1000, "multiple_of": 64}, "start (1000) is not a multiple of multiple_of (64)"),
        ({"start": 4096, "max_seq_len": 2048}, "max_seq_len (2048) is below start (4096)"),
        ({"start": 1024, "max_seq_len": 5000}, "max_seq_len (5000) is not a multiple of multiple_of (64)"),
    ],
)
def test_inconsistent_settings_are_refused(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchSettings(**fields)
