"""Pages of the docs site generated from the code when it is built (scripts/mkdocs_hooks.py):
the CLI reference from the argument parsers, the suite schema from the pydantic models, and
result tables from the Parquet committed under results/baselines/. No torch here."""

from gam_bench.docs_reference.cli import cli_markdown
from gam_bench.docs_reference.results import baselines_markdown
from gam_bench.docs_reference.schema import schema_markdown

GENERATORS = {"cli": cli_markdown, "suite-schema": schema_markdown, "baselines": baselines_markdown}

__all__ = ["GENERATORS", "baselines_markdown", "cli_markdown", "schema_markdown"]
