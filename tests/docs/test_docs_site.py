"""The docs site: the README stays a short front door, every page is in the navigation, the
generated pages (CLI, suite schema, committed results) cover what they claim, dated history
stays out of code docstrings, and `mkdocs build --strict` passes (a broken link fails)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")


def _hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", REPO / "scripts" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_files(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += _nav_files(value) if isinstance(value, list) else [value]
    return out


def test_readme_is_a_short_front_door_without_dated_history():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert not DATE.findall(text), "dated measurements belong in docs/results/"
    for command in ("make bench", "make test", "--fresh", "gam-bench report", "check suites/ci.yaml --against"):
        assert command in text
    assert "--executor ray" in text and "## The model zoo" in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / link).is_file(), link


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    nav = set(_nav_files(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == nav
    for name in ("field", "baselines", "gate", "divergence"):
        assert f"results/{name}.md" in nav


def test_no_dated_measurement_history_in_code_docstrings():
    dated = [
        f"{path.relative_to(REPO)}:{n}"
        for path in (REPO / "gam_bench").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DATE.search(line) and "strftime" not in line
    ]
    assert dated == []


def test_hook_fills_every_marker_and_refuses_an_unknown_one():
    hooks = _hooks()
    filled = hooks.fill("# CLI\n\n<!-- generated: cli -->\n")
    assert "## gam-bench run" in filled and "<!-- generated" not in filled
    with pytest.raises(ValueError, match="unknown generated part 'clu'"):
        hooks.fill("<!-- generated: clu -->")
    for page in ("reference/cli.md", "reference/suite-schema.md", "results/committed.md"):
        assert hooks.MARKER.search((DOCS / page).read_text()), page


def test_cli_reference_has_every_command_and_option():
    from gam_bench.cli.main import build_parser
    from gam_bench.docs_reference import cli_markdown

    text = cli_markdown()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        assert f"## gam-bench {name}\n" in text
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text or f", {flag}" in text, (name, flag)


def test_suite_schema_reference_has_every_field():
    from gam_bench.docs_reference import schema_markdown
    from gam_bench.settings import Measure
    from gam_bench.suite import SuiteConfig

    text = schema_markdown()
    for field in [*SuiteConfig.model_fields, "profiles", *Measure.model_fields]:
        assert f"| `{field}` |" in text, field
    assert "## Measure" in text and "## Limits" in text


def test_committed_results_tables_state_date_machine_load_and_command():
    from gam_bench.docs_reference import baselines_markdown

    text = baselines_markdown(REPO / "results" / "baselines")
    assert "gam-bench check suites/ci.yaml --baseline results/baselines/ci --update" in text
    runs = re.findall(r"^### `.*run-\d+`$", text, re.MULTILINE)
    assert len(runs) >= 1
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d-\d\d:\d\d UTC .* 1-minute load \d", text)
    assert text.count("| gam | forward |") == 2 * len(runs)  # 2 lengths a run


HAVE_MKDOCS = importlib.util.find_spec("mkdocs") is not None


@pytest.mark.skipif(not HAVE_MKDOCS, reason="needs the docs extra (pip install -e '.[docs]')")
def test_mkdocs_build_strict_passes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()


def test_skipped_tests_are_labelled_with_what_they_need():
    """Not every skip is CUDA-only: a skip that an environment variable turns on (the long
    inductor compile) is named where the front door explains the skips."""
    readme = (REPO / "README.md").read_text()
    assert "skipped (CUDA-only)" not in readme and "inductor compile" in readme
    page = (DOCS / "getting-started.md").read_text()
    reasons = [
        m.group(1)
        for path in (REPO / "tests").rglob("*.py")
        for m in re.finditer(r'reason="([^"]+)"', path.read_text())
    ]
    switches = {var for reason in reasons for var in re.findall(r"GAM_BENCH_\w+", reason)}
    assert switches, "expected at least the long-compile switch"
    for var in switches:
        assert var in page, var


def test_the_model_zoo_tables_list_every_built_in_model():
    from gam_bench.models.registry import MODELS

    for page in (REPO / "README.md", DOCS / "guides" / "models.md"):
        listed = set(re.findall(r"^\| `([\w-]+)` \|", page.read_text(), re.MULTILINE))
        assert set(MODELS.lazy) <= listed, (page.name, sorted(set(MODELS.lazy) - listed))
