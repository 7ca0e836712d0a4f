"""Shared fixtures of the report tests: the checked-in results fixture and helpers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gam_bench import store
from gam_bench.report import write_report
from gam_bench.report.curves import build_groups

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "results" / "fixtures" / "report_small"


@pytest.fixture(scope="session")
def fixture_path() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def fixture_rows() -> pd.DataFrame:
    return store.load(FIXTURE)


@pytest.fixture(scope="session")
def newest(fixture_rows) -> pd.DataFrame:
    return store.latest(fixture_rows)


@pytest.fixture(scope="session")
def groups(newest):
    return {g.key.mode: g for g in build_groups(newest)}


@pytest.fixture(scope="session")
def report_md(tmp_path_factory) -> Path:
    """The fixture's report, written once per test session."""
    return write_report(FIXTURE, tmp_path_factory.mktemp("report"))
