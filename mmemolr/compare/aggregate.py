"""Collect the run folders of a sweep into the comparison table (text, Markdown, CSV, JSON).

Idempotent: everything comes from sweep.json and the run folders, so ``mmemolr report`` can rebuild it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.compare.floor import FLOOR_PRESETS, read_floor
from mmemolr.compare.plan import SweepPlan
from mmemolr.compare.stats import paired_test, summarize
from mmemolr.fileio import write_json_atomic, write_text_atomic
from mmemolr.tables import format_markdown, format_table

SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.json"
ERROR_FILE = "error.log"
TABLE_FILES = ("table.md", "table.csv", "table.json")
# (results.json key, short name); the printed table shows the first two, CSV/JSON all three.
METRICS = (("weighted_f1", "W-F1"), ("accuracy", "Acc"), ("macro_f1", "M-F1"))
SHOWN = 2
# Refinement diagnostics of the test split (mmemolr.targets.diagnostics), mean over seeds, for the cells of
# refining targets (rld, lcm): (key of flat_diagnostics, short name). A statistic and its chance level
# ("_null") are printed as one column.
DIAGNOSTICS = (("gold_mass", "z[gold]"), ("specificity", "class spec."), ("specificity_null", ""),
               ("variation", "variation"), ("neighbours", "nbr TV"), ("neighbours_null", ""),
               ("entropy", "H other"))
# Agreement with the annotators' votes on the test split (mmemolr.targets.agreement), mean over seeds: KL for
# every cell, the refined target's voted share and TV beside their nulls for refining cells.
AGREEMENT = (("kl_votes", "KL(votes‖p)"), ("voted_share", "z voted share"), ("tv", "z TV to votes"))
AGREEMENT_NULLS = ("even", "class_mean", "annotators")


def flat_diagnostics(refined: dict[str, Any]) -> dict[str, Any]:
    """The DIAGNOSTICS keys of one run's test diagnostics, plus its verdict."""
    neighbours = refined.get("neighbours") or {}
    flat = {key: refined.get(key) for key, _ in DIAGNOSTICS}
    flat.update(neighbours=neighbours.get("distance"), neighbours_null=neighbours.get("null"),
                gold_mass_fixed=refined.get("gold_mass_fixed", False), verdict=refined.get("verdict"))
    return flat


def flat_agreement(agreement: dict[str, Any]) -> dict[str, Any]:
    """One run's test agreement with the votes: KL, and the refined target's voted share and TV with nulls."""
    target = agreement.get("target") or {}
    flat: dict[str, Any] = {"kl_votes": agreement.get("kl_votes")}
    for key in ("voted_share", "tv"):
        values = target.get(key) or {}
        flat[key] = values.get("model")
        flat.update({f"{key}_{null}": values.get(null) for null in AGREEMENT_NULLS})
    flat["beats_nulls"] = target.get("beats_nulls")
    return flat


def read_results(run_dir: Path) -> dict | None:
    """The run's results.json when it says complete, else None."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete the run folder to train it again") from None
    return data if data.get("status") == "complete" else None


def run_status(run_dir: Path) -> str:
    """complete | failed | partial | pending."""
    run_dir = Path(run_dir)
    if read_results(run_dir) is not None:
        return "complete"
    if (run_dir / ERROR_FILE).exists():
        return "failed"
    if (run_dir / "last.pt").exists() or (run_dir / "metrics.csv").exists():
        return "partial"
    return "pending"


def load_plan(sweep_dir: Path) -> SweepPlan:
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {sweep_dir} is not a sweep folder made by `mmemolr compare`")
    return SweepPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))


def build_table(plan: SweepPlan, sweep_dir: Path) -> dict[str, Any]:
    """Cells (mean/std per metric over seeds), comparisons (paired t-tests) and every run's provenance."""
    sweep_dir = Path(sweep_dir)
    values: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    dev: dict[tuple[str, str], dict[int, float]] = {}  # validation weighted F1 at the selected epoch
    runs, feature_files, fingerprints = [], {}, set()
    diag: dict[tuple[str, str], list[dict]] = {}
    people: dict[tuple[str, str], list[dict]] = {}  # agreement with the votes, test split
    people_dev: dict[tuple[str, str], list[dict]] = {}  # the same on dev
    refined_runs: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    for spec in plan.runs:
        run_dir = sweep_dir / spec.name
        results = read_results(run_dir)
        entry: dict[str, Any] = {"name": spec.name, "row": spec.row, "column": spec.column, "seed": spec.seed,
                                 "status": "complete" if results else run_status(run_dir)}
        if results:
            entry.update({
                "corpus_fingerprint": results.get("corpus_fingerprint"),
                "feature_files": results.get("feature_files", {}),
                "config": results.get("config", {}),
                "best_epoch": results.get("best_epoch"),
                "epochs_run": results.get("epochs_run"),
                "valid": results.get("valid", {}),
                "test": {k: results["test"].get(k) for k, _ in METRICS},
                "seconds_total": results.get("seconds_total"),
                "device": results.get("device"),
                "warnings": results.get("warnings", []),
            })
            fingerprints.add(results.get("corpus_fingerprint"))
            for code, info in (results.get("feature_files") or {}).items():
                feature_files.setdefault(code, {k: info.get(k) for k in ("path", "extractor", "model_id", "dim")})
            cell = values.setdefault((spec.row, spec.column), {k: {} for k, _ in METRICS})
            for key, _ in METRICS:
                if results["test"].get(key) is not None:
                    cell[key][spec.seed] = float(results["test"][key])
            if (results.get("valid") or {}).get("weighted_f1") is not None:
                dev.setdefault((spec.row, spec.column), {})[spec.seed] = float(results["valid"]["weighted_f1"])
            refined = (results.get("refinement") or {}).get("test")
            if refined:
                entry["refinement"] = flat_diagnostics(refined)
                diag.setdefault((spec.row, spec.column), []).append(refined)
            agreement = (results.get("agreement") or {}).get("test")
            if agreement:
                entry["agreement"] = flat_agreement(agreement)
                people.setdefault((spec.row, spec.column), []).append(entry["agreement"])
            agreement_dev = (results.get("agreement") or {}).get("valid")
            if agreement_dev:
                entry["agreement_valid"] = flat_agreement(agreement_dev)
                people_dev.setdefault((spec.row, spec.column), []).append(entry["agreement_valid"])
            if refined:
                target_name = (results.get("config") or {}).get("target", {}).get("name", "rld")
                refined_runs.setdefault((spec.row, spec.column), []).append((run_dir, target_name))
        runs.append(entry)
    empty = {k: {} for k, _ in METRICS}
    cells = [
        {"row": row, "column": col, **{key: summarize(values.get((row, col), empty)[key]) for key, _ in METRICS},
         "valid_weighted_f1": summarize(dev.get((row, col), {})),
         "refinement": _mean_diagnostics(diag.get((row, col), []), refined_runs.get((row, col), [])),
         "agreement": _mean_values(people.get((row, col), [])),
         "agreement_valid": _mean_values(people_dev.get((row, col), []))}
        for row in plan.rows for col in plan.columns
    ]
    comparisons = []
    for row in plan.rows:
        for col in plan.columns:
            if plan.compare == "columns":
                bases = [] if col == plan.baseline else [(row, plan.baseline)]
            else:
                bases = [(b, col) for b in [plan.baseline, *plan.controls] if b != row and b in plan.rows]
            for base in bases:
                a, b = values.get((row, col), empty), values.get(base, empty)
                comparisons.append({"row": row, "column": col, "baseline": list(base),
                                    **{key: paired_test(a[key], b[key]) for key, _ in METRICS}})
    mismatched = sorted(f for f in fingerprints if f != plan.corpus_fingerprint)
    floor = read_floor(sweep_dir) if plan.preset in FLOOR_PRESETS else None
    if floor is not None and (floor.get("inputs") or {}).get("corpus_fingerprint") != plan.corpus_fingerprint:
        floor = None  # computed on another corpus version: `compare` or `report` recomputes it
    return {
        "preset": plan.preset, "corpus": plan.corpus_name, "corpus_fingerprint": plan.corpus_fingerprint,
        "fingerprint_mismatch": mismatched, "modalities": plan.modalities, "seeds": plan.seeds,
        "rows": plan.rows, "columns": plan.columns, "compare": plan.compare, "baseline": plan.baseline,
        "controls": list(plan.controls),
        "split": "test", "selection": "validation weighted F1", "scale": "metrics as fractions in [0, 1] (table.md and "
        "table.csv: percent; refinement diagnostics as they are)",
        "runs_complete": sum(r["status"] == "complete" for r in runs), "runs_total": len(runs),
        "feature_files": feature_files, "cells": cells, "comparisons": comparisons, "floor": floor, "runs": runs,
        "config_path": plan.config_path, "base_overrides": plan.base_overrides,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _comparisons_against(table: dict[str, Any], baseline: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(row, column) -> its paired comparison with the baseline row (compare=rows) or column."""
    index = 0 if table["compare"] == "rows" else 1
    return {(c["row"], c["column"]): c for c in table["comparisons"] if c["baseline"][index] == baseline}


def _mean_values(per_seed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean over seeds of every numeric value (None where no seed has one)."""
    if not per_seed:
        return None
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        known = [d[key] for d in per_seed if isinstance(d.get(key), (int, float)) and not isinstance(d[key], bool)]
        out[key] = float(sum(known) / len(known)) if known else None
    return out


def _mean_diagnostics(per_seed: list[dict], runs: list[tuple[Path, str]] | None = None) -> dict[str, Any] | None:
    """Mean of each diagnostic over seeds, the verdicts counted, the mean learned confusion matrix, and the
    seeds' agreement on each test utterance's deviation from its class mean (``seed_agreement``)."""
    if not per_seed:
        return None
    flat = [flat_diagnostics(d) for d in per_seed]
    out: dict[str, Any] = _mean_values([{key: f[key] for key, _ in DIAGNOSTICS} for f in flat]) or {}
    out["gold_mass_fixed"] = all(f["gold_mass_fixed"] for f in flat)
    out["seed_agreement"] = _seed_agreement(runs or [])
    verdicts = [d.get("verdict", "?") for d in per_seed]
    out["verdicts"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    rows = [d["confusion"] for d in per_seed]
    out["confusion"] = [
        None if any(r[g] is None for r in rows) else [sum(r[g][k] for r in rows) / len(rows) for k in range(len(rows[0]))]
        for g in range(len(rows[0]))
    ]
    out["labels"] = per_seed[0].get("labels")
    return out


# seed_agreement per cell, by the stamps of its runs' predictions.csv: `compare` rebuilds the table after every
# run, and a cell's figure changes only when one of its runs does.
_SEED_AGREEMENT: dict[tuple, dict[str, float] | None] = {}


def _seed_agreement(runs: list[tuple[Path, str]]) -> dict[str, float] | None:
    """seed_agreement of the refined targets in the runs' test predictions (the utterances all of them hold)."""
    if len(runs) < 2:
        return None
    paths = [run_dir / "predictions.csv" for run_dir, _ in runs]
    if not all(path.exists() for path in paths):
        return None
    key = tuple((str(path.resolve()), path.stat().st_mtime_ns, path.stat().st_size, prefix)
                for path, (_, prefix) in zip(paths, runs))
    if key not in _SEED_AGREEMENT:
        _SEED_AGREEMENT[key] = _read_seed_agreement(runs)
    return _SEED_AGREEMENT[key]


def _read_seed_agreement(runs: list[tuple[Path, str]]) -> dict[str, float] | None:
    from mmemolr.targets.diagnostics import seed_agreement

    tables = []
    for run_dir, _ in runs:
        with open(run_dir / "predictions.csv", encoding="utf-8", newline="") as fh:
            tables.append({r["utterance_id"]: r for r in csv.DictReader(fh)})
    first = runs[0][1]
    labels = [h[len(first) + 1:] for h in next(iter(tables[0].values()), {}) if h.startswith(f"{first}_")]
    ids = [uid for uid, r in tables[0].items() if r.get("gold") in labels and all(uid in t for t in tables)]
    if not ids or not labels:
        return None
    gold = np.array([labels.index(tables[0][uid]["gold"]) for uid in ids])
    shapes = [np.array([[float(t[uid][f"{prefix}_{lab}"] or "nan") for lab in labels] for uid in ids])
              for t, (_, prefix) in zip(tables, runs)]
    return seed_agreement(shapes, gold)


def _verdict_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {n}" if len(counts) > 1 else v for v, n in counts.items())


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _cell_text(summary: dict, planned: int) -> str:
    if not summary["n"]:
        return "–"
    text = _pct(summary["mean"])
    if summary["std"] is not None:
        text += f" ± {_pct(summary['std'])}"
    if summary["n"] < planned:
        text += f" [{summary['n']}/{planned}]"
    return text


def _diff_text(test: dict) -> str:
    if test["diff_mean"] is None:
        return "–"
    text = f"{100 * test['diff_mean']:+.2f}"
    if test["diff_std"] is not None:
        text += f" ± {_pct(test['diff_std'])}"
    return text


def _p_text(test: dict) -> str:
    p = test["p"]
    if p is None:
        return "–"
    return ("<0.001" if p < 0.001 else f"{p:.3f}") + ("*" if p < 0.05 else "")


def table_rows(table: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and text rows of the comparison table (percentages)."""
    planned = len(table["seeds"])
    cells = {(c["row"], c["column"]): c for c in table["cells"]}
    comps = _comparisons_against(table, table["baseline"])
    by_columns = table["compare"] == "columns"
    multi = len(table["columns"]) > 1
    headers = [{"table6": "Modality", "generalization": "Backbone"}.get(table["preset"], "Variant")]
    with_dev = table["preset"] in FLOOR_PRESETS  # beside the floor, which the models must beat on dev
    for col in table["columns"]:
        headers += [f"{col} {short}" if multi else short for _, short in METRICS[:SHOWN]]
        if with_dev:
            headers.append(f"{col} dev W-F1" if multi else "dev W-F1")
    compared = [c for c in table["columns"] if not (by_columns and c == table["baseline"])]
    for col in compared:
        against = f"{col} − {table['baseline']}" if by_columns else f"vs {table['baseline']}"
        for _, short in METRICS[:SHOWN]:
            headers += [f"Δ {short} {against}", "p"]
    controls = [c for c in table.get("controls", []) if c in table["rows"]]
    for control in controls:
        headers += [f"Δ W-F1 vs {control}", "p"]
    refining = [c for c in table["columns"] if any(cells[(r, c)].get("refinement") for r in table["rows"])]
    shown = diagnostic_columns(table)
    for col in refining:
        headers += [f"{col} {short}" if multi else short for short, _ in shown]
        headers.append(f"{col} target" if multi else "target")
    voted = [c for c in table["columns"] if any(cells[(r, c)].get("agreement") for r in table["rows"])]
    for col in voted:
        headers.append(f"{col} KL(votes‖p)" if multi else "KL(votes‖p)")
        if col in refining:
            headers += [f"{col} {short}" if multi else short for short in AGREEMENT_HEADERS]
    rows = []
    for row in table["rows"]:
        line = [row]
        for col in table["columns"]:
            line += [_cell_text(cells[(row, col)][key], planned) for key, _ in METRICS[:SHOWN]]
            if with_dev:
                line.append(_cell_text(cells[(row, col)].get("valid_weighted_f1") or summarize({}), planned))
        for col in compared:
            comp = comps.get((row, col))
            for key, _ in METRICS[:SHOWN]:
                line += [_diff_text(comp[key]), _p_text(comp[key])] if comp else ["", ""]
        for control in controls:  # rows x one column
            comp = _comparisons_against(table, control).get((row, table["columns"][0]))
            line += [_diff_text(comp["weighted_f1"]), _p_text(comp["weighted_f1"])] if comp else ["", ""]
        for col in refining:
            d = cells[(row, col)].get("refinement")
            line += [text(d) for _, text in shown] + [_verdict_text(d["verdicts"])] if d else [""] * (len(shown) + 1)
        for col in voted:
            a = cells[(row, col)].get("agreement")
            line.append(_num(a["kl_votes"]) if a else "")
            if col in refining:
                line += [_with_nulls(a, key) if a and a.get(key) is not None else "" for key in ("voted_share", "tv")]
        rows.append(line)
    floor = table.get("floor")
    if floor:  # its figures under the first column's (they do not depend on the target)
        line = [FLOOR_ROW, _pct(floor["test"]["weighted_f1"]), _pct(floor["test"]["accuracy"])]
        line += [_pct(floor["valid"]["weighted_f1"])] if with_dev else []
        rows.append(line + [""] * (len(headers) - len(line)))
    return headers, rows


FLOOR_ROW = "context-free floor (LR)"
AGREEMENT_HEADERS = ("z voted share (even/class/annot.)", "z TV to votes (even/class/annot.)")


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _beside(value: float | None, null: float | None, digits: int = 3) -> str:
    """A statistic with its chance level in brackets."""
    return _num(value, digits) + ("" if null is None else f" ({_num(null, digits)})")


def _with_nulls(agreement: dict[str, Any], key: str) -> str:
    nulls = "/".join(_num(agreement.get(f"{key}_{null}"), 2) for null in AGREEMENT_NULLS)
    return f"{_num(agreement.get(key))} ({nulls})"


def diagnostic_columns(table: dict[str, Any]) -> list[tuple[str, Any]]:
    """(header, cell -> text) of the diagnostics shown. z[gold] is left out when every cell fixes it (combine=mix:
    1 − ε + ε/C by construction); each statistic shows its chance level in brackets."""
    cells = [c["refinement"] for c in table["cells"] if c.get("refinement")]
    columns: list[tuple[str, Any]] = []
    if not all(d.get("gold_mass_fixed") for d in cells):
        columns.append(("z[gold]", lambda d: _num(d["gold_mass"])))
    columns += [
        ("class spec. (null)", lambda d: _beside(d["specificity"], d["specificity_null"])),
        ("variation", lambda d: _num(d["variation"])),
        ("nbr TV (random)", lambda d: _beside(d["neighbours"], d["neighbours_null"])),
        ("H other", lambda d: _num(d["entropy"])),
    ]
    if any(d.get("seed_agreement") for d in cells):
        columns.append(("seed r (null)", lambda d: _beside((d.get("seed_agreement") or {}).get("r"),
                                                          (d.get("seed_agreement") or {}).get("null"), 2)))
    return columns


def floor_lines(table: dict[str, Any]) -> list[str]:
    """What the floor is and which cells are not above it on dev (mean over seeds)."""
    floor = table.get("floor")
    if not floor:
        return []
    bar = floor["valid"]["weighted_f1"]
    cells = [c for c in table["cells"] if (c.get("valid_weighted_f1") or {}).get("mean") is not None]
    below = [f"{c['row']} {c['column']} {_pct(c['valid_weighted_f1']['mean'])}" for c in cells
             if c["valid_weighted_f1"]["mean"] <= bar]
    lines = [f"{FLOOR_ROW}: logistic regression on each utterance's vector alone (the runs' features and "
             f"normalisation), C = {floor['C']:g} chosen on dev: dev W-F1 {_pct(bar)}, test W-F1 "
             f"{_pct(floor['test']['weighted_f1'])}, Acc {_pct(floor['test']['accuracy'])}."]
    if cells:
        lines.append("Not above the floor on dev (mean W-F1): " + "; ".join(below) if below
                     else "Every cell is above the floor on dev.")
    return lines


def _describe(table: dict[str, Any]) -> list[str]:
    lines = [
        f"corpus {table['corpus']} (fingerprint {table['corpus_fingerprint'][:16]}), preset {table['preset']}, "
        f"seeds {','.join(map(str, table['seeds']))}, runs complete {table['runs_complete']}/{table['runs_total']}",
    ]
    for code, info in sorted(table["feature_files"].items()):
        lines.append(f"features {code}: {Path(str(info.get('path'))).name} ({info.get('extractor')}, "
                     f"{info.get('model_id') or '-'}, {info.get('dim')}-d)")
    capped = [r["name"] for r in table["runs"] if r.get("warnings")]
    if capped:
        lines.append(f"NOTE: {len(capped)} run(s) stopped at optim.max_epochs while dev weighted F1 was still "
                     f"improving ({', '.join(capped[:3])}{', …' if len(capped) > 3 else ''}); raise optim.max_epochs")
    if table["fingerprint_mismatch"]:
        lines.append(f"WARNING: {len(table['fingerprint_mismatch'])} run(s) were trained on another corpus version "
                     "than the sweep's; their folders are stale")
    return lines


LEGEND = ("Test split at the epoch selected on validation; mean ± std over seeds in %; [k/n]: seeds done. "
          "Δ: mean paired difference (± its std) over the seeds both settings have; p: paired t-test "
          "(scipy.stats.ttest_rel), * p < 0.05. Refining targets (rld, lcm), test split, mean over seeds, "
          "chance levels in brackets: z[gold] = mean target mass on the gold label (left out where combine=mix "
          "fixes it); class spec. = distance of the classes' mean non-gold shapes from one shared offset "
          "(null: the gold classes permuted); variation = mean total-variation distance of an utterance's "
          "non-gold shape from its class mean (0 = nothing per utterance); nbr TV = distance of an utterance's "
          "shape from its nearest same-class neighbour's in the model's state space (random: a random utterance "
          "of the class); H other = normalised entropy of the non-gold shape (1 = even, as label smoothing); "
          "seed r = correlation across seeds of each utterance's deviation from its class mean (null: shuffled "
          "within classes); target = verdict per seed (drifted / smoothing / collapsed / static / unconfirmed / "
          "refines; docs/training.md).")
LEGEND_VOTES = ("Agreement with the annotators' votes, test split, mean over seeds: KL(votes‖p) = mean KL from "
                "the vote shares to the predicted distribution; z voted share = share of the refined target's "
                "non-gold mass on labels an annotator voted for (higher is better), z TV = its distance from the "
                "annotators' non-gold shape (lower is better), on the utterances with a non-gold vote; in "
                "brackets the same for an even spread, the run's own class mean and the annotators' train class "
                "mean (docs/training.md, Agreement with people).")


def legend(table: dict[str, Any]) -> str:
    return LEGEND + (" " + LEGEND_VOTES if any(c.get("agreement") for c in table["cells"]) else "")


def format_text(table: dict[str, Any]) -> str:
    headers, rows = table_rows(table)
    floor = floor_lines(table)
    return "\n".join([*_describe(table), "", format_table(headers, rows), "", *floor, *([""] if floor else []),
                      legend(table)])


def format_markdown_doc(table: dict[str, Any]) -> str:
    headers, rows = table_rows(table)
    lines = [f"# {table['preset']} on {table['corpus']}", ""]
    lines += [f"- {line}" for line in _describe(table)]
    lines += ["", format_markdown(headers, rows), ""]
    floor = floor_lines(table)
    lines += [*floor, *([""] if floor else []), legend(table), ""]
    return "\n".join(lines)


def _pct_value(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 6)


def format_csv(table: dict[str, Any]) -> str:
    """One line per table row, every metric in percent (as table.md; the headers say so), p-values as
    they are, n = seeds done."""
    cells = {(c["row"], c["column"]): c for c in table["cells"]}
    comps = _comparisons_against(table, table["baseline"])
    headers = ["row"]
    for col in table["columns"]:
        for _, short in METRICS:
            headers += [f"{col} {short} mean %", f"{col} {short} std %"]
        headers += [f"{col} n", f"{col} dev W-F1 mean %", f"{col} dev W-F1 std %"]
    comp_cols = [c for c in table["columns"] if not (table["compare"] == "columns" and c == table["baseline"])]
    for col in comp_cols:
        for _, short in METRICS:
            headers += [f"{col} Δ {short} %", f"{col} Δ {short} p"]
    for col in table["columns"]:
        headers += [f"{col} {key}" for key, _ in DIAGNOSTICS] + [f"{col} seed_agreement_r", f"{col} seed_agreement_null"]
    agreement_keys = ["kl_votes"] + [f"{key}{suffix}" for key in ("voted_share", "tv")
                                     for suffix in ("", *(f"_{n}" for n in AGREEMENT_NULLS))]
    voted = any(c.get("agreement") for c in table["cells"])
    if voted:
        for col in table["columns"]:
            headers += [f"{col} {key}" for key in agreement_keys]
            headers += [f"{col} dev {key}" for key in agreement_keys]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for row in table["rows"]:
        line: list[Any] = [row]
        for col in table["columns"]:
            cell = cells[(row, col)]
            for key, _ in METRICS:
                line += [_pct_value(cell[key]["mean"]), _pct_value(cell[key]["std"])]
            dev = cell.get("valid_weighted_f1") or summarize({})
            line += [cell[METRICS[0][0]]["n"], _pct_value(dev["mean"]), _pct_value(dev["std"])]
        for col in comp_cols:
            comp = comps.get((row, col))
            for key, _ in METRICS:
                line += [_pct_value(comp[key]["diff_mean"]), comp[key]["p"]] if comp else [None, None]
        for col in table["columns"]:
            d = cells[(row, col)].get("refinement")
            seeds = (d or {}).get("seed_agreement") or {}
            line += [d[key] if d else None for key, _ in DIAGNOSTICS] + [seeds.get("r"), seeds.get("null")]
        if voted:
            for col in table["columns"]:
                a = cells[(row, col)].get("agreement") or {}
                line += [a.get(key) for key in agreement_keys]
                a = cells[(row, col)].get("agreement_valid") or {}
                line += [a.get(key) for key in agreement_keys]
        writer.writerow(["" if v is None else v for v in line])
    floor = table.get("floor")
    if floor:  # test metrics and dev W-F1 under the first column's headers, no std (one deterministic fit)
        line = [FLOOR_ROW]
        for key, _ in METRICS:
            line += [_pct_value(floor["test"][key]), None]
        line += [None, _pct_value(floor["valid"]["weighted_f1"]), None]
        writer.writerow(["" if v is None else v for v in line] + [""] * (len(headers) - len(line)))
    return buf.getvalue()


def write_tables(sweep_dir: Path, plan: SweepPlan | None = None) -> dict[str, Any]:
    """Build the table from the run folders and write table.md, table.csv and table.json atomically."""
    sweep_dir = Path(sweep_dir)
    plan = plan or load_plan(sweep_dir)
    table = build_table(plan, sweep_dir)
    write_text_atomic(sweep_dir / "table.md", format_markdown_doc(table))
    write_text_atomic(sweep_dir / "table.csv", format_csv(table))
    write_json_atomic(sweep_dir / "table.json", table)
    return table
