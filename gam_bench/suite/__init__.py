"""Suite files: the validated YAML description of a sweep (`gam_bench.cell.expand` makes its cells).

`schema` holds the pydantic models of a suite's body; `loading` reads a file, merges its
per-device profiles, imports its plugins and validates the task's section through the task.
The file format is described in `loading` and suites/README.md. No torch here.
"""

from gam_bench.settings import Compile, DType, Level, Limits, Measure
from gam_bench.suite.loading import deep_merge, import_plugin, load_suite, suite_from_dict
from gam_bench.suite.schema import CELL_AXES, Axes, ModelEntry, Suite, SuiteConfig, modes_of

__all__ = [  # the shared settings types are gam_bench.settings', re-exported for the suite format's users
    "CELL_AXES",
    "Compile",
    "DType",
    "Level",
    "Limits",
    "Measure",
    "Axes",
    "ModelEntry",
    "Suite",
    "SuiteConfig",
    "deep_merge",
    "import_plugin",
    "load_suite",
    "modes_of",
    "suite_from_dict",
]
