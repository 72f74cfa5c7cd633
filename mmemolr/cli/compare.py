"""``mmemolr compare``: which modalities, and does label refinement help? One sweep, one table."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mmemolr.cli.common import add_prepared_corpus_arg
from mmemolr.compare.plan import PRESETS
from mmemolr.tables import format_table

DEFAULT_ROOT = Path("runs") / "compare"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="train every modality subset x target x seed and compare them (paper Table 6 layout)",
        description="Expand a preset into trainings (the code path and protocol of `mmemolr train`: model "
        "selection on validation, test evaluated once), run them resumably, locally in parallel or on Ray, "
        "and write the comparison table (table.md/.csv/.json) with paired t-tests plus figures. Rerun the "
        "same command to resume a killed sweep. Config overrides for every run go last as KEY=VALUE.",
    )
    add_prepared_corpus_arg(parser)
    parser.add_argument("--preset", default="table6", choices=PRESETS,
                        help="table6: modality subsets x targets (Table 6); ablation: full, -Sim_speaker, -Sim_ctx, "
                        "-RLD (Table 2); label-enhancement: one-hot, LS, LCM and each RLD refiner form (Table 7); eta: eta=0..5 "
                        "(Table 9); generalization: backbones x one-hot/RLD (Table 5). Default: %(default)s")
    parser.add_argument("--modalities", default="all",
                        help="all (every modality with a feature file) or a list such as t,a,v; table6 uses every "
                        "non-empty subset, the other presets all of them together (default: %(default)s)")
    parser.add_argument("--targets", help="table6 and generalization: training targets, comma separated (default: "
                        "onehot,rld; also ls, lcm)")
    parser.add_argument("--backbones", help="generalization only: backbones, comma separated (default: "
                        "dialoguernn,dialoguegcn,dag-erc,emolr)")
    parser.add_argument("--seeds", default="5", help="number of seeds (0..N-1) or a list such as 0,3,7 "
                        "(default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="local trainings at once, in worker processes with cores/jobs threads each; on a GPU "
                        "they share it (default: %(default)s)")
    parser.add_argument("--batched", action=argparse.BooleanOptionalAction, default=None,
                        help="train the runs that differ only in seed (and, on a CUDA device, modalities) as one "
                        "batched model (one task per group; docs/batched.md). Default: on with a CUDA device, "
                        "off on CPU (measured no faster there)")
    parser.add_argument("--group-size", type=int, default=None,
                        help="--batched: at most this many runs per group, to bound memory (default: all)")
    parser.add_argument("--threads", type=int,
                        help="CPU threads of each training (default: cores/jobs with --jobs > 1, the training "
                        "default with one job, --cpus-per-run on Ray)")
    parser.add_argument("--executor", default="local", choices=["local", "ray"],
                        help="local processes, or one Ray task per run on a Ray cluster (pip install "
                        "'mmemolr[ray]'; sweep and features folders must be visible to the workers or results are "
                        "sent back)")
    parser.add_argument("--ray-address", default="auto",
                        help="Ray cluster address for --executor ray: auto (RAY_ADDRESS or the running cluster), "
                        "host:port, ray://host:port, or local (start Ray on this machine). Default: %(default)s")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs each run asks for")
    parser.add_argument("--gpus-per-run", type=float, default=0.0,
                        help="Ray: GPUs each run asks for (0.25 puts four runs on one GPU)")
    parser.add_argument("--out", help=f"sweep folder (default: {DEFAULT_ROOT}/<corpus>-<preset>, followed by the "
                        "names of the files chosen with --features)")
    parser.add_argument("--config", help="base training config (default: configs/<corpus>.yaml)")
    parser.add_argument("--features", action="append", default=[], metavar="M=FILE",
                        help="feature file of modality M (t, a, v) when the corpus folder holds several")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their status, train nothing")
    parser.add_argument("--no-figures", action="store_true", help="write the table only")
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="also write a TensorBoard log of every run into DIR/<run name> (per-epoch losses, dev "
                        "metrics, refinement diagnostics; hparams with final metrics for the HParams view), e.g. "
                        "--tensorboard runs/compare/meld-table6/tb; needs pip install 'mmemolr[tensorboard]'")
    parser.add_argument("--no-progress", action="store_true",
                        help="one plain line per finished run (rate, ETA) instead of progress bars; the default "
                        "when stderr is not a terminal")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides for every run, e.g. optim.max_epochs=30 model.hidden=100")
    parser.set_defaults(func=run_compare)


def _features(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"--features {item!r}: expected M=FILE, e.g. --features a=audio-opensmile.h5")
        out[key.strip()] = value.strip()
    return out


def default_sweep_dir(corpus_name: str, preset: str, features: dict[str, str]) -> Path:
    """``runs/compare/<corpus>-<preset>``; with files chosen by --features their names follow (in t, a, v
    order), so sweeps over two encoders of one corpus do not share a folder."""
    from mmemolr.fuse import modality_code

    chosen = {modality_code(m): Path(f).name.removesuffix(".h5") for m, f in features.items()}
    parts = [corpus_name, preset, *(chosen[c] for c in ("t", "a", "v") if c in chosen)]
    return DEFAULT_ROOT / re.sub(r"[^A-Za-z0-9_.+=-]+", "_", "-".join(parts))


def run_compare(args: argparse.Namespace) -> int:
    from mmemolr.compare import format_text, make_executor, make_plan, run_sweep
    from mmemolr.compare.aggregate import run_status

    if args.tensorboard:
        from mmemolr.train.tblog import require

        require()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()] if args.backbones else None
    plan = make_plan(args.corpus, args.features_dir, preset=args.preset, modalities=args.modalities,
                     targets=targets, seeds=args.seeds, config=args.config, overrides=args.overrides,
                     features=_features(args.features), backbones=backbones)
    out = Path(args.out) if args.out else default_sweep_dir(plan.corpus_name, plan.preset, plan.features)
    executor = make_executor(args.executor, jobs=args.jobs, address=args.ray_address,
                             cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run, threads=args.threads)
    if args.dry_run:
        from mmemolr.compare.preflight import preflight

        rows = [[r.name, r.row, r.column, r.seed, run_status(out / r.name)] for r in plan.runs]
        print(format_table(["run", "row", "column", "seed", "status"], rows,
                           title=f"{plan.preset} on {plan.corpus_name}: {len(rows)} runs in {out}"))
        problems = preflight(plan, out)
        for problem in problems:
            print(f"problem: {problem}", file=sys.stderr)
        return 1 if problems else 0
    print(f"{plan.preset} on {plan.corpus_name}: {len(plan.runs)} runs "
          f"({len(plan.rows)} rows x {len(plan.columns)} columns x {len(plan.seeds)} seeds) in {out}; "
          f"executor {executor.describe()}", file=sys.stderr)
    report = run_sweep(plan, out, executor, progress="lines" if args.no_progress else True, batched=args.batched,
                       group_size=args.group_size, tensorboard=args.tensorboard)
    print(format_text(report.table))
    print(f"\n{len(report.trained)} run(s) trained, {len(report.skipped)} already complete (skipped), "
          f"{len(report.failures)} failed, {report.seconds:.0f} s; table: {out / 'table.md'} (.csv, .json)")
    if not args.no_figures:
        from mmemolr.report import make_report

        made = make_report(out)
        for name, path in made.items():
            if name == "report":
                print(f"report: {path}")
            elif name != "table":
                print(f"figure {name}: {path}" + (" (unchanged, kept)" if name in made.reused else ""))
    if report.failures:
        lines = [f"  {f.name}: {f.error}" for f in report.failures]
        raise RuntimeError(f"{len(report.failures)} run(s) failed (details in <run>/error.log); rerun the same "
                           "command to retry them:\n" + "\n".join(lines))
    return 0
