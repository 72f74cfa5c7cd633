"""TensorBoard logs of training runs (``--tensorboard DIR`` of ``mmemolr train`` and ``compare``).

Each run logs into ``DIR/<run folder name>``, from the process that trains it, through
``torch.utils.tensorboard`` (the ``tensorboard`` package: ``pip install 'mmemolr[tensorboard]'``):

- per epoch (step = epoch), every number of the epoch's metrics.csv row: ``loss/train``, ``loss/dev``,
  ``dev/accuracy``, ``dev/weighted_f1``, ``dev/macro_f1``, ``time/epoch_seconds`` and, for refining
  targets, the refinement diagnostics of the dev split ``refinement_dev/<name>`` (:func:`tag`); as
  TensorBoard's scalars (float32: metrics.json's value rounded to float32, within 6e-8 relative of it);
- at the end: the hparams (modalities, target, backbone, seed and, in a sweep, every config key that differs
  between the sweep's runs) with the final dev and test metrics (``hparam/...``, at the selected epoch), so
  TensorBoard's HParams view compares the runs; and, for a refining target, the learned-confusion heatmap
  of the test split as an image.

The log mirrors the run's history: the first write of a process (a new, resumed or finished run) removes
the run's earlier event files and writes the history from the run's state again (with ``purge_step=1``,
so a TensorBoard that has read the old files drops them too), then appends each epoch. A run killed at
any point and resumed has each epoch logged exactly once, with the values of its metrics.csv.

Hooks: :func:`attach` (mmemolr.train.run.begin_run), :func:`log_epochs` (mmemolr.train.rundir.write_metrics,
which both trainers call after each epoch) and :func:`log_final` (finish_run); each is a no-op for a run
without a log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
EVENTS_GLOB = "events.out.tfevents.*"
# metrics.csv column -> tag; columns not listed: valid_<x> -> dev/<x>, valid_refine_<x> -> refinement_dev/<x>
# (mmemolr.targets.diagnostics.epoch_diagnostics), anything else epoch/<column>.
TAGS = {"train_loss": "loss/train", "valid_loss": "loss/dev", "seconds": "time/epoch_seconds"}
FINAL_METRICS = ("weighted_f1", "accuracy", "macro_f1")
MISSING = ("--tensorboard needs the tensorboard package: pip install 'mmemolr[tensorboard]' "
           "(scripts/setup.sh installs it)")

_logs: dict[Path, RunLog] = {}


def require() -> None:
    """Fail early, with what to install, when torch.utils.tensorboard cannot be used."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise RuntimeError(MISSING) from None


def tag(column: str) -> str:
    """The TensorBoard tag of a metrics.csv column."""
    if column in TAGS:
        return TAGS[column]
    if column.startswith("valid_refine_"):
        return "refinement_dev/" + column.removeprefix("valid_refine_")
    if column.startswith("valid_"):
        return "dev/" + column.removeprefix("valid_")
    return "epoch/" + column


def log_dir(root: str | Path, run_dir: str | Path) -> Path:
    return Path(root) / Path(run_dir).name


class RunLog:
    """The TensorBoard log of one run; the writer opens at the first write (in the training process)."""

    def __init__(self, root: str | Path, run_dir: str | Path, config: dict[str, Any]) -> None:
        self.dir = log_dir(root, run_dir)
        self.run_dir = Path(run_dir)
        self.config = config
        self.writer = None
        self.written = 0

    def _open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir.mkdir(parents=True, exist_ok=True)
        old = sorted(self.dir.glob(EVENTS_GLOB))
        for path in old:  # the history is written again below: the log holds each epoch once
            path.unlink()
        self.writer = SummaryWriter(str(self.dir), purge_step=1 if old else None)

    def epochs(self, history: Sequence[dict[str, Any]]) -> None:
        """Write the rows of ``history`` this process has not written (all of them at its first call)."""
        if self.writer is None:
            self._open()
        for row in history[self.written:]:
            for column, value in row.items():
                if column != "epoch" and _number(value):
                    self.writer.add_scalar(tag(column), float(value), int(row["epoch"]))
        self.written = len(history)
        self.writer.flush()

    def final(self, history: Sequence[dict[str, Any]], results: dict[str, Any]) -> None:
        """The history (if this process wrote none of it), the hparams with the final metrics, the
        learned-confusion image; then the log is closed."""
        from torch.utils.tensorboard.summary import hparams

        self.epochs(history)
        step = int(results.get("best_epoch") or 0)
        metrics = {f"hparam/{split}_{key}": float(results[split][key])
                   for split in ("valid", "test") for key in FINAL_METRICS
                   if _number((results.get(split) or {}).get(key))}
        metrics["hparam/best_epoch"] = float(step)
        for item in hparams(run_hparams(self.config, self.run_dir), metrics):
            self.writer.file_writer.add_summary(item, step)
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        refined = (results.get("refinement") or {}).get("test")
        if refined:
            from mmemolr.report.figures import learned_confusion_figure

            fig = learned_confusion_figure([(f"{self.run_dir.name}: {refined.get('verdict')}", refined["confusion"])],
                                           results["labels"])
            self.writer.add_figure("refinement/learned_confusion_test", fig, step)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run_hparams(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """What identifies the run in TensorBoard's HParams view: modalities, target, backbone, seed and, when
    the run folder is in a sweep folder, every config key that differs between the sweep's runs."""
    from mmemolr.train.rundir import flatten

    flat = flatten(config)
    out: dict[str, Any] = {
        "modalities": "+".join(config.get("modalities") or []),
        "target": (config.get("target") or {}).get("name"),
        "backbone": (config.get("model") or {}).get("backbone"),
        "seed": config.get("seed"),
    }
    for key in sweep_keys(run_dir):
        if key not in ("modalities", "target.name", "model.backbone", "seed"):
            out[key] = _hparam_value(flat.get(key))
    return out


def _hparam_value(value: Any) -> Any:
    """Numbers and text as they are; booleans as "true"/"false" (TensorBoard would show 1.0/0.0), lists as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, (int, float, str)):
        return value
    return str(value)


def sweep_keys(run_dir: Path) -> list[str]:
    """Config keys (flattened, e.g. ``target.sim_ctx``) whose values differ between the runs of the sweep
    that ``run_dir`` belongs to; empty for a run outside a sweep folder."""
    from mmemolr.compare.aggregate import SWEEP_FILE, load_plan

    sweep = Path(run_dir).parent
    if not (sweep / SWEEP_FILE).exists():
        return []
    from mmemolr.compare.sweep import run_config
    from mmemolr.config import to_dict
    from mmemolr.train.rundir import flatten

    plan = load_plan(sweep)
    flats = [flatten(to_dict(run_config(plan, spec.name))) for spec in plan.runs]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


def attach(root: str | Path | None, run_dir: str | Path, config: dict[str, Any],
           complete: dict[str, Any] | None = None) -> None:
    """Start the log of the run in ``run_dir`` (nothing when ``root`` is None). ``complete``: the stored
    results of a finished run, whose log is then written from its run folder unless it is up to date."""
    key = Path(run_dir).resolve()
    old = _logs.pop(key, None)
    if old is not None:
        old.close()
    if root is None:
        return
    require()
    run_log = RunLog(root, run_dir, config)
    if complete is None:
        _logs[key] = run_log
        return
    if _up_to_date(run_log.dir, Path(run_dir)):
        return
    from mmemolr.train import rundir

    run_log.final(rundir.read_history(run_dir), complete)


def _up_to_date(directory: Path, run_dir: Path) -> bool:
    """A finished run's log is up to date when an event file was written after its results.json."""
    results = run_dir / "results.json"
    files = list(directory.glob(EVENTS_GLOB)) if directory.is_dir() else []
    return bool(files) and max(p.stat().st_mtime_ns for p in files) >= results.stat().st_mtime_ns


def log_epochs(run_dir: str | Path, history: Sequence[dict[str, Any]]) -> None:
    run_log = _logs.get(Path(run_dir).resolve())
    if run_log is not None:
        run_log.epochs(history)


def log_final(run_dir: str | Path, history: Sequence[dict[str, Any]], results: dict[str, Any]) -> None:
    run_log = _logs.pop(Path(run_dir).resolve(), None)
    if run_log is not None:
        run_log.final(history, results)
