"""gam-bench: long-context scaling benchmarks for sequence models.

Importing this package is cheap: it does not import torch, ray or datasets.
"""

__version__ = "0.1.0"
