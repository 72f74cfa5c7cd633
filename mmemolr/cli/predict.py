"""``mmemolr predict RUN --corpus C``: label every utterance of a prepared corpus with a trained run."""

from __future__ import annotations

import argparse

from mmemolr.cli.common import add_prepared_corpus_arg
from mmemolr.tables import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="label a corpus with a trained run (predictor only)",
        description="Writes utterance_id, dialogue_id, split, gold, pred, prob_<label> (and text) per utterance. "
                    "The corpus needs feature files of the run's modalities from the same extractors.",
    )
    parser.add_argument("run", help="run folder written by `mmemolr train`")
    add_prepared_corpus_arg(parser)
    parser.add_argument("--features", action="append", default=[], metavar="MODALITY=FILE",
                        help="feature file to use for a modality when the corpus folder holds several")
    parser.add_argument("--out", help="CSV to write (default: RUN/predictions-<corpus>.csv)")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmemolr.train.inference import predict_corpus

    chosen = {}
    for item in args.features:
        if "=" not in item:
            raise ValueError(f"--features {item!r} must look like MODALITY=FILE (e.g. t=features/x/text-a.h5)")
        key, value = item.split("=", 1)
        chosen[key] = value
    out, scores = predict_corpus(args.run, args.corpus, args.features_dir, chosen, args.out, args.device)
    if scores:
        rows = [[split, s["accuracy"] * 100, s["weighted_f1"] * 100, s["macro_f1"] * 100] for split, s in scores.items()]
        print(format_table(["split", "accuracy %", "weighted F1 %", "macro F1 %"], rows))
    print(f"predictions: {out}")
    return 0
