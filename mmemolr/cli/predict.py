"""``mmemolr predict RUN``: emotions for every utterance of a prepared corpus or of recordings with
transcripts, with a trained run."""

from __future__ import annotations

import argparse
import sys
import textwrap

from mmemolr.cli.common import add_prepared_corpus_arg
from mmemolr.tables import format_table

# Up to this many utterances the command prints each one; more: counts per predicted label.
PRINT_UTTERANCES = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="emotions of every utterance of a corpus or a recording, with a trained run",
        description="Label every utterance with a trained run (predictor only). Give a prepared corpus (--corpus), "
                    "or a recording's transcript (--transcript call.stm --media call.mp4: .stm, .vtt, .srt or .csv). "
                    "The features the run was trained on are found in the corpus folder by content (extractor, "
                    "options, weights SHA-256) or extracted there with the recorded extractor and options. Writes "
                    "predictions.csv and predictions.json (utterance, speaker, times, text, predicted label and "
                    "every label's probability) and a timeline PNG per conversation into --out. A label-free "
                    "corpus is not scored; a labelled one is scored per split.",
    )
    parser.add_argument("run", help="run folder written by `mmemolr train`")
    add_prepared_corpus_arg(parser, required=False)
    parser.add_argument("--transcript", help="a transcript (.stm, .vtt, .srt, .csv) or a folder of transcripts with "
                        "their recordings; prepared as a label-free corpus under --features-dir/<name>")
    parser.add_argument("--media", help="with --transcript: the recording (audio or video) of its one conversation "
                        "(default: <name>.<ext> beside the transcript)")
    parser.add_argument("--name", help="with --transcript: corpus name (default: the transcript's file name)")
    parser.add_argument("--model", action="append", default=[], metavar="[M=]DIR",
                        help="where the run's model now is, when it moved: DIR for the text encoder, a=DIR / v=DIR "
                        "for audio/visual ones; accepted only when its weights' SHA-256 is the recorded one")
    parser.add_argument("--features", action="append", default=[], metavar="MODALITY=FILE",
                        help="feature file to use for a modality (checked against what the run was trained on)")
    parser.add_argument("--out", help="output folder (default: RUN/predictions-<corpus>/)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto, for the model and any extraction")
    parser.add_argument("--max-failures", help="failed items tolerated when extracting (as in `mmemolr extract`)")
    parser.add_argument("--no-timeline", action="store_true", help="no timeline PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _pairs(items: list[str], option: str, bare: str | None = None) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep and bare:
            key, value = bare, item
        elif not sep or not key.strip() or not value.strip():
            raise ValueError(f"{option} {item!r} must look like MODALITY=FILE (e.g. t=features/x/text-a.h5)")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    from mmemolr.extract import failure_summary
    from mmemolr.predict import predict_corpus, predict_transcript

    if bool(args.corpus) == bool(args.transcript):
        raise ValueError("give either --corpus (a prepared corpus) or --transcript (a recording's transcript)")
    if (args.media or args.name) and not args.transcript:
        raise ValueError("--media and --name go with --transcript; a prepared corpus already has both")
    options = dict(features=_pairs(args.features, "--features"), out=args.out, device=args.device,
                   models=_pairs(args.model, "--model", bare="t"), max_failures=args.max_failures,
                   timelines=not args.no_timeline, progress=not args.no_progress)
    if args.transcript:
        result = predict_transcript(args.run, args.transcript, args.media, args.name, args.features_dir, **options)
    else:
        result = predict_corpus(args.run, args.corpus, args.features_dir, **options)
    for extracted in result.features.extracted.values():
        print(f"extracted {extracted.path} ({extracted.total:,} utterances)")
        print(failure_summary(extracted.errors, extracted.total))
    print(_table(result.records, result.labels))
    if result.scores is None:
        print(f"\ncorpus {result.corpus.name!r} is label-free: predictions only, no metrics")
    elif result.scores:
        rows = [[split, s["accuracy"] * 100, s["weighted_f1"] * 100, s["macro_f1"] * 100]
                for split, s in result.scores.items()]
        print()
        print(format_table(["split", "accuracy %", "weighted F1 %", "macro F1 %"], rows))
    else:
        print(f"\nno metrics: the gold labels of {result.corpus.name!r} are not all among the run's labels "
              f"({', '.join(result.labels)})")
    print(f"\npredictions: {result.csv} (.json)")
    if result.timelines:
        print(f"timelines: {len(result.timelines)} PNG(s) in {result.out_dir}, e.g. {result.timelines[0].name}")
    if result.untimed:
        print(f"no timeline for {len(result.untimed)} dialogue(s) whose utterances have no start/end times",
              file=sys.stderr)
    return 0


def _table(records: list[dict], labels: list[str]) -> str:
    if len(records) <= PRINT_UTTERANCES:
        rows = [[r["dialogue_id"], "" if r["start"] is None else r["start"], r["speaker"], r["pred"],
                 f"{100 * r['confidence']:.0f}%", textwrap.shorten(r["text"] or "", 60, placeholder="…")]
                for r in records]
        return format_table(["dialogue", "start s", "speaker", "predicted", "prob", "text"], rows)
    counts = {lab: sum(r["pred"] == lab for r in records) for lab in labels}
    return format_table(["predicted", "utterances", "share %"],
                        [[lab, n, 100 * n / len(records)] for lab, n in counts.items()],
                        title=f"{len(records):,} utterances")
