"""CHANGELOG.md follows keep-a-changelog, and its newest release is the package's version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gam_bench

REPO = Path(__file__).resolve().parents[2]
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d\d-\d\d)$", re.MULTILINE)


def test_newest_release_is_the_package_version():
    text = (REPO / "CHANGELOG.md").read_text()
    releases = RELEASE.findall(text)
    assert releases, "no '## [x.y.z] - YYYY-MM-DD' release heading"
    assert releases[0][0] == gam_bench.__version__
    assert text.index("## [Unreleased]") < text.index(f"## [{releases[0][0]}]")
    dates = [date for _, date in releases]
    assert dates == sorted(dates, reverse=True)
    for version, _ in releases:
        assert f"[{version}]: " in text, f"no link for {version}"


def test_the_package_version_has_one_source():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gam_bench.__version__"}
