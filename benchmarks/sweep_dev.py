"""The dev-split view of a `mmemolr compare` sweep: what a choice may look at, and nothing from test.

For each row x column of the sweep: dev weighted F1 and accuracy (mean ± std over seeds), the paired
difference to a reference row (mean ± std of the per-seed differences, paired t-test p), and the
refinement diagnostics of the dev split (mmemolr.targets.diagnostics) for refining targets. Test figures
are neither printed nor stored, so a decision made from this output has not looked at test; the sweep's
own table (table.md) holds the test figures, to be read once the decision is written down.

  .venv/bin/python benchmarks/sweep_dev.py runs/le-meld --reference "RLD bounded"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmemolr.compare.aggregate import load_plan, read_results
from mmemolr.compare.stats import paired_test
from mmemolr.tables import format_table, mean_std_pct


def dev_rows(sweep: Path, reference: str | None) -> tuple[list[str], list[list[str]]]:
    plan = load_plan(sweep)
    values: dict[tuple[str, str], dict[int, dict]] = {}
    for spec in plan.runs:
        results = read_results(sweep / spec.name)
        if results is not None:
            values.setdefault((spec.row, spec.column), {})[spec.seed] = results
    reference = reference or plan.baseline
    headers = ["row", "column", "seeds", "dev W-F1 %", "dev acc %", f"Δ dev W-F1 vs {reference}", "p",
               "z[gold]", "class spec.", "spec. null", "variation", "H other", "verdicts"]
    rows = []
    for row in plan.rows:
        for col in plan.columns:
            runs = values.get((row, col), {})
            if not runs:
                continue
            wf1 = {s: r["valid"]["weighted_f1"] for s, r in runs.items()}
            ref = {s: r["valid"]["weighted_f1"] for s, r in values.get((reference, col), {}).items()}
            test = paired_test(wf1, ref) if row != reference else None
            diff = "" if test is None or test["diff_mean"] is None else \
                f"{100 * test['diff_mean']:+.2f} ± {100 * (test['diff_std'] or 0):.2f}"
            p = "" if test is None or test["p"] is None else f"{test['p']:.3f}"
            diag = [r["refinement"]["valid"] for r in runs.values() if r.get("refinement")]

            def mean(key: str, diag: list[dict] = diag) -> str:
                known = [d[key] for d in diag if d.get(key) is not None]
                return f"{sum(known) / len(known):.3f}" if known else ""

            verdicts = [d["verdict"] for d in diag]
            rows.append([row, col, str(len(runs)), mean_std_pct(list(wf1.values())),
                         mean_std_pct([r["valid"]["accuracy"] for r in runs.values()]), diff, p,
                         mean("gold_mass"), mean("specificity"), mean("specificity_null"), mean("variation"),
                         mean("entropy"), ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))])
    return headers, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--reference", help="row to pair every other row with (default: the sweep's baseline)")
    args = parser.parse_args(argv)
    headers, rows = dev_rows(args.sweep, args.reference)
    print(format_table(headers, rows, title=f"{args.sweep}: dev split only (test not shown)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
