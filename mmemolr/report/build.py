"""``make_report``: the table (for a sweep) and every figure, rebuilt from run folders alone."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.compare.aggregate import SWEEP_FILE, load_plan, write_tables
from mmemolr.compare.plan import ETA_BASELINE, SweepPlan
from mmemolr.report import figures
from mmemolr.report.runs import RunData, load_run
from mmemolr.targets.diagnostics import distance_from_class_mean

EXAMPLES = 4


def _wf1(run: RunData) -> str:
    return f"test W-F1 {100 * run.results['test']['weighted_f1']:.2f}"


def choose_pair(runs: Sequence[RunData]) -> tuple[RunData | None, RunData | None]:
    """A one-hot run and an RLD run (full model) with the same modalities and seed: most modalities,
    then the smallest seed. Either may be None when the runs have no such partner."""
    def key(r: RunData) -> tuple:
        return (tuple(sorted(r.modalities)), r.seed)

    onehot = {key(r): r for r in runs if r.target.get("name") == "onehot"}
    rld = defaultdict(list)
    for r in runs:
        t = r.target
        if t.get("name") == "rld" and t.get("sim_speaker", True) and t.get("sim_ctx", True):
            rld[key(r)].append(r)

    def best_rld(candidates: list[RunData]) -> RunData:
        # The paper's η, then a run whose target refines (docs/training.md, diagnostics), then by name.
        return min(candidates, key=lambda r: (abs(float(r.target.get("eta", ETA_BASELINE)) - ETA_BASELINE),
                                              r.verdict() != "refines", r.path.name))

    order = sorted(set(onehot) | set(rld), key=lambda k: (-len(k[0]), k[1]))
    paired = [k for k in order if k in onehot and k in rld]
    if paired:
        return onehot[paired[0]], best_rld(rld[paired[0]])
    if rld:
        return None, best_rld(rld[order[0]] if order[0] in rld else next(iter(rld.values())))
    return (onehot[order[0]], None) if order else (None, None)


def choose_examples(rows: list[dict[str, str]], labels: Sequence[str], prefix: str,
                    wanted: Sequence[str] | None = None, count: int = EXAMPLES) -> list[dict[str, str]]:
    """The rows of ``wanted`` ids, or the utterances whose refined target differs most from the mean
    target of their gold class (what refinement says about this utterance in particular, not about its
    class), one per gold class so the figure shows several emotions."""
    by_id = {r["utterance_id"]: r for r in rows}
    if wanted:
        missing = [uid for uid in wanted if uid not in by_id]
        if missing:
            raise ValueError(f"utterance(s) {missing} are not in the test predictions; pick test utterance ids "
                             f"(e.g. {list(by_id)[:3]})")
        return [by_id[uid] for uid in wanted]
    labelled = [r for r in rows if r.get("gold") in labels]
    if not labelled:
        return []
    z = np.array([_probs(r, prefix, labels) for r in labelled])
    gold = np.array([list(labels).index(r["gold"]) for r in labelled])
    distance = distance_from_class_mean(z, gold)
    scored = sorted(zip(distance, (r["utterance_id"] for r in labelled), labelled), key=lambda s: (-s[0], s[1]))
    chosen, seen = [], set()
    for _, _, r in scored:
        if r["gold"] not in seen:
            chosen.append(r)
            seen.add(r["gold"])
        if len(chosen) == count:
            break
    return chosen


def _probs(row: dict[str, str], prefix: str, labels: Sequence[str]) -> np.ndarray:
    return np.array([float(row[f"{prefix}_{lab}"]) for lab in labels])


def refinement_figure(rld: RunData, onehot: RunData | None, out: Path, wanted: Sequence[str] | None) -> Path | None:
    prefix = rld.refined_prefix()
    rows = rld.predictions()
    if prefix is None or not rows:
        return None
    labels = rld.labels
    chosen = choose_examples(rows, labels, prefix, wanted)
    if not chosen:
        return None
    other = {r["utterance_id"]: r for r in (onehot.predictions() or [])} if onehot else {}
    names = ["one-hot label", f"refined target ({prefix.upper()})", "prediction, RLD run"]
    if other:
        names.append("prediction, one-hot run")
    examples = []
    for r in chosen:
        series = {names[0]: np.array([1.0 if lab == r["gold"] else 0.0 for lab in labels]),
                  names[1]: _probs(r, prefix, labels), names[2]: _probs(r, "prob", labels)}
        if r["utterance_id"] in other:
            series[names[3]] = _probs(other[r["utterance_id"]], "prob", labels)
        examples.append({"id": r["utterance_id"], "text": r.get("text", ""), "gold": r["gold"], "series": series})
    return figures.refinement_panels(examples, labels, out / "refinement.png", names)


def tsne_figure(runs: Sequence[tuple[str, RunData]], out: Path, max_points: int) -> Path | None:
    panels = []
    base_ids = None
    for title, run in runs:
        states = run.states()
        if states is None:
            continue
        ids = [str(i) for i in states["ids"]]
        if base_ids is None:
            base_ids = ids
        elif ids != base_ids:  # same utterances in the same order in every panel
            pos = {uid: i for i, uid in enumerate(ids)}
            if set(pos) != set(base_ids):
                raise ValueError(f"{run.path} covers other test utterances than {runs[0][1].path}")
            idx = np.array([pos[uid] for uid in base_ids])
            states = {k: v[idx] for k, v in states.items()}
        panels.append((f"{title}\n{run.path.name}, {_wf1(run)}", states["emotion_states"], states["labels"]))
    if not panels:
        return None
    labels = runs[0][1].labels
    return figures.tsne_panels(panels, labels, out / "tsne.png", max_points=max_points)


def _mean_per_class(runs: Sequence[RunData], labels: Sequence[str]) -> np.ndarray:
    return np.mean([[r.results["test"]["per_class_f1"][lab] for lab in labels] for r in runs], axis=0)


def report_sweep(sweep_dir: Path, out: Path, utterances: Sequence[str] | None = None, tsne: bool = True,
                 tsne_max: int = 2000) -> dict[str, Any]:
    plan: SweepPlan = load_plan(sweep_dir)
    table = write_tables(sweep_dir, plan)
    made: dict[str, Any] = {"table": sweep_dir / "table.md"}
    cell_runs: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    all_runs = []
    for spec in plan.runs:
        run = load_run(sweep_dir / spec.name)
        if run is not None:
            cell_runs[(spec.row, spec.column)].append(run)
            all_runs.append(run)
    if not all_runs:
        return made
    made["comparison"] = figures.comparison_bars(table, out / "comparison.png")
    labels = all_runs[0].labels
    single = len(plan.columns) == 1
    cells = [(row, col) for row in plan.rows for col in plan.columns if cell_runs.get((row, col))]
    names = [row if single else f"{row} / {col}" for row, col in cells]
    support = [all_runs[0].results["test"].get("support", {}).get(lab, 0) for lab in labels]
    made["per_class_f1"] = figures.per_class_f1_heatmap(
        names, np.array([_mean_per_class(cell_runs[c], labels) for c in cells]), labels, out / "per_class_f1.png",
        support=support)
    matrices = [(name + f" ({len(cell_runs[c])} seed(s))",
                 np.sum([np.array(r.results["test"]["confusion_matrix"]) for r in cell_runs[c]], axis=0))
                for name, c in zip(names, cells)]
    made["confusion"] = figures.confusion_grid(matrices, labels, out / "confusion.png",
                                               ncols=len(plan.columns) if not single else min(4, len(matrices)))
    learned = [(f"{name} ({len(cell_runs[c])} seed(s))", table_cell["refinement"]["confusion"])
               for name, c in zip(names, cells)
               for table_cell in table["cells"] if (table_cell["row"], table_cell["column"]) == c
               and table_cell.get("refinement")]
    if learned:
        made["learned_confusion"] = figures.learned_confusion_grid(learned, labels, out / "learned_confusion.png")
    onehot, rld = choose_pair(all_runs)
    pair = [(t, r) for t, r in (("one-hot", onehot), ("RLD", rld)) if r is not None]
    if tsne and pair:
        made["tsne"] = tsne_figure(pair, out, tsne_max)
    if rld is not None:
        made["refinement"] = refinement_figure(rld, onehot, out, utterances)
    return {k: v for k, v in made.items() if v is not None}


def report_run(run_dir: Path, out: Path, utterances: Sequence[str] | None = None, tsne: bool = True,
               tsne_max: int = 2000) -> dict[str, Any]:
    run = load_run(run_dir)
    if run is None:
        raise FileNotFoundError(f"{run_dir} has no complete results.json: the run is unfinished or this is "
                                "not a run folder (rerun `mmemolr train` to finish it)")
    labels = run.labels
    test = run.results["test"]
    made: dict[str, Any] = {}
    name = f"{run.path.name} ({run.target.get('name', '?')})"
    made["per_class_f1"] = figures.per_class_f1_heatmap(
        [name], np.array([[test["per_class_f1"][lab] for lab in labels]]), labels, out / "per_class_f1.png",
        support=[test.get("support", {}).get(lab, 0) for lab in labels])
    made["confusion"] = figures.confusion_grid([(name, np.array(test["confusion_matrix"]))], labels,
                                               out / "confusion.png")
    if tsne:
        made["tsne"] = tsne_figure([(run.target.get("name", ""), run)], out, tsne_max)
    if run.refined_prefix():
        made["refinement"] = refinement_figure(run, None, out, utterances)
    refined = (run.results.get("refinement") or {}).get("test")
    if refined:
        made["learned_confusion"] = figures.learned_confusion_grid(
            [(f"{name}: {refined['verdict']}", refined["confusion"])], labels, out / "learned_confusion.png")
    return {k: v for k, v in made.items() if v is not None}


def make_report(path: str | Path, out: str | Path | None = None, utterances: Sequence[str] | None = None,
                tsne: bool = True, tsne_max: int = 2000) -> dict[str, Any]:
    """Figures (and, for a sweep, the table files) for a sweep folder or a single run folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; give a sweep folder (with {SWEEP_FILE}) or a run folder")
    out = Path(out) if out else path / "figures"
    if (path / SWEEP_FILE).exists():
        return report_sweep(path, out, utterances, tsne, tsne_max)
    return report_run(path, out, utterances, tsne, tsne_max)
