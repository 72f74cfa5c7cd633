"""``mmemolr report``: figures of a run or a sweep (PNG via matplotlib's Agg backend)."""

from mmemolr.report.build import choose_examples, choose_pair, make_report
from mmemolr.report.runs import RunData, load_run

__all__ = ["RunData", "choose_examples", "choose_pair", "load_run", "make_report"]
