"""A sweep folder: sweep.json (the plan), one run folder per training, the table files.

Runs whose folder holds a complete results.json are skipped, partly trained ones resume from last.pt
(run_training does that), so a killed sweep continues where it stopped when the command is rerun.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmemolr.compare.aggregate import (
    ERROR_FILE,
    RESULTS_FILE,
    SWEEP_FILE,
    load_plan,
    run_status,
    write_tables,
)
from mmemolr.compare.executors import LocalExecutor, Outcome, RayExecutor, RunTask
from mmemolr.compare.floor import ensure_floor
from mmemolr.compare.plan import SweepPlan, build_plan, parse_seeds
from mmemolr.compare.preflight import check_sweep
from mmemolr.config import load_config, to_dict
from mmemolr.corpus import Corpus, corpus_dir, load_prepared
from mmemolr.corpus.prepared import canonical_corpus
from mmemolr.fileio import atomic_path, write_json_atomic, write_text_atomic
from mmemolr.fuse import (
    MODALITY_NAMES,
    describe_file,
    load_feature_files,
    normalise_modalities,
    resolve_feature_files,
)
from mmemolr.fuse.sources import CHOOSE_BY_FLAG
from mmemolr.progress import Progress, resolve_mode
from mmemolr.store import find_feature_files, read_features
from mmemolr.train import rundir, tblog
from mmemolr.train.config import TrainConfig, check_train_config, default_config_path


def make_plan(
    corpus: str,
    features_dir: str | Path = "features",
    preset: str = "table6",
    modalities: str | Sequence[str] = "all",
    targets: Sequence[str] | None = None,
    seeds: str | int | Sequence[int] = 5,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    features: dict[str, str] | None = None,
    backbones: Sequence[str] | None = None,
) -> SweepPlan:
    """Check the corpus, its feature files and the base config, then expand the preset."""
    corpus = canonical_corpus(str(corpus), features_dir)
    prepared = load_prepared(corpus, features_dir)
    folder = corpus_dir(corpus, features_dir)
    features = {k: str(Path(v).resolve()) if Path(v).exists() else str(v) for k, v in (features or {}).items()}
    if modalities == "all" or modalities == ["all"]:
        codes = [c for c, name in MODALITY_NAMES.items() if find_feature_files(folder, name) or c in features]
        if not codes:
            raise FileNotFoundError(f"{folder} holds no complete feature file; run `mmemolr extract` first")
    else:
        codes = normalise_modalities(modalities)
    # Missing, ambiguous or damaged files fail here (the check training makes), not in every run; the
    # messages name compare's --features flag.
    load_feature_files(resolve_feature_files(folder, codes, features, choose_with=CHOOSE_BY_FLAG), prepared)
    config_path = Path(config) if config else default_config_path(corpus)
    if config_path is not None and not config_path.exists():
        raise FileNotFoundError(f"config file {config_path} does not exist")
    check_train_config(load_config(TrainConfig, config_path, list(overrides)))
    # Absolute paths: worker processes and Ray tasks may run in another working directory.
    corpus_arg = str(Path(corpus).resolve()) if Path(corpus).is_dir() else str(corpus)
    plan = build_plan(
        preset, corpus=corpus_arg, features_dir=str(Path(features_dir).resolve()), corpus_name=prepared.name,
        corpus_fingerprint=prepared.fingerprint(), modalities=codes, seeds=parse_seeds(seeds), targets=targets,
        config_path=str(config_path.resolve()) if config_path else None, base_overrides=list(overrides),
        features=features, backbones=backbones, has_votes=prepared.has_votes,
    )
    check_votes_available(plan, prepared)
    return plan


def check_votes_available(plan: SweepPlan, corpus: Corpus) -> None:
    """Refuse a sweep with a target built from annotator votes on a corpus that records none."""
    from mmemolr.targets import TARGETS, load_builtin_targets

    load_builtin_targets()
    names = {o.split("=", 1)[1] for spec in plan.runs for o in spec.overrides if o.startswith("target.name=")}
    needing = sorted(n for n in names if n in TARGETS and TARGETS[n].needs_votes)
    if needing and not corpus.has_votes:
        raise ValueError(f"target(s) {', '.join(needing)} train on annotator votes, and corpus {corpus.name!r} records "
                         "none; drop them from --targets or use a corpus with votes")


def run_config(plan: SweepPlan, name: str) -> TrainConfig:
    """The resolved TrainConfig of one run: base YAML <- sweep overrides <- the run's overrides, with its
    epoch budget (mmemolr.train.budget) as run_training resolves it."""
    from mmemolr.train.budget import resolve_budget

    spec = plan.run(name)
    config = load_config(TrainConfig, plan.config_path, [*plan.base_overrides, *spec.overrides])
    config = dataclasses.replace(config, corpus=plan.corpus, features={**config.features, **plan.features})
    return resolve_budget(config, plan.features_dir)


@dataclass
class SweepReport:
    table: dict[str, Any]
    ran: list[str] = field(default_factory=list)  # runs started by this call: trained or failed
    skipped: list[str] = field(default_factory=list)  # complete before this call
    failures: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def trained(self) -> list[str]:
        failed = {f.name for f in self.failures}
        return [name for name in self.ran if name not in failed]


def write_plan(plan: SweepPlan, sweep_dir: Path) -> None:
    """Write sweep.json; an existing sweep of another corpus version is refused."""
    if (sweep_dir / SWEEP_FILE).exists():
        old = load_plan(sweep_dir)
        if old.corpus_fingerprint != plan.corpus_fingerprint:
            raise ValueError(
                f"{sweep_dir} holds a sweep on corpus {old.corpus_name!r} (fingerprint {old.corpus_fingerprint[:12]}), "
                f"not {plan.corpus_name!r} ({plan.corpus_fingerprint[:12]}); choose another --out"
            )
    write_json_atomic(sweep_dir / SWEEP_FILE, plan.to_dict())


def sweep_tasks(plan: SweepPlan, sweep_dir: Path, progress: bool = False,
                tensorboard: str | Path | None = None) -> tuple[list[RunTask], list[str]]:
    """Tasks of the runs still to do, and names of the complete ones. A run folder made with another
    config is an error before anything starts. ``tensorboard``: the runs log there (mmemolr.train.tblog);
    a complete run's log is written here, from its run folder, unless it is up to date."""
    tasks, done = [], []
    described: dict[Path, dict] = {}  # feature file -> its record, each file read once

    def inputs_of(config: TrainConfig) -> dict[str, dict]:
        paths = resolve_feature_files(corpus_dir(config.corpus, plan.features_dir), config.modalities, config.features)
        for path in paths.values():
            if path.resolve() not in described:
                described[path.resolve()] = describe_file(read_features(path))
        return {code: described[path.resolve()] for code, path in paths.items()}

    for spec in plan.runs:
        config = run_config(plan, spec.name)
        run_dir = sweep_dir / spec.name
        wanted = to_dict(config)
        stored = rundir.read_results(run_dir)
        rundir.check_same_config(run_dir, stored.get("config") if stored else rundir.read_config_dict(run_dir), wanted)
        recorded = rundir.recorded_inputs(run_dir)
        if recorded:  # a started or finished run: its features must be the ones it was trained on
            rundir.check_same_inputs(run_dir, recorded, inputs_of(config),
                                     f"restore the original file(s), or delete {run_dir} (or choose another --out) "
                                     "to train it again on the new ones")
        if run_status(run_dir) == "complete":
            done.append(spec.name)
            tblog.attach(tensorboard, run_dir, wanted, complete=rundir.read_results(run_dir))
            continue
        tasks.append(RunTask(name=spec.name, run_dir=str(run_dir.resolve()), sweep_dir=str(sweep_dir.resolve()),
                             config=wanted, features_dir=plan.features_dir, progress=progress,
                             tensorboard=str(Path(tensorboard).resolve()) if tensorboard else None))
    return tasks, done


def _store_files(run_dir: Path, files: dict[str, bytes]) -> None:
    """Files a remote worker sent back; results.json last, as in a local run."""
    for rel in sorted(files, key=lambda r: r == RESULTS_FILE):
        target = run_dir / rel
        if not target.exists() or rel == RESULTS_FILE:
            with atomic_path(target) as tmp:
                tmp.write_bytes(files[rel])


def group_tasks(tasks: list[RunTask], group_size: int | None = None) -> list[RunTask]:
    """The runs as batched groups (mmemolr.train.batched.group_runs): one task per group of at most
    ``group_size`` runs; a group of one stays a plain run. Runs on different modality subsets share a
    group on a CUDA device only: on CPU each subset has its own groups (measured, docs/batched.md)."""
    from mmemolr.config import from_dict
    from mmemolr.train.batched import group_runs
    from mmemolr.train.device import resolve_device

    configs = [from_dict(TrainConfig, t.config) for t in tasks]
    mixed = bool(configs) and resolve_device(configs[0].device).type == "cuda"
    out = []
    for members in group_runs(configs, group_size, mixed_subsets=mixed):
        first = tasks[members[0]]
        if len(members) == 1:
            out.append(first)
            continue
        out.append(dataclasses.replace(first, members=[
            {"name": tasks[i].name, "run_dir": tasks[i].run_dir, "config": tasks[i].config} for i in members]))
    return out


def batched_default(plan: SweepPlan) -> bool:
    """--batched when not given: on where it was measured faster (a CUDA device), off on CPU
    (docs/batched.md)."""
    from mmemolr.train.device import resolve_device

    return resolve_device(run_config(plan, plan.runs[0].name).device).type == "cuda" if plan.runs else False


def run_sweep(plan: SweepPlan, sweep_dir: str | Path, executor: LocalExecutor | RayExecutor,
              progress: bool | str = True, batched: bool | None = False,
              group_size: int | None = None, tensorboard: str | Path | None = None) -> SweepReport:
    """Run every unfinished run of ``plan`` in ``sweep_dir``; rewrite the table after each one.

    ``batched``: train the runs that differ only in seed and modalities as one batched model per group
    of at most ``group_size`` (mmemolr.train.batched; one executor task per group); None: the
    measured default (:func:`batched_default`).

    ``tensorboard``: every run also writes a TensorBoard log into ``<tensorboard>/<run name>``
    (mmemolr.train.tblog; from the process that trains it).

    ``progress``: True a bar on a terminal (with each run's epoch bar when one job runs here) and one line
    per finished run otherwise, ``"lines"`` those lines always, False nothing.
    """
    sweep_dir = Path(sweep_dir)
    check_sweep(plan, sweep_dir)  # every run's inputs, before anything trains
    sweep_dir.mkdir(parents=True, exist_ok=True)
    ensure_floor(plan, sweep_dir)  # generalization: the context-free floor beside the table (~20 s)
    single = isinstance(executor, LocalExecutor) and executor.jobs == 1
    mode = resolve_mode(progress)
    tasks, done = sweep_tasks(plan, sweep_dir, progress=mode == "bar" and single, tensorboard=tensorboard)
    if batched is None:
        batched = batched_default(plan)
    if batched and tasks:
        tasks = group_tasks(tasks, group_size)
    write_plan(plan, sweep_dir)
    report = SweepReport(table=write_tables(sweep_dir, plan), skipped=done)
    start = time.perf_counter()
    bar = Progress(len(plan.runs), f"compare {plan.preset} on {plan.corpus_name}", "run", initial=len(done),
                   progress=mode if tasks else False, every=1)
    try:
        for outcome in executor.map(tasks):
            run_dir = sweep_dir / outcome.name
            if outcome.files:
                _store_files(run_dir, outcome.files)
            if outcome.status == "complete":
                (run_dir / ERROR_FILE).unlink(missing_ok=True)
                status = f"{outcome.name}: test W-F1 {100 * outcome.test.get('weighted_f1', 0):.2f}"
            else:
                write_text_atomic(run_dir / ERROR_FILE, f"{outcome.error}\n\n{outcome.traceback or ''}")
                report.failures.append(outcome)
                status = f"{outcome.name}: FAILED"
            report.ran.append(outcome.name)
            report.table = write_tables(sweep_dir, plan)
            bar.update(1, status)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    return report
