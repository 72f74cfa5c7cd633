"""``mmemolr compare``: sweeps over modality subsets, training targets and seeds, with a comparison table."""

from mmemolr.compare.aggregate import build_table, format_text, load_plan, write_tables
from mmemolr.compare.executors import LocalExecutor, RayExecutor, RunTask, execute_task, make_executor
from mmemolr.compare.plan import PRESETS, RunSpec, SweepPlan, build_plan, modality_subsets, parse_seeds
from mmemolr.compare.stats import paired_test, summarize
from mmemolr.compare.sweep import SweepReport, make_plan, run_config, run_sweep

__all__ = [
    "PRESETS", "LocalExecutor", "RayExecutor", "RunSpec", "RunTask", "SweepPlan", "SweepReport", "build_plan",
    "build_table", "execute_task", "format_text", "load_plan", "make_executor", "make_plan", "modality_subsets",
    "paired_test", "parse_seeds", "run_config", "run_sweep", "summarize", "write_tables",
]
