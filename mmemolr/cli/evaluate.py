"""``mmemolr evaluate RUN``: recompute a run's metrics from best.pt and compare with results.json."""

from __future__ import annotations

import argparse
import sys

from mmemolr.tables import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="recompute a run's dev/test metrics from its best checkpoint")
    parser.add_argument("run", help="run folder written by `mmemolr train`")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", dest="json_out", help="also write the recomputed metrics to this JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmemolr.fileio import write_json_atomic
    from mmemolr.train.inference import compare_metrics, evaluate_run
    from mmemolr.train.rundir import read_results

    stored = read_results(args.run)
    metrics = evaluate_run(args.run, args.device)
    rows = []
    for split in ("valid", "test"):
        for key in ("accuracy", "weighted_f1", "macro_f1"):
            rows.append([split, key, metrics[split][key] * 100, stored[split][key] * 100])
    print(format_table(["split", "metric", "recomputed %", "results.json %"], rows, title=f"run {args.run}"))
    labels = list(metrics["test"]["per_class_f1"])
    print()
    print(format_table(["label", "test F1 %", "support"],
                       [[k, metrics["test"]["per_class_f1"][k] * 100, metrics["test"]["support"][k]] for k in labels]))
    print()
    print(format_table(["gold \\ pred", *labels],
                       [[lab, *row] for lab, row in zip(labels, metrics["test"]["confusion_matrix"])],
                       title="test confusion matrix"))
    if args.json_out:
        write_json_atomic(args.json_out, metrics)
    diffs = compare_metrics(stored, metrics)
    if diffs:
        print("the recomputed metrics differ from results.json: " + "; ".join(diffs), file=sys.stderr)
        return 1
    print("recomputed metrics match results.json")
    return 0
