"""``mmemolr report RUN_OR_SWEEP_DIR``: rebuild the comparison table and draw the figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="figures (PNG) of a run or sweep folder; rebuilds a sweep's table from its run folders",
        description="For a sweep folder (mmemolr compare): table.md/.csv/.json plus comparison bars, per-class F1, "
        "confusion matrices, t-SNE of the test emotion states (one-hot beside RLD), refined label "
        "distributions and training curves; then report.html in the folder: one self-contained page with the "
        "table (sortable), every figure, the case studies in their dialogues and each run's details. For a run "
        "folder (mmemolr train): the same for that run.",
    )
    parser.add_argument("path", help="sweep folder (holds sweep.json) or run folder (holds results.json)")
    parser.add_argument("--out", help="folder for the figures (default: PATH/figures)")
    parser.add_argument("--utterances", help="test utterance ids for the refined-distribution figure, comma "
                        "separated (default: those whose refined target gives a non-gold label the most probability)")
    parser.add_argument("--no-tsne", action="store_true", help="skip the t-SNE figure (the slowest)")
    parser.add_argument("--tsne-max", type=int, default=2000,
                        help="t-SNE on at most this many test utterances (a fixed random subset; default: %(default)s)")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from mmemolr.compare import format_text
    from mmemolr.compare.aggregate import SWEEP_FILE
    from mmemolr.report import make_report

    wanted = [u.strip() for u in args.utterances.split(",") if u.strip()] if args.utterances else None
    if args.tsne_max < 10:
        raise ValueError(f"--tsne-max {args.tsne_max}: use at least 10 points")
    made = make_report(args.path, args.out, utterances=wanted, tsne=not args.no_tsne, tsne_max=args.tsne_max)
    if (Path(args.path) / SWEEP_FILE).exists():
        table = json.loads((Path(args.path) / "table.json").read_text(encoding="utf-8"))
        print(format_text(table))
        print()
    page = made.pop("report")
    for name, path in made.items():
        print(f"{name}: {path}" + (" (inputs unchanged since it was drawn: kept)" if name in made.reused else ""))
    print(f"report: {page} (one page with the table, curves, figures, case studies and runs; opens offline)")
    return 0
