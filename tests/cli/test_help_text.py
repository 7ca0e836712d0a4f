"""Every subcommand's `--help` has a description line, not only the usage and options."""

from __future__ import annotations

import argparse

from gam_bench.cli.main import SUBCOMMANDS, build_parser


def test_every_subcommand_has_a_description():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS)
    missing = [name for name, parser in sub.choices.items() if len((parser.description or "").split()) < 8]
    assert missing == []


def test_help_prints_the_description(capsys):
    for name in ("env", "doctor", "calibrate"):
        try:
            build_parser().parse_args([name, "--help"])
        except SystemExit:
            pass
        out = capsys.readouterr().out
        description = out.split("\n\n")[1]
        assert not description.startswith(("positional", "options")), (name, out[:300])
