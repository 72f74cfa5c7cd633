"""``mmemolr compare``: sweeps over modality subsets, training targets and seeds, with a comparison table.

Names are loaded on first use (PEP 562) so that building the CLI parser does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_table": "aggregate", "format_text": "aggregate", "load_plan": "aggregate", "write_tables": "aggregate",
    "LocalExecutor": "executors", "RayExecutor": "executors", "RunTask": "executors", "execute_task": "executors",
    "make_executor": "executors",
    "PRESETS": "plan", "RunSpec": "plan", "SweepPlan": "plan", "build_plan": "plan", "modality_subsets": "plan",
    "parse_seeds": "plan",
    "paired_test": "stats", "summarize": "stats",
    "SweepReport": "sweep", "make_plan": "sweep", "run_config": "sweep", "run_sweep": "sweep",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmemolr.compare' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mmemolr.compare.{_EXPORTS[name]}"), name)
