"""`gam-bench report`: prints the report path, exit 2 on bad input, never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gam_bench.cli.main import main


def test_report_command_writes_and_prints_the_path(fixture_path, tmp_path, capsys):
    assert main(["report", str(fixture_path), "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == str(tmp_path / "out" / "report.md")
    assert Path(printed).read_text().startswith("# gam-bench report: report-small")


def test_default_output_folder_is_reports_suite_name(fixture_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(fixture_path)]) == 0
    assert capsys.readouterr().out.strip() == str(Path("reports") / "report-small" / "report.md")
    assert (tmp_path / "reports" / "report-small" / "figures").is_dir()


def test_bad_path_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "Traceback" not in err


def test_empty_folder_and_file_as_output_are_user_errors(fixture_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no result rows" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["report", str(fixture_path), "-o", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_several_suites_are_refused_naming_them_or_chosen_with_suite(fixture_path, tmp_path, capsys):
    """`gam-bench report results/` would merge every sweep, fixture and machine into one report."""
    import shutil

    repo = Path(__file__).resolve().parents[2]
    mixed = tmp_path / "results"
    shutil.copytree(fixture_path, mixed / "report_small")
    shutil.copytree(repo / "results" / "baselines" / "ci" / "run-1", mixed / "ci")
    assert main(["report", str(mixed), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds rows of 2 suites" in err
    assert "ci (12 cells)" in err and "report-small (" in err and "--suite NAME" in err
    assert not (tmp_path / "out").exists()
    assert main(["report", str(mixed), "--suite", "ci", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.md").read_text().startswith("# gam-bench report: ci")


def test_reporting_never_imports_torch(fixture_path, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import gam_bench.analysis, gam_bench.report, gam_bench.cli.report
        from gam_bench.report import write_report
        write_report({str(fixture_path)!r}, {str(tmp_path)!r})
        assert "torch" not in sys.modules, "torch was imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "report.md").exists()


def test_a_corrupt_part_is_skipped_with_a_warning_or_refused_with_strict(fixture_path, tmp_path, capsys):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(fixture_path, results)
    (results / "part-zz-bad.parquet").write_bytes(b"garbage")
    assert main(["report", str(results), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: skipped {results / 'part-zz-bad.parquet'}: not a readable Parquet")
    assert len(captured.err.strip().splitlines()) == 1
    assert main(["report", str(fixture_path), "-o", str(tmp_path / "ref")]) == 0
    assert (tmp_path / "out" / "report.md").read_text() == (tmp_path / "ref" / "report.md").read_text()
    assert main(["report", str(results), "-o", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gam-bench: error: ") and "part-zz-bad.parquet" in err and len(err.splitlines()) == 1


def test_the_report_shows_tensor_bytes_where_every_ok_row_has_them():
    import pandas as pd

    from gam_bench.report import judged_memory

    rows = pd.DataFrame(
        {"status": ["ok", "ok", "oom"], "peak_mem_bytes": [9.0, 9.0, None], "peak_tensor_bytes": [1.0, 2.0, None]}
    )
    shown = judged_memory(rows.assign(mem_source="rss_hwm"))
    assert list(shown["peak_mem_bytes"][:2]) == [1.0, 2.0]
    assert set(shown["mem_source"]) == {"peak_tensor_bytes (live tensor storage)"}
    partial = rows.assign(peak_tensor_bytes=[1.0, None, None], mem_source="rss_hwm")
    assert list(judged_memory(partial)["peak_mem_bytes"][:2]) == [9.0, 9.0]  # not all ok rows: the measured peak


def test_figures_slide_writes_slide_sized_figures(fixture_path, tmp_path, capsys):
    import PIL.Image

    from gam_bench.cli.report import FIGURE_SIZES
    from gam_bench.report.figure import SIZES

    assert set(FIGURE_SIZES) == set(SIZES)
    assert main(["report", str(fixture_path), "-o", str(tmp_path / "out"), "--figures", "slide"]) == 0
    png = tmp_path / "out" / "figures" / "cpu-block-forward-float32-b1-time.png"
    assert PIL.Image.open(png).width == round(SIZES["slide"].width * SIZES["slide"].dpi) == 1000
    assert png.with_suffix(".svg").is_file()
    with pytest.raises(SystemExit) as refused:
        main(["report", str(fixture_path), "-o", str(tmp_path / "bad"), "--figures", "poster"])
    assert refused.value.code == 2
