"""``make_report``: the table (for a sweep) and every figure, rebuilt from run folders alone."""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.compare.aggregate import SWEEP_FILE, load_plan, write_tables
from mmemolr.compare.floor import ensure_floor
from mmemolr.compare.plan import ETA_BASELINE, SweepPlan
from mmemolr.fileio import write_json_atomic
from mmemolr.report import figures
from mmemolr.report.runs import RunData, load_run
from mmemolr.targets.diagnostics import distance_from_class_mean

# Figure panels of the refinement figure: None = one per gold emotion (the run's labels).
EXAMPLES: int | None = None
CACHE_FILE = "figures.json"


class Figures(dict):
    """Figure name -> PNG path; ``reused`` names the figures kept from an earlier call (inputs unchanged)."""

    def __init__(self) -> None:
        super().__init__()
        self.reused: set[str] = set()


class FigureCache:
    """Draw each figure once: ``<out>/figures.json`` keeps, per figure, a key over its inputs (the run files
    it reads, by size and modification time), its options and the code that draws it; a figure whose key
    is unchanged and whose PNG exists is kept, not drawn again (``compare`` draws, ``report`` reuses)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / CACHE_FILE
        try:
            self.entries: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        except (OSError, json.JSONDecodeError):
            self.entries = {}
        self.made = Figures()

    @staticmethod
    def key(inputs: Sequence[Path], params: Any) -> str:
        stamps = [[str(p), p.stat().st_size, p.stat().st_mtime_ns] if p.exists() else [str(p)] for p in inputs]
        code = [Path(m.__file__).read_bytes().decode("utf-8", "replace") for m in (figures, sys.modules[__name__])]
        blob = json.dumps({"inputs": stamps, "params": params, "code": code}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def draw(self, name: str, inputs: Sequence[Path], params: Any, draw: Callable[[], Path | None]) -> None:
        key = self.key(inputs, params)
        entry = self.entries.get(name)
        if entry and entry.get("key") == key and (self.out / entry["file"]).exists():
            self.made[name] = self.out / entry["file"]
            self.made.reused.add(name)
            return
        path = draw()
        if path is None:
            self.entries.pop(name, None)
            return
        self.made[name] = path
        self.entries[name] = {"key": key, "file": Path(path).name}

    def save(self) -> Figures:
        if self.entries:
            write_json_atomic(self.path, self.entries)
        return self.made


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
                    wanted: Sequence[str] | None = None, count: int | None = EXAMPLES) -> list[dict[str, str]]:
    """The rows of ``wanted`` ids, or the utterances whose refined target differs most from the mean
    target of their gold class (what refinement says about this utterance in particular, not about its
    class), one per gold class (``count`` None: every class that has test utterances) so the figure shows
    several emotions."""
    count = len(labels) if count is None else count
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


def refinement_examples(rld: RunData, onehot: RunData | None,
                        wanted: Sequence[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The case studies of the refinement figure (and of report.html): per chosen test utterance its id,
    text, gold label and ``series`` (one-hot label, refined target, predictions) over the labels; and the
    series' names. Empty when the run has no refined distributions."""
    prefix = rld.refined_prefix()
    rows = rld.predictions()
    if prefix is None or not rows:
        return [], []
    labels = rld.labels
    chosen = choose_examples(rows, labels, prefix, wanted)
    other = {r["utterance_id"]: r for r in (onehot.predictions() or [])} if onehot else {}
    votes = f"votes_{labels[0]}" in chosen[0]
    names = ["one-hot label", *(["annotators' votes"] if votes else []), f"refined target ({prefix.upper()})",
             "prediction, RLD run"]
    if other:
        names.append("prediction, one-hot run")
    examples = []
    for r in chosen:
        series = {"one-hot label": np.array([1.0 if lab == r["gold"] else 0.0 for lab in labels]),
                  f"refined target ({prefix.upper()})": _probs(r, prefix, labels),
                  "prediction, RLD run": _probs(r, "prob", labels)}
        if votes:  # the share of the utterance's votes per label (votes outside the label set left out)
            counts = _probs(r, "votes", labels)
            if counts.sum() > 0:
                series["annotators' votes"] = counts / counts.sum()
        if r["utterance_id"] in other:
            series["prediction, one-hot run"] = _probs(other[r["utterance_id"]], "prob", labels)
        examples.append({"id": r["utterance_id"], "text": r.get("text", ""), "gold": r["gold"], "series": series})
    return examples, names


def refinement_figure(rld: RunData, onehot: RunData | None, out: Path, wanted: Sequence[str] | None) -> Path | None:
    examples, names = refinement_examples(rld, onehot, wanted)
    if not examples:
        return None
    return figures.refinement_panels(examples, rld.labels, out / "refinement.png", names)


def curves_figure(panels: Sequence[tuple[str, Sequence[RunData]]], out: Path) -> Path | None:
    """figures/curves.png: one panel per setting (``panels``: title, its runs), one line per run."""
    drawn = []
    for title, runs in panels:
        lines = [(f"seed {r.seed}", r.history(), int(r.results.get("best_epoch") or 0)) for r in runs]
        lines = [line for line in lines if line[1]]
        if lines:
            drawn.append((title, lines))
    if not drawn:
        return None
    return figures.training_curves(drawn, out / "curves.png", ncols=min(3, len(drawn)))


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


def _run_files(runs: Sequence[RunData], *names: str) -> list[Path]:
    return [r.path / name for r in runs for name in ("results.json", *names)]


def report_sweep(sweep_dir: Path, out: Path, utterances: Sequence[str] | None = None, tsne: bool = True,
                 tsne_max: int = 2000) -> Figures:
    plan: SweepPlan = load_plan(sweep_dir)
    ensure_floor(plan, sweep_dir, inputs_required=False)
    table = write_tables(sweep_dir, plan)
    cache = FigureCache(out)
    cache.made["table"] = sweep_dir / "table.md"
    cell_runs: dict[tuple[str, str], list[RunData]] = defaultdict(list)
    all_runs = []
    for spec in plan.runs:
        run = load_run(sweep_dir / spec.name)
        if run is not None:
            cell_runs[(spec.row, spec.column)].append(run)
            all_runs.append(run)
    if not all_runs:
        return cache.made
    shown = {k: table.get(k) for k in ("preset", "corpus", "rows", "columns", "seeds", "cells", "comparisons", "floor")}
    cache.draw("comparison", [], shown, lambda: figures.comparison_bars(table, out / "comparison.png"))
    labels = all_runs[0].labels
    single = len(plan.columns) == 1
    cells = [(row, col) for row in plan.rows for col in plan.columns if cell_runs.get((row, col))]
    names = [row if single else f"{row} / {col}" for row, col in cells]
    support = [all_runs[0].results["test"].get("support", {}).get(lab, 0) for lab in labels]
    cache.draw("curves", _run_files(all_runs, "metrics.json"), names,
               lambda: curves_figure([(name, cell_runs[c]) for name, c in zip(names, cells)], out))
    cache.draw("per_class_f1", _run_files(all_runs), names, lambda: figures.per_class_f1_heatmap(
        names, np.array([_mean_per_class(cell_runs[c], labels) for c in cells]), labels, out / "per_class_f1.png",
        support=support))

    def confusion() -> Path:
        matrices = [(name + f" ({len(cell_runs[c])} seed(s))",
                     np.sum([np.array(r.results["test"]["confusion_matrix"]) for r in cell_runs[c]], axis=0))
                    for name, c in zip(names, cells)]
        return figures.confusion_grid(matrices, labels, out / "confusion.png",
                                      ncols=len(plan.columns) if not single else min(4, len(matrices)))

    cache.draw("confusion", _run_files(all_runs), names, confusion)
    learned = [(f"{name} ({len(cell_runs[c])} seed(s))", table_cell["refinement"]["confusion"])
               for name, c in zip(names, cells)
               for table_cell in table["cells"] if (table_cell["row"], table_cell["column"]) == c
               and table_cell.get("refinement")]
    annotators = next((r.results["annotator_confusion"] for r in all_runs if r.results.get("annotator_confusion")), None)
    if learned and annotators:
        learned.append(("annotators (train votes)", annotators))
    if learned:
        cache.draw("learned_confusion", _run_files(all_runs), [n for n, _ in learned],
                   lambda: figures.learned_confusion_grid(learned, labels, out / "learned_confusion.png"))
    onehot, rld = choose_pair(all_runs)
    pair = [(t, r) for t, r in (("one-hot", onehot), ("RLD", rld)) if r is not None]
    if tsne and pair:
        cache.draw("tsne", _run_files([r for _, r in pair], "test_states.npz"), tsne_max,
                   lambda: tsne_figure(pair, out, tsne_max))
    if rld is not None:
        both = [r for r in (rld, onehot) if r is not None]
        cache.draw("refinement", _run_files(both, "predictions.csv"), list(utterances or []),
                   lambda: refinement_figure(rld, onehot, out, utterances))
    return cache.save()


def report_run(run_dir: Path, out: Path, utterances: Sequence[str] | None = None, tsne: bool = True,
               tsne_max: int = 2000) -> Figures:
    run = load_run(run_dir)
    if run is None:
        raise FileNotFoundError(f"{run_dir} has no complete results.json: the run is unfinished or this is "
                                "not a run folder (rerun `mmemolr train` to finish it)")
    labels = run.labels
    test = run.results["test"]
    cache = FigureCache(out)
    name = f"{run.path.name} ({run.target.get('name', '?')})"
    cache.draw("curves", _run_files([run], "metrics.json"), name, lambda: curves_figure([(name, [run])], out))
    cache.draw("per_class_f1", _run_files([run]), name, lambda: figures.per_class_f1_heatmap(
        [name], np.array([[test["per_class_f1"][lab] for lab in labels]]), labels, out / "per_class_f1.png",
        support=[test.get("support", {}).get(lab, 0) for lab in labels], how="one run"))
    cache.draw("confusion", _run_files([run]), name, lambda: figures.confusion_grid(
        [(name, np.array(test["confusion_matrix"]))], labels, out / "confusion.png", how="one run"))
    if tsne:
        cache.draw("tsne", _run_files([run], "test_states.npz"), tsne_max,
                   lambda: tsne_figure([(run.target.get("name", ""), run)], out, tsne_max))
    if run.refined_prefix():
        cache.draw("refinement", _run_files([run], "predictions.csv"), list(utterances or []),
                   lambda: refinement_figure(run, None, out, utterances))
    refined = (run.results.get("refinement") or {}).get("test")
    if refined:
        panels = [(f"{name}: {refined['verdict']}", refined["confusion"])]
        if run.results.get("annotator_confusion"):
            panels.append(("annotators (train votes)", run.results["annotator_confusion"]))
        cache.draw("learned_confusion", _run_files([run]), name, lambda: figures.learned_confusion_grid(
            panels, labels, out / "learned_confusion.png"))
    return cache.save()


def make_report(path: str | Path, out: str | Path | None = None, utterances: Sequence[str] | None = None,
                tsne: bool = True, tsne_max: int = 2000) -> Figures:
    """Figures (and, for a sweep, the table files) for a sweep folder or a single run folder, then
    ``report.html`` in that folder (mmemolr.report.page; ``made["report"]``). When the figures fail, the
    page is still written, saying why, and the error is raised."""
    from mmemolr.report import page

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; give a sweep folder (with {SWEEP_FILE}) or a run folder")
    out = Path(out) if out else path / "figures"
    sweep = (path / SWEEP_FILE).exists()
    try:
        made = (report_sweep if sweep else report_run)(path, out, utterances, tsne, tsne_max)
    except Exception as err:
        if sweep or (path / "config.yaml").exists():
            page.write_page(path, Figures(), utterances, error=err)
        raise
    made["report"] = page.write_page(path, made, utterances)
    return made
