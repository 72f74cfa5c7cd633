"""``mmemolr train``: train the Emotion Predictor (with a training target) into a run folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmemolr.cli.common import add_prepared_corpus_arg
from mmemolr.tables import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train the Emotion Predictor on a corpus's feature files",
        description="Train EmoLR's Emotion Predictor on the chosen modalities with a training target; select "
                    "the epoch on dev (weighted F1), test once, write a run folder. Rerun to resume.",
        epilog="extra KEY=VALUE arguments override the config, e.g. optim.lr=3e-4 model.hidden=200",
    )
    add_prepared_corpus_arg(parser)
    parser.add_argument("--modalities", default=None,
                        help="comma-separated subset of t,a,v; the full names text,audio,visual are the same "
                        "(default: config's)")
    parser.add_argument("--target", default=None, help="onehot, rld, ls, lcm, or votes on a corpus with annotator votes (default: config's)")
    parser.add_argument("--backbone", default=None,
                        help="emolr, dialoguernn, dialoguegcn or dag-erc (default: config's; docs/backbones.md)")
    parser.add_argument("--config", default=None,
                        help="YAML config (default: configs/<corpus>.yaml when it exists)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--seeds", default=None,
                        help="several seeds, e.g. 0,1,2,3,4 or 0-4: trained together as one batched model "
                        "(docs/batched.md), one run folder each (--out then holds seed<N>/ folders)")
    parser.add_argument("--device", default=None, help="auto (CUDA when present), cpu or cuda[:N]")
    parser.add_argument("--no-sim-speaker", action="store_true", help="rld ablation: drop Sim_speaker")
    parser.add_argument("--no-sim-ctx", action="store_true", help="rld ablation: drop Sim_ctx")
    parser.add_argument("--out", default=None,
                        help="run folder (default: runs/<corpus>/<modalities>-<target>-seed<N>)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default 1; see docs/training.md)")
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="also write a TensorBoard log into DIR/<run folder name>: per-epoch losses, dev "
                        "metrics and refinement diagnostics, the hparams with the final metrics (needs "
                        "pip install 'mmemolr[tensorboard]'; view with tensorboard --logdir DIR)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress output (default: a bar on a terminal, one line per epoch otherwise)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    from mmemolr.config import load_config
    from mmemolr.corpus.prepared import canonical_corpus
    from mmemolr.train.config import TrainConfig, default_config_path

    corpus = canonical_corpus(args.corpus, args.features_dir)
    path = Path(args.config) if args.config else default_config_path(corpus)
    flags = [f"corpus={corpus}"]
    if args.modalities:
        flags.append(f"modalities=[{args.modalities}]")
    if args.target:
        flags.append(f"target.name={args.target}")
    if getattr(args, "backbone", None):
        flags.append(f"model.backbone={args.backbone}")
    if args.seed is not None:
        flags.append(f"seed={args.seed}")
    if args.device:
        flags.append(f"device={args.device}")
    if args.no_sim_speaker:
        flags.append("target.sim_speaker=false")
    if args.no_sim_ctx:
        flags.append("target.sim_ctx=false")
    return load_config(TrainConfig, path, flags + list(args.overrides))


def default_run_dir(config) -> Path:
    from mmemolr.fuse import normalise_modalities

    name = f"{''.join(normalise_modalities(config.modalities))}-{config.target.name}"
    if config.model.backbone != "emolr":
        name = f"{config.model.backbone}-{name}"
    if config.target.name == "rld" and not config.target.sim_speaker:
        name += "-nospeaker"
    if config.target.name == "rld" and not config.target.sim_ctx:
        name += "-noctx"
    return Path("runs") / Path(config.corpus).name / f"{name}-seed{config.seed}"


def run(args: argparse.Namespace) -> int:
    from mmemolr.train.run import run_training

    if args.tensorboard:
        from mmemolr.train.tblog import require

        require()
    if args.seeds is not None:
        return run_seeds(args)
    config = resolve_config(args)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    results = run_training(config, run_dir, Path(args.features_dir), progress=not args.quiet, threads=args.threads,
                           tensorboard=args.tensorboard)
    print(results_table(results))
    for warning in results.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"run folder: {run_dir}")
    return 0


def run_seeds(args: argparse.Namespace) -> int:
    """``--seeds``: the seeds of one setting as one batched group."""
    import dataclasses

    from mmemolr.compare.stats import summarize
    from mmemolr.train.batched import parse_seed_list, train_group

    if args.seed is not None:
        raise ValueError("give --seed or --seeds, not both")
    base = resolve_config(args)
    configs = [dataclasses.replace(base, seed=seed) for seed in parse_seed_list(args.seeds)]
    run_dirs = [Path(args.out) / f"seed{c.seed}" if args.out else default_run_dir(c) for c in configs]
    all_results = train_group(configs, run_dirs, Path(args.features_dir), progress=not args.quiet,
                              threads=args.threads, tensorboard=args.tensorboard)
    rows = [[c.seed, r["best_epoch"], r["epochs_run"], r["valid"]["weighted_f1"] * 100,
             r["test"]["weighted_f1"] * 100, str(d)] for c, r, d in zip(configs, all_results, run_dirs)]
    print(format_table(["seed", "best epoch", "epochs", "dev W-F1 %", "test W-F1 %", "run folder"], rows,
                       title=f"{base.corpus}: {len(configs)} seeds trained as one batched group"))
    stats = summarize({c.seed: r["test"]["weighted_f1"] * 100 for c, r in zip(configs, all_results)})
    spread = f" ± {stats['std']:.2f}" if stats["std"] is not None else ""
    print(f"test weighted F1: {stats['mean']:.2f}{spread} over {stats['n']} seed(s)")
    for r in all_results:
        for warning in r.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def results_table(results: dict) -> str:
    """Dev and test metrics (percent) of a results dict, then test per-class F1."""
    rows = [[split, results[split]["accuracy"] * 100, results[split]["weighted_f1"] * 100,
             results[split]["macro_f1"] * 100] for split in ("valid", "test")]
    out = format_table(["split", "accuracy %", "weighted F1 %", "macro F1 %"], rows,
                       title=f"{results['corpus']}: best epoch {results['best_epoch']} of {results['epochs_run']} "
                             f"({results['seconds_per_epoch']:.2f} s/epoch, {results['device']})")
    per_class = results["test"]["per_class_f1"]
    support = results["test"].get("support", {})
    out += "\n\n" + format_table(["label", "test F1 %", "support"],
                                 [[k, v * 100, support.get(k, "")] for k, v in per_class.items()])
    return out
