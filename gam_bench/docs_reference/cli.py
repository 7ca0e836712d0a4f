"""The CLI reference: one section per subcommand, from the argparse parsers `gam-bench` builds."""

from __future__ import annotations

import argparse


def cli_markdown() -> str:
    from gam_bench.cli.main import build_parser

    parser = build_parser()
    parts = [_usage(parser, "gam-bench"), ""]
    for name, sub in _subcommands(parser).items():
        parts += [f"## gam-bench {name}", "", _escape(sub.description or sub.help_text), "", _usage(sub), ""]
        parts += _arguments_table(sub)
    return "\n".join(parts)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    out = {}
    for name, sub in action.choices.items():
        sub.help_text = helps.get(name) or ""
        out[name] = sub
    return out


def _usage(parser: argparse.ArgumentParser, prog: str | None = None) -> str:
    formatter = argparse.HelpFormatter(prog or parser.prog, width=100)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return "```text\n" + formatter.format_help().strip() + "\n```"


def _arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | meaning | default |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        rows.append(f"| {_name(action)} | {_escape(action.help or '')}{_choices(action)} | {_default(action)} |")
    return [*rows, ""] if len(rows) > 2 else []


def _name(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{flags}`"
    metavar = action.metavar or action.dest.upper()
    more = " ..." if action.nargs in ("+", "*") else ""
    return f"`{flags} {metavar}{more}`"


def _choices(action: argparse.Action) -> str:
    if not action.choices or isinstance(action, argparse._SubParsersAction):
        return ""
    return " (one of " + ", ".join(f"`{c}`" for c in action.choices) + ")"


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
        return ""
    return f"`{action.default}`"


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")
