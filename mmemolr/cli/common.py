"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import Any

from mmemolr.corpus.prepared import DEFAULT_FEATURES_DIR


def add_corpus_source_args(parser: argparse.ArgumentParser) -> None:
    """--corpus/--root for commands that read raw corpus files."""
    parser.add_argument("--corpus", required=True,
                        help="corpus format (any case): meld, emorynlp, emotionlines, iemocap, manifest, "
                        "transcript")
    parser.add_argument("--root", required=True, help="folder (or file) of the raw corpus; transcript: a .stm, "
                        ".vtt, .srt or .csv file, or a folder of them with their recordings")
    parser.add_argument("--media-root", help="MELD: folder of the raw release with the video clips")
    parser.add_argument("--media", help="transcript: the recording (audio or video) of a single conversation "
                        "(default: <name>.<ext> beside the transcript)")
    parser.add_argument("--require-media", action="store_true", help="fail when a media file is missing")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a pickle (IEMOCAP processed release); pickles can run code")
    parser.add_argument("--name", help="manifest, transcript: corpus name (default: the manifest's folder name, "
                        "the transcript's file name)")
    parser.add_argument("--valid-seed", type=int, default=0, help="IEMOCAP raw: seed of the validation carve")
    parser.add_argument("--context-turns", action="store_true",
                        help="IEMOCAP raw: keep the turns outside the six classes (xxx, oth, sur, fea, dis) in their "
                        "dialogue as context-only utterances (no label: read as context, left out of loss and "
                        "metrics) instead of dropping them")


def corpus_options(args: argparse.Namespace) -> dict[str, Any]:
    from mmemolr.corpus.registry import format_name

    args.corpus = format_name(args.corpus)
    options: dict[str, Any] = {}
    if args.media:
        if args.corpus != "transcript":
            raise ValueError(f"--media is for --corpus transcript (MELD clips: --media-root), not {args.corpus}")
        options["media"] = args.media
    if args.media_root:
        options["media_root"] = args.media_root
    if args.require_media:
        options["require_media"] = True
    if args.trust_pickle:
        options["trust_pickle"] = True
    if args.name:
        options["name"] = args.name
    if args.corpus == "iemocap":
        options["valid_seed"] = args.valid_seed
    if args.context_turns:
        if args.corpus != "iemocap":
            raise ValueError(f"--context-turns is for --corpus iemocap (raw release), not {args.corpus}")
        options["context_turns"] = True
    return options


def add_prepared_corpus_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--corpus NAME_OR_DIR for commands that use a prepared corpus."""
    parser.add_argument("--corpus", required=required,
                        help="prepared corpus: a name under --features-dir or a folder holding corpus.json")
    parser.add_argument("--features-dir", default=str(DEFAULT_FEATURES_DIR),
                        help="where prepared corpora and feature files live (default: %(default)s)")
