"""The search for the longest length that fits, over a probe function, and its answer.

Both are pure functions of the probes' (seq_len, status) outcomes, so the runner, a resumed
run and the report agree on what was searched and what it found:
- `next_length(settings, probes)`: the next length to probe, or None when the search is done;
- `search(settings, probe)`: probes until `next_length` says done (or the time budget is spent);
- `answer(settings, probes)`: the longest length that ran ok, the shortest failure above it,
  and why the search ended.

The order: from `start`, double while cells run ok (up to `max_seq_len`); once a length fails
(`oom` or `timeout`), bisect between the last success and the first failure, on multiples of
`multiple_of`, until the gap is within `SearchSettings.tolerance`. A failure at `start` halves
the length until one runs ok (or the length would drop below `multiple_of`: nothing fits).
Any other outcome (an `error`) ends the search: it is not a limit being reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gam_bench.search.settings import SearchSettings

LIMIT_STATUSES = ("oom", "timeout")  # a probe past the cell's limits: memory cap, time budget


@dataclass(frozen=True)
class Probe:
    """One probe's outcome: its length, status, wall seconds, and whether it was already stored."""

    seq_len: int
    status: str
    duration_s: float = 0.0
    stored: bool = False


@dataclass(frozen=True)
class Answer:
    """What a search found. fits: the longest length that ran ok (None: none did). fails: the
    shortest length above it that failed its limits (None: none did). status: converged |
    fits at max | none fits | stopped: <why> | incomplete."""

    fits: int | None
    fails: int | None
    status: str
    probes: tuple[Probe, ...]

    @property
    def fail_status(self) -> str | None:
        """The status of the probe at `fails` (oom or timeout)."""
        return next((p.status for p in self.probes if p.seq_len == self.fails), None)


def _bracket(probes: Sequence[Probe]) -> tuple[int | None, int | None]:
    """(longest ok length, shortest limit failure above it)."""
    ok = [p.seq_len for p in probes if p.status == "ok"]
    fits = max(ok) if ok else None
    failed = [p.seq_len for p in probes if p.status in LIMIT_STATUSES and (fits is None or p.seq_len > fits)]
    return fits, (min(failed) if failed else None)


def _other(probes: Sequence[Probe]) -> Probe | None:
    """The first probe that neither ran ok nor failed a limit (an error ends the search)."""
    return next((p for p in probes if p.status != "ok" and p.status not in LIMIT_STATUSES), None)


def next_length(settings: SearchSettings, probes: Sequence[Probe]) -> int | None:
    """The next length to probe after `probes`, or None when the search is done."""
    if _other(probes) is not None:
        return None
    fits, fails = _bracket(probes)
    step = settings.multiple_of
    if fits is None and fails is None:
        return settings.start
    if fits is None:
        half = fails // 2 // step * step  # halve below the shortest failure
        return half if half >= step else None
    if fails is None:
        return min(2 * fits, settings.max_seq_len) if fits < settings.max_seq_len else None
    if fails - fits <= settings.tolerance(fits):
        return None
    middle = (fits + fails) // 2 // step * step
    return middle if fits < middle < fails else None


def spent_s(probes: Sequence[Probe]) -> float:
    return sum(p.duration_s for p in probes)


def over_budget(settings: SearchSettings, probes: Sequence[Probe]) -> bool:
    return settings.budget_s is not None and spent_s(probes) >= settings.budget_s


def search(settings: SearchSettings, probe: Callable[[int], Probe], done: Sequence[Probe] = ()) -> Answer:
    """Probe lengths (`probe(seq_len)`) until the search ends; `done`: outcomes already known."""
    probes = list(done)
    while not over_budget(settings, probes):
        length = next_length(settings, probes)
        if length is None:
            break
        probes.append(probe(length))
    return answer(settings, probes)


def answer(settings: SearchSettings, probes: Sequence[Probe]) -> Answer:
    """The answer the probes give (see `Answer`)."""
    fits, fails = _bracket(probes)
    other = _other(probes)
    if other is not None:
        status = f"stopped: {other.status} at {other.seq_len}"
    elif next_length(settings, probes) is None:
        if fits is None:
            status = "none fits"
        elif fails is None:
            status = "fits at max"
        else:
            status = "converged"
    elif over_budget(settings, probes):
        status = f"stopped: search budget of {settings.budget_s:g} s spent"
    else:
        status = "incomplete"
    return Answer(fits, fails, status, tuple(probes))
