"""Wall time of a ``mmemolr compare --preset table6`` sweep on MELD, and the speed-up from ``--jobs``.

Data: the prepared MELD corpus with its real 384-d text features (features/meld/, helper of `mmemolr
extract`), plus synthetic audio (88-d, eGeMAPS-sized) and visual (512-d) feature files with the right
ids and corpus fingerprint (random values: speed does not depend on them). Everything is written into a
work folder (default: a temporary one); the user's features/meld is only read.

Measured, all through the compare code path (run_sweep -> run_training):
  1. one run alone: T+A+V, RLD, seed 0, configs/<corpus>.yaml (early stopping), one job -- wall seconds,
     epochs run, seconds per epoch;
  2. the same fixed amount of work -- table6 with 1 seed (14 runs) at exactly --epochs epochs each (no
     early stopping, so both sides do identical work) -- with --jobs 1 (baseline) and --jobs N, each
     --repeats times (median); the ratio is the speed-up;
  3. the full sweep (7 subsets x 2 targets x --seeds seeds): measured with --full (--jobs N), otherwise
     extrapolated as runs x epochs of run 1 x (per-epoch seconds of the --jobs N subset sweep) -- an upper
     bound, since runs on the (random) audio/visual features alone stop early. With --full the implied
     speed-up is also given: the same epochs at the run-alone speed / the measured wall time.

  .venv/bin/python benchmarks/bench_compare.py [--jobs 2] [--epochs 3] [--repeats 3] [--seeds 5] [--full]

With --batched-vs-jobs only this is measured instead: table6 with --seeds seeds (7 subsets x 2 targets x
seeds runs) at exactly --epochs epochs each, unbatched with --jobs N against --batched with --jobs N (on CPU
one group per subset and target, the groups in parallel), each arm in a fresh process, interleaved,
--repeats times (median): wall seconds, CPU seconds (the arm's process and workers: less sensitive to the
share of a busy machine an arm got), seconds per run-epoch, peak RSS of a worker (one run, or one group),
ratios.

  .venv/bin/python benchmarks/bench_compare.py --batched-vs-jobs --seeds 2 --epochs 2 --repeats 1

Target: the full 5-seed table6 sweep within 60 minutes on a 2-core CPU. Numbers from a busy machine are
rough; rerun on an idle machine before quoting them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mmemolr.compare import LocalExecutor, make_plan, run_sweep
from mmemolr.corpus import corpus_dir, load_prepared
from mmemolr.store import FeatureWriter, find_feature_files
from mmemolr.tables import format_table

SYNTHETIC = {"audio": 88, "visual": 512}


def make_work_folder(features_dir: Path, corpus: str, work: Path) -> Path:
    """<work>/<corpus>/: corpus.json and the text file linked, synthetic audio and visual files written."""
    source = corpus_dir(corpus, features_dir)
    prepared = load_prepared(corpus, features_dir)
    text = find_feature_files(source, "text")
    if len(text) != 1:
        raise SystemExit(f"{source} must hold exactly one text feature file (found {len(text)}); "
                         "run `mmemolr extract --corpus meld --modality text` first")
    target = work / prepared.name
    target.mkdir(parents=True, exist_ok=True)
    for path in (source / "corpus.json", text[0]):
        link = target / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    ids = prepared.utterance_ids()
    rng = np.random.default_rng(0)
    for modality, dim in SYNTHETIC.items():
        attrs = {"corpus_name": prepared.name, "corpus_fingerprint": prepared.fingerprint(), "modality": modality,
                 "extractor": "benchmark-random", "dim": dim, "model_id": "random"}
        with FeatureWriter(target / f"{modality}-random{dim}.h5", ids, attrs) as writer:
            if writer.pending_ids:
                writer.write(ids, rng.standard_normal((len(ids), dim)).astype(np.float32))
    return target


def timed_sweep(corpus: Path, out: Path, jobs: int, only: str | None = None, **plan_args) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    plan = make_plan(str(corpus), corpus.parent, **plan_args)
    if only:
        plan.runs = [plan.run(only)]
    start = time.perf_counter()
    report = run_sweep(plan, out, LocalExecutor(jobs), progress=False)
    seconds = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"runs failed: {[(f.name, f.error) for f in report.failures]}")
    return seconds, report.table


def one_arm(corpus: Path, out: Path, jobs: int, batched: bool, seeds: int, epochs: int) -> dict:
    """One sweep of the batched comparison, in this process (run as a subprocess: its own peak RSS)."""
    import resource

    fixed = [f"optim.max_epochs={epochs}", f"optim.patience={epochs}", "device=cpu"]
    shutil.rmtree(out, ignore_errors=True)
    plan = make_plan(str(corpus), corpus.parent, preset="table6", modalities="all", seeds=seeds, overrides=fixed)
    start = time.perf_counter()
    report = run_sweep(plan, out, LocalExecutor(jobs), progress=False, batched=batched)
    seconds = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"runs failed: {[(f.name, f.error) for f in report.failures]}")
    kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if jobs > 1 else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # CPU seconds of this process and its (finished) workers: less sensitive than the wall time to how
    # much of a shared machine the arm got.
    cpu = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                resource.getrusage(resource.RUSAGE_CHILDREN)))
    return {"wall_s": seconds, "cpu_s": cpu, "runs": len(plan.runs), "epochs": epochs,
            "s_per_run_epoch": seconds / (len(plan.runs) * epochs), "peak_worker_rss_mib": kib / 1024}


def batched_vs_jobs(corpus: Path, work: Path, jobs: int, seeds: int, epochs: int, repeats: int) -> dict:
    import subprocess
    import sys

    arms: dict[str, list[dict]] = {"jobs": [], "batched": []}
    for _ in range(repeats):
        for arm in arms:  # interleaved, so drifting load hits both
            cmd = [sys.executable, __file__, "--one-arm", arm, "--work", str(work), "--jobs", str(jobs),
                   "--seeds", str(seeds), "--epochs", str(epochs), "--corpus", corpus.name]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            arms[arm].append(json.loads(done.stdout.strip().splitlines()[-1]))
    med = {arm: statistics.median(r["wall_s"] for r in results) for arm, results in arms.items()}
    cpu = {arm: statistics.median(r["cpu_s"] for r in results) for arm, results in arms.items()}
    return {"arms": arms, "median_wall_s": med, "speedup_batched": med["jobs"] / med["batched"],
            "median_cpu_s": cpu, "cpu_ratio_batched": cpu["jobs"] / cpu["batched"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--corpus", default="meld")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of every run of the fixed-work subset sweep")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the subset sweeps (median)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="also run the full sweep with --jobs N")
    parser.add_argument("--work", help="work folder (default: a temporary folder, removed at the end)")
    parser.add_argument("--json", help="write the numbers to this JSON file")
    parser.add_argument("--batched-vs-jobs", action="store_true",
                        help="measure only batched groups against --jobs N (see above)")
    parser.add_argument("--one-arm", choices=["jobs", "batched"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one_arm:
        corpus = Path(args.work) / "features" / args.corpus
        print(json.dumps(one_arm(corpus, Path(args.work) / f"arm-{args.one_arm}", args.jobs,
                                 args.one_arm == "batched", args.seeds, args.epochs)))
        return

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        corpus = make_work_folder(Path(args.features_dir), args.corpus, work / "features")
        numbers: dict = {}
        if args.batched_vs_jobs:
            numbers = batched_vs_jobs(corpus, work, args.jobs, args.seeds, args.epochs, args.repeats)
            rows = [[f"--jobs {args.jobs}" + (" --batched" if arm == "batched" else ""),
                     f"{numbers['median_wall_s'][arm]:.1f} s", f"{numbers['median_cpu_s'][arm]:.1f} s",
                     f"{statistics.median(r['s_per_run_epoch'] for r in results):.2f} s",
                     f"{max(r['peak_worker_rss_mib'] for r in results):.0f} MiB"]
                    for arm, results in numbers["arms"].items()]
            runs = numbers["arms"]["jobs"][0]["runs"]
            print(format_table(["arm", "wall (median)", "CPU (median)", "s per run-epoch", "peak worker RSS"],
                               rows, title=f"table6 on {args.corpus}, {runs} runs x {args.epochs} epochs: batched "
                                           f"is {numbers['speedup_batched']:.2f}x the speed of --jobs {args.jobs} "
                                           f"({numbers['cpu_ratio_batched']:.2f}x in CPU seconds)"))
            if args.json:
                Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")
            return

        # 1. one run alone, the shipped config
        seconds, table = timed_sweep(corpus, work / "one", 1, only="t+a+v_rld_seed0", preset="table6",
                                     modalities="t,a,v", seeds=[0], targets=["rld"])
        run = next(r for r in table["runs"] if r["name"] == "t+a+v_rld_seed0")
        numbers["one_run"] = {"wall_s": seconds, "epochs": run["epochs_run"],
                              "s_per_epoch": seconds / max(1, run["epochs_run"])}

        # 2. fixed work, jobs 1 vs jobs N
        fixed = [f"optim.max_epochs={args.epochs}", f"optim.patience={args.epochs}"]
        walls: dict[int, list[float]] = {1: [], args.jobs: []}
        for _ in range(args.repeats):
            for jobs in walls:  # interleaved, so drifting load hits both
                seconds, _ = timed_sweep(corpus, work / f"subset-j{jobs}", jobs, preset="table6", modalities="all",
                                         seeds=[0], overrides=fixed)
                walls[jobs].append(seconds)
        med = {j: statistics.median(w) for j, w in walls.items()}
        subset_runs = 14
        numbers["subset"] = {"runs": subset_runs, "epochs_each": args.epochs,
                             "wall_s": {str(j): w for j, w in walls.items()},
                             "median_s": {str(j): m for j, m in med.items()}, "speedup": med[1] / med[args.jobs]}

        # 3. the full sweep
        total_runs = subset_runs * args.seeds
        per_epoch_parallel = med[args.jobs] / (subset_runs * args.epochs)
        numbers["full_estimate_s"] = total_runs * numbers["one_run"]["epochs"] * per_epoch_parallel
        if args.full:
            seconds, table = timed_sweep(corpus, work / "full", args.jobs, preset="table6", modalities="all",
                                         seeds=args.seeds)
            numbers["full_measured_s"] = seconds
            numbers["full_epochs_mean"] = float(np.mean([r["epochs_run"] for r in table["runs"]]))
            # What one job would need for the same epochs, at the per-epoch speed of the run alone.
            numbers["full_serial_equivalent_s"] = (total_runs * numbers["full_epochs_mean"]
                                                   * numbers["one_run"]["s_per_epoch"])
            numbers["full_implied_speedup"] = numbers["full_serial_equivalent_s"] / seconds

        rows = [
            ["one run alone (T+A+V, RLD, shipped config)", f"{numbers['one_run']['wall_s']:.1f} s",
             f"{numbers['one_run']['epochs']} epochs, {numbers['one_run']['s_per_epoch']:.2f} s/epoch"],
            [f"{subset_runs} runs x {args.epochs} epochs, --jobs 1", f"{med[1]:.1f} s", f"median of {args.repeats}"],
            [f"{subset_runs} runs x {args.epochs} epochs, --jobs {args.jobs}", f"{med[args.jobs]:.1f} s",
             f"speed-up {numbers['subset']['speedup']:.2f}x"],
            [f"full table6, {total_runs} runs, --jobs {args.jobs} (estimate)",
             f"{numbers['full_estimate_s'] / 60:.1f} min",
             "runs x epochs of run 1 x s/epoch at --jobs N (high: runs without text stop early)"],
        ]
        if args.full:
            rows.append([f"full table6, {total_runs} runs, --jobs {args.jobs} (measured)",
                         f"{numbers['full_measured_s'] / 60:.1f} min",
                         f"mean {numbers['full_epochs_mean']:.1f} epochs a run"])
            rows.append(["same epochs with one job (run-alone s/epoch)",
                         f"{numbers['full_serial_equivalent_s'] / 60:.1f} min",
                         f"implied speed-up {numbers['full_implied_speedup']:.2f}x"])
        print(format_table(["measurement", "wall", "note"], rows,
                           title=f"compare table6 on {args.corpus}: text 384-d real, audio 88-d and visual 512-d synthetic"))
        if args.json:
            Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
