"""gam-bench: long-context scaling benchmarks for sequence models.

Importing this package is cheap: it does not import torch, ray or datasets.
"""

__version__ = "0.2.0"  # the only version; CHANGELOG.md's newest release (a test checks)
