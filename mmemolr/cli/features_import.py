"""``mmemolr features import``: turn another toolkit's feature file into a corpus plus HDF5 features."""

from __future__ import annotations

import argparse

from mmemolr.corpus.stats import corpus_summary
from mmemolr.importers import IMPORTERS, LAYOUTS
from mmemolr.tables import format_table


def register_import(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import", help="import DialogueRNN/MMGCN feature pickles as a prepared corpus and feature files",
        description="Import a feature pickle of the DialogueRNN lineage (IEMOCAP or MELD layout, incl. MMGCN "
        "variants): writes <features-dir>/<corpus-name>/corpus.json and one HDF5 file per modality.",
    )
    parser.add_argument("file", help="the pickle, e.g. IEMOCAP_features_raw.pkl or MELD_features_raw.pkl")
    parser.add_argument("--format", required=True, choices=sorted(IMPORTERS), help="source format")
    parser.add_argument("--corpus-name", required=True, help="name of the prepared corpus to create")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow unpickling the file: a pickle can run any code, so only for files you trust")
    parser.add_argument("--layout", default="auto", choices=["auto", *LAYOUTS],
                        help="item layout of the pickle (default: detected)")
    parser.add_argument("--labels", help="label names in id order, comma separated (default: the layout's)")
    parser.add_argument("--valid-ids", metavar="FILE",
                        help="the corpus's validation dialogues (they are part of trainVid): a text file with one "
                        "dialogue id per line, a JSON list, or a prepared corpus (folder or corpus.json) whose dev "
                        "dialogues they are. Without it a validation split is carved from trainVid")
    parser.add_argument("--valid-fraction", type=float,
                        help="without --valid-ids: share of trainVid dialogues carved out as validation (default 0.1)")
    parser.add_argument("--valid-seed", type=int, help="without --valid-ids: seed of the validation carve (default 0)")
    parser.add_argument("--features-dir", default="features", help="output root (default: %(default)s)")
    parser.add_argument("--out", help="output folder (default: <features-dir>/<corpus-name>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus/feature files there")
    parser.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] if args.labels else None
    result = IMPORTERS[args.format](
        args.file, args.corpus_name, trust_pickle=args.trust_pickle, layout=args.layout, labels=labels,
        features_dir=args.features_dir, out_dir=args.out, valid_ids=args.valid_ids,
        valid_fraction=args.valid_fraction, valid_seed=args.valid_seed, overwrite=args.overwrite,
    )
    print(corpus_summary(result.corpus))
    rows = [[m, result.dims[m], result.failed.get(m, 0), result.zero_rows.get(m, 0), str(p)]
            for m, p in result.feature_files.items()]
    rows += [[m, result.dims[m], "", "", f"not imported: {why} (placeholder)"] for m, why in result.placeholders.items()]
    print()
    print(format_table(["modality", "dim", "non-finite rows", "zero rows", "file"], rows,
                       title=f"layout {result.layout}"))
    print(f"\nvalidation split: {result.valid_split}")
    print(f"\nprepared corpus: {result.corpus_dir}  (use --corpus {result.corpus_dir} or --corpus "
          f"{args.corpus_name} --features-dir {args.features_dir})")
    return 0
