"""``mmemolr corpus prepare|inspect``: read a raw corpus, summarise it, save it for later commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmemolr.cli.common import add_corpus_source_args, corpus_options
from mmemolr.corpus import load_corpus, save_prepared
from mmemolr.corpus.prepared import DEFAULT_FEATURES_DIR
from mmemolr.corpus.stats import corpus_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("corpus", help="prepare or inspect a corpus")
    sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    inspect = sub.add_parser("inspect", help="counts per split and label, speakers, dialogue lengths")
    add_corpus_source_args(inspect)
    inspect.set_defaults(func=run_inspect)
    prepare = sub.add_parser("prepare", help="read a raw corpus and save it as <out>/corpus.json")
    add_corpus_source_args(prepare)
    prepare.add_argument("--out", help="output folder (default: features/<corpus name>/)")
    prepare.set_defaults(func=run_prepare)


def run_inspect(args: argparse.Namespace) -> int:
    corpus = load_corpus(args.corpus, args.root, **corpus_options(args))
    print(corpus_summary(corpus))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    corpus = load_corpus(args.corpus, args.root, **corpus_options(args))
    out = Path(args.out) if args.out else DEFAULT_FEATURES_DIR / corpus.name
    path = save_prepared(corpus, out)
    print(corpus_summary(corpus))
    print(f"\nprepared corpus written to {path}")
    return 0
