"""Check every planned run of a sweep before any trains: one list of problems instead of runs that fail.

Checked: the corpus (unchanged since planning, labelled with train/dev/test), every run's resolved
config, every feature file the unfinished runs need (present, complete, of this corpus, covering it,
finite, at least one training vector) and that finished runs were trained on the features the corpus
folder holds now (by content: mmemolr.store.identity). Feature files are checked with
``mmemolr.fuse.feature_file_problems``, the one place that says whether a file can be trained on.
"""

from __future__ import annotations

from pathlib import Path

from mmemolr.compare.aggregate import read_results, run_status
from mmemolr.compare.plan import SweepPlan
from mmemolr.config import ConfigError, to_dict
from mmemolr.corpus import corpus_dir, load_prepared
from mmemolr.fuse import check_training_corpus, feature_file_problems, resolve_feature_files
from mmemolr.store import feature_mismatches, read_attrs
from mmemolr.train import rundir
from mmemolr.train.config import check_train_config

SHOWN_RUNS = 3


class SweepCheckError(ValueError):
    """Problems found before training; nothing was trained."""


def _runs(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_RUNS]) + (f", … ({len(names)} runs)" if len(names) > SHOWN_RUNS else "")
    return f"run{'s' if len(names) > 1 else ''} {shown}"


def preflight(plan: SweepPlan, sweep_dir: str | Path) -> list[str]:
    """The problems that would make runs of ``plan`` fail or be stale; empty when all can go ahead."""
    from mmemolr.compare.sweep import run_config

    sweep_dir = Path(sweep_dir)
    try:
        corpus = load_prepared(plan.corpus, plan.features_dir)
    except (OSError, ValueError) as err:
        return [str(err)]
    problems: list[str] = []
    if corpus.fingerprint() != plan.corpus_fingerprint:
        problems.append(f"the prepared corpus {plan.corpus!r} changed since this sweep was planned (fingerprint "
                        f"{corpus.fingerprint()[:12]}, planned {plan.corpus_fingerprint[:12]}); choose another --out")
    try:
        check_training_corpus(corpus)
    except ValueError as err:
        problems.append(str(err))
    folder = corpus_dir(plan.corpus, plan.features_dir)
    by_message: dict[str, list[str]] = {}
    needs: dict[str, list[str]] = {}  # modality code -> unfinished runs that need it
    finished = []
    for spec in plan.runs:
        run_dir = sweep_dir / spec.name
        try:
            config = run_config(plan, spec.name)
            check_train_config(config)
            stored = rundir.read_results(run_dir)
            rundir.check_same_config(run_dir, stored.get("config") if stored else rundir.read_config_dict(run_dir),
                                     to_dict(config))
        except (ConfigError, ValueError) as err:
            by_message.setdefault(str(err), []).append(spec.name)
            continue
        if run_status(run_dir) == "complete":
            finished.append((spec.name, config.modalities))
            continue
        for code in config.modalities:
            needs.setdefault(code, []).append(spec.name)
    problems += [f"{message} ({_runs(names)})" for message, names in by_message.items()]
    files: dict[str, Path] = {}
    for code in dict.fromkeys([*needs, *(c for _, codes in finished for c in codes)]):
        try:
            files[code] = resolve_feature_files(folder, [code], plan.features)[code]
        except (OSError, ValueError) as err:
            if code in needs:
                problems.append(f"{err} ({_runs(needs[code])})")
            continue
        if code in needs:
            problems += [f"{p} ({_runs(needs[code])})" for p in feature_file_problems(files[code], corpus, code)]
    for name, codes in finished:
        found = {code: (files[code], read_attrs(files[code])) for code in codes if code in files}
        stale = feature_mismatches((read_results(sweep_dir / name) or {}).get("feature_files") or {}, found)
        if stale:
            problems.append(f"run {name} is complete but was trained on other features than {folder} holds now: "
                            + "; ".join(stale) + f"; delete {sweep_dir / name} to train it again, or choose another --out")
    return problems


def check_sweep(plan: SweepPlan, sweep_dir: str | Path) -> None:
    """Raise :class:`SweepCheckError` listing every problem :func:`preflight` finds."""
    problems = preflight(plan, sweep_dir)
    if problems:
        raise SweepCheckError(f"{len(problems)} problem(s) found before training, so nothing was trained:\n"
                              + "\n".join(f"  - {p}" for p in problems)
                              + "\nfix them and rerun the same command")
