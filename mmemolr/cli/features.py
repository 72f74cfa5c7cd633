"""``mmemolr features inspect|validate|merge``: look at, check and join HDF5 feature files."""

from __future__ import annotations

import argparse
import sys

from mmemolr.cli.features_import import register_import
from mmemolr.corpus import load_prepared
from mmemolr.store import being_written, describe_features, merge_shards, read_snapshot, validate_features
from mmemolr.store.validate import describe_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="inspect, validate, merge or import feature files")
    sub = parser.add_subparsers(dest="features_command", metavar="ACTION", required=True)

    inspect = sub.add_parser("inspect", help="print metadata and coverage of a feature file (also one being "
                             "written: its progress)")
    inspect.add_argument("file")
    inspect.set_defaults(func=run_inspect)

    validate = sub.add_parser("validate", help="check ids, values, dimension and corpus fingerprint")
    validate.add_argument("file")
    validate.add_argument("--corpus", help="prepared corpus (name or folder) the file must match")
    validate.add_argument("--features-dir", default="features")
    validate.set_defaults(func=run_validate)

    merge = sub.add_parser("merge", help="join shard files written with --shard I/N")
    merge.add_argument("shards", nargs="+")
    merge.add_argument("--out", required=True)
    merge.add_argument("--corpus", help="prepared corpus: check that every utterance is covered")
    merge.add_argument("--features-dir", default="features")
    merge.set_defaults(func=run_merge)

    register_import(sub)


def run_inspect(args: argparse.Namespace) -> int:
    # Without HDF5's lock, so that a .partial.h5 an extraction is writing right now can be looked at.
    ff = read_snapshot(args.file)
    print(describe_features(ff))
    if not ff.attrs.get("complete"):
        print()
        print(describe_progress(ff, being_written(args.file)))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    corpus = load_prepared(args.corpus, args.features_dir) if args.corpus else None
    problems = validate_features(args.file, corpus)
    if problems:
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    corpus = load_prepared(args.corpus, args.features_dir) if args.corpus else None
    out = merge_shards(args.shards, args.out, corpus)
    print(f"merged {len(args.shards)} shard(s) into {out}")
    return 0
