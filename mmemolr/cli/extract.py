"""``mmemolr extract``: turn a prepared corpus into one HDF5 feature file (resumable, shardable)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path

from mmemolr.cli.common import add_prepared_corpus_arg
from mmemolr.config import parse_overrides
from mmemolr.corpus.prepared import corpus_dir, load_prepared
from mmemolr.extract import (
    DEFAULT_EXTRACTORS,
    build_extractor,
    check_failures,
    default_output,
    failure_summary,
    parse_max_failures,
    parse_shard,
    resolve_device,
    run_extraction,
)
from mmemolr.extract.failures import DEFAULT_MAX_FAILURES
from mmemolr.extract.runner import usable_cpus
from mmemolr.tables import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract", help="extract text, audio or visual features of a prepared corpus into an HDF5 file",
        description="Extract one modality of a prepared corpus into features/<corpus>/<extractor>.h5. "
        "Rerun the same command to resume an interrupted run; --shard I/N splits the work and "
        "`mmemolr features merge` joins the shards. Extractor options go last as KEY=VALUE "
        "(see --list).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_prepared_corpus_arg(parser, required=False)
    parser.add_argument("--modality", choices=sorted(DEFAULT_EXTRACTORS),
                        help="text, audio or visual (default extractors: "
                        + ", ".join(f"{k} -> {v}" for k, v in sorted(DEFAULT_EXTRACTORS.items())) + ")")
    parser.add_argument("--extractor", help="extractor name (see --list); default: the modality's")
    parser.add_argument("--model", help="model id or local folder, for extractors with a model option")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s; auto picks cuda "
                        "when torch sees a GPU)")
    parser.add_argument("--batch-size", type=int, help="items per batch (the extractor's batch_size option "
                        "when it has one)")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes for CPU-parallel extractors (audio/visual signal processing); "
                        "default 0: one per available CPU; batched neural encoders always use one process")
    parser.add_argument("--shard", help="I/N: extract only shard I (0-based) of N; join with `mmemolr features merge`")
    parser.add_argument("--out", help="output file (default: <corpus folder>/<extractor output name>.h5)")
    parser.add_argument("--max-failures", help="failed items tolerated before the command fails: a count (0, 25) "
                        "or a share (1%%) of the items that have something to extract (items without media for "
                        "the modality, or without text, are absent, not failures); default: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_MAX_FAILURES.items()).replace("%", "%%"))
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming or reusing OUT")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines (rate, ETA) instead of a bar; the default when stderr is not a "
                        "terminal")
    parser.add_argument("--list", action="store_true", help="list extractors and their options, then exit")
    parser.add_argument("options", nargs="*", metavar="KEY=VALUE",
                        help="extractor options, e.g. pooling=cls context=2 (see --list)")
    parser.set_defaults(func=run_extract)


def run_extract(args: argparse.Namespace) -> int:
    if args.list:
        print(list_extractors())
        return 0
    if not args.corpus:
        raise ValueError("--corpus is required: a prepared corpus name or folder (mmemolr corpus prepare)")
    corpus = load_prepared(args.corpus, args.features_dir)
    folder = corpus_dir(args.corpus, args.features_dir)
    options = parse_overrides(args.options)
    device = resolve_device(args.device)
    extractor_name = args.extractor or (DEFAULT_EXTRACTORS.get(args.modality) if args.modality else None)
    runner_batch = None
    if extractor_name is not None:
        from extractors import get_extractor

        fields = {f.name for f in dataclasses.fields(get_extractor(extractor_name).config_class)}
        if args.model is not None:
            if "model" not in fields:
                raise ValueError(f"extractor {extractor_name!r} takes no --model (its options: "
                                 f"{', '.join(sorted(fields)) or 'none'})")
            options["model"] = args.model
        if args.batch_size is not None:
            if "batch_size" in fields:
                options["batch_size"] = args.batch_size
            # Also to the runner: a size the user gave is kept as is with --workers.
            runner_batch = args.batch_size
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    extractor = build_extractor(extractor_name, args.modality, options, device=device)
    shard = parse_shard(args.shard)
    policy = parse_max_failures(args.max_failures, extractor.modality)
    if args.workers < 0:
        raise ValueError(f"--workers must be 0 (auto) or more, got {args.workers}")
    workers = args.workers or (usable_cpus() if extractor.cpu_parallel else 1)
    out = args.out or default_output(folder, extractor, shard)
    print(f"{extractor.modality} features of {corpus.name} with {extractor.name} "
          f"{json.dumps(dataclasses.asdict(extractor.config))} on {device}"
          + (f", shard {shard.index}/{shard.count}" if not shard.whole else "")
          + (f", {workers} workers" if workers > 1 and extractor.cpu_parallel else "")
          + f"\n-> {out}", file=sys.stderr)
    if extractor.modality == "visual":
        note = still_image_note(corpus)
        if note:
            print(note, file=sys.stderr)
    result = run_extraction(corpus, extractor, out, shard=shard, workers=workers, batch_size=runner_batch,
                            overwrite=args.overwrite, progress="lines" if args.no_progress else True)
    print(failure_summary(result.errors, result.total))
    rate = result.processed / result.seconds if result.seconds > 0 else 0.0
    if result.total == 0:
        print(f"note: shard {shard.index}/{shard.count} holds no utterances (shards never split a dialogue); "
              "its empty file still counts for `mmemolr features merge`", file=sys.stderr)
    done = "nothing to extract" if result.total == 0 else "already complete" if result.processed == 0 else f"{result.processed:,} items in {result.seconds:.1f} s ({rate:,.1f}/s)"
    absent = f", {len(result.absent):,} absent" if result.absent else ""
    print(f"wrote {result.path}: {result.total:,} utterances, "
          f"{result.total - len(result.errors):,} with features{absent}, dim {extractor.feature_dim()}; {done}")
    check_failures(result.path, result.errors, result.total, policy)
    return 0


def still_image_note(corpus) -> str | None:
    """A still image given as an utterance's video is read as a one-frame video: say so, with an example."""
    from extractors.faces import IMAGE_SUFFIXES

    stills = [u for u in corpus.utterances() if u.video_path and Path(u.video_path).suffix.lower() in IMAGE_SUFFIXES]
    if not stills:
        return None
    return (f"note: {len(stills)} utterance(s) have a still image, not a video, as video_path (e.g. "
            f"{stills[0].video_path} for {stills[0].id}); each is read as a single frame")


def list_extractors() -> str:
    from extractors import EXTRACTORS, get_extractor

    get_extractor(DEFAULT_EXTRACTORS["text"])  # imports the built-in extractors
    rows = []
    for name, cls in sorted(EXTRACTORS.items(), key=lambda kv: (kv[1].modality, kv[0])):
        config = cls.config_class()
        options = " ".join(f"{f.name}={json.dumps(getattr(config, f.name))}" for f in dataclasses.fields(config))
        default = " (default)" if DEFAULT_EXTRACTORS.get(cls.modality) == name else ""
        lines = textwrap.wrap(options, width=80, break_long_words=False, break_on_hyphens=False) or [""]
        rows.append([cls.modality, name + default, "workers" if cls.cpu_parallel else "batched", lines[0]])
        rows.extend(["", "", "", line] for line in lines[1:])
    return format_table(["modality", "extractor", "parallel", "options (defaults)"], rows)
