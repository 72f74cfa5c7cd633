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
# refining targets (rld, lcm): (key, short name).
DIAGNOSTICS = (("gold_mass", "z[gold]"), ("mode_share", "mode share"), ("specificity", "class spec."),
               ("variation", "variation"), ("entropy", "H other"))


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
                entry["refinement"] = {k: refined.get(k) for k, _ in DIAGNOSTICS + (("verdict", ""),)}
                diag.setdefault((spec.row, spec.column), []).append(refined)
        runs.append(entry)
    empty = {k: {} for k, _ in METRICS}
    cells = [
        {"row": row, "column": col, **{key: summarize(values.get((row, col), empty)[key]) for key, _ in METRICS},
         "valid_weighted_f1": summarize(dev.get((row, col), {})),
         "refinement": _mean_diagnostics(diag.get((row, col), []))}
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


def _mean_diagnostics(per_seed: list[dict]) -> dict[str, Any] | None:
    """Mean of each diagnostic over seeds, the verdicts counted, the mean learned confusion matrix."""
    if not per_seed:
        return None
    out: dict[str, Any] = {}
    for key, _ in DIAGNOSTICS:
        known = [d[key] for d in per_seed if d.get(key) is not None]
        out[key] = float(sum(known) / len(known)) if known else None
    verdicts = [d.get("verdict", "?") for d in per_seed]
    out["verdicts"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
    rows = [d["confusion"] for d in per_seed]
    out["confusion"] = [
        None if any(r[g] is None for r in rows) else [sum(r[g][k] for r in rows) / len(rows) for k in range(len(rows[0]))]
        for g in range(len(rows[0]))
    ]
    out["labels"] = per_seed[0].get("labels")
    return out


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
    for col in refining:
        headers += [f"{col} {short}" if multi else short for _, short in DIAGNOSTICS]
        headers.append(f"{col} target" if multi else "target")
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
            line += [("–" if d[key] is None else f"{d[key]:.3f}") for key, _ in DIAGNOSTICS] + \
                [_verdict_text(d["verdicts"])] if d else [""] * (len(DIAGNOSTICS) + 1)
        rows.append(line)
    floor = table.get("floor")
    if floor:  # its figures under the first column's (they do not depend on the target)
        line = [FLOOR_ROW, _pct(floor["test"]["weighted_f1"]), _pct(floor["test"]["accuracy"])]
        line += [_pct(floor["valid"]["weighted_f1"])] if with_dev else []
        rows.append(line + [""] * (len(headers) - len(line)))
    return headers, rows


FLOOR_ROW = "context-free floor (LR)"


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
          "(scipy.stats.ttest_rel), * p < 0.05. Refining targets (rld, lcm), test split, mean over seeds: "
          "z[gold] = mean target mass on the gold label; mode share = share of utterances whose strongest "
          "other label is the most common one; class spec. = how much the classes' mean non-gold shapes "
          "differ (0 = one constant offset for all); variation = mean total-variation "
          "distance of an utterance's non-gold shape from its class mean (0 = nothing per utterance); "
          "H other = normalised entropy of the non-gold shape (1 = even, as label smoothing); target = "
          "verdict per seed (collapsed / smoothing / static / refines; docs/training.md).")


def format_text(table: dict[str, Any]) -> str:
    headers, rows = table_rows(table)
    floor = floor_lines(table)
    return "\n".join([*_describe(table), "", format_table(headers, rows), "", *floor, *([""] if floor else []),
                      LEGEND])


def format_markdown_doc(table: dict[str, Any]) -> str:
    headers, rows = table_rows(table)
    lines = [f"# {table['preset']} on {table['corpus']}", ""]
    lines += [f"- {line}" for line in _describe(table)]
    lines += ["", format_markdown(headers, rows), ""]
    floor = floor_lines(table)
    lines += [*floor, *([""] if floor else []), LEGEND, ""]
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
        headers += [f"{col} {key}" for key, _ in DIAGNOSTICS]
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
            line += [d[key] if d else None for key, _ in DIAGNOSTICS]
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
