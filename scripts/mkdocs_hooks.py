"""mkdocs hook (mkdocs.yml `hooks:`): fills the generated parts of the docs at build time.

A page marks a generated part with a line `<!-- generated: NAME -->`; NAME is one of
gam_bench.docs_reference.GENERATORS (cli, suite-schema, baselines). An unknown name fails the
build, so a typo cannot leave a page silently empty.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.MULTILINE)


def fill(markdown: str) -> str:
    """`markdown` with every marker replaced by its generated Markdown."""
    from gam_bench.docs_reference import GENERATORS

    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated part {name!r} (known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(generate, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - the hook's signature
    return fill(markdown)
