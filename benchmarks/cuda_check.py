"""Check the CUDA path on a machine with a GPU: text extraction in bf16 and fp32, training on the GPU.

First, the hand-written recurrences (mmemolr.model.bptt) against autograd on the device
(``bptt.self_check``: one small forward and backward; training does the same on first use of a device
type the tests have not verified, and falls back to the autograd loops on a mismatch). Then it runs the
same commands a user types (``python -m mmemolr extract|train``) on a prepared corpus and prints one table:
- extraction of the whole corpus on cuda with ``dtype=float32`` and ``dtype=bfloat16`` (wall seconds,
  utterances/s, the second run of each so the model is loaded and kernels are warm), and how far the
  bf16 vectors are from the fp32 ones (cosine per utterance, and dev weighted F1 of a logistic regression
  trained on each: the figure that matters downstream);
- optionally, against reference vectors extracted elsewhere (``--reference FILE.h5``, e.g. on a CPU);
- training runs on cuda (seconds per epoch, best epoch, dev and test weighted F1), with ``--cpu`` the same
  run on the CPU for comparison.

- with ``--batched-sweep``: the table6 sweep (``--seeds`` seeds, ``--epochs`` epochs each, patience off so
  the work is fixed) trained batched in this process on the device (mmemolr.train.batched; one group per
  target): wall seconds including data loading, seconds per group epoch, runs per second, peak GPU
  memory (torch.cuda.max_memory_allocated) overall and per run, and, as the baseline, the first
  ``--baseline-runs`` runs of the same sweep trained one after another unbatched, extrapolated to all.

  python benchmarks/cuda_check.py --corpus meld --model PATH/all-MiniLM-L6-v2 --targets onehot,rld
  python benchmarks/cuda_check.py --corpus meld --model X --skip-extract --targets "" --batched-sweep \
      --seeds 5 --epochs 5 --baseline-runs 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np


def run(cmd: list[str]) -> float:
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def load(path: Path) -> tuple[list[str], np.ndarray]:
    with h5py.File(path, "r") as f:
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][:]]
        return ids, f["features"][:].astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def lr_dev_wf1(features_dir: Path, corpus: str, vectors: np.ndarray, ids: list[str]) -> float:
    """Logistic regression (C=1) on train, weighted F1 on dev: a downstream check of the vectors."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from mmemolr.corpus import load_prepared

    prepared = load_prepared(features_dir / corpus)
    row = {uid: k for k, uid in enumerate(ids)}
    split = {s: [u for u in prepared.utterances() if u.split == s and u.label] for s in ("train", "dev")}
    x = {s: vectors[[row[u.id] for u in us]] for s, us in split.items()}
    y = {s: [u.label for u in us] for s, us in split.items()}
    mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x["train"] - mean) / std, y["train"])
    return float(f1_score(y["dev"], model.predict((x["dev"] - mean) / std), average="weighted"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="meld")
    parser.add_argument("--features-dir", type=Path, default=Path("features"))
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", type=Path, help="feature file of the same corpus extracted elsewhere")
    parser.add_argument("--targets", default="onehot,rld")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="also train each target on the CPU")
    parser.add_argument("--out", type=Path, default=Path("runs/cuda_check"))
    parser.add_argument("--skip-extract", action="store_true")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script without a GPU")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training overrides")
    parser.add_argument("--batched-sweep", action="store_true", help="time the batched table6 sweep (see above)")
    parser.add_argument("--seeds", type=int, default=5, help="--batched-sweep: seeds")
    parser.add_argument("--epochs", type=int, default=5, help="--batched-sweep: epochs of every run")
    parser.add_argument("--baseline-runs", type=int, default=2,
                        help="--batched-sweep: runs trained unbatched one after another for the baseline")
    args = parser.parse_args()

    import torch

    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("torch sees no CUDA device: this check needs a GPU (or --device cpu for a dry run)")
        gpu = torch.cuda.get_device_name(0)
        print(f"torch {torch.__version__}, {gpu}, bf16 supported: {torch.cuda.is_bf16_supported()}", flush=True)
    else:
        gpu = "none (dry run)"
    mm = [sys.executable, "-m", "mmemolr"]
    name = Path(args.model).name
    side = args.out / "features"
    side.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    summary: dict = {"gpu": gpu, "torch": torch.__version__}

    from mmemolr.model import bptt

    worst, problem = bptt.self_check(torch.device(args.device))
    summary["bptt_self_check"] = {"max_abs_diff": worst, "problem": problem}
    rows.append((f"hand-written recurrences vs autograd on {args.device}",
                 f"largest difference {worst:.2e}: " + ("agree" if problem is None else
                                                      f"DISAGREE ({problem}); training falls back to autograd")))
    print(f"{rows[-1][0]}: {rows[-1][1]}", flush=True)

    if not args.skip_extract:
        # Beside the run folders, not in --features-dir: training reads the corpus's own text file there.
        files = {"float32": side / f"text-{name}-fp32.h5", "bfloat16": side / f"text-{name}-bf16.h5"}
        for dtype, path in files.items():
            seconds = []
            for _ in range(2):  # the second run is the one reported: model cached on disk, kernels warm
                path.unlink(missing_ok=True)
                seconds.append(run([*mm, "extract", "--corpus", args.corpus, "--features-dir", str(args.features_dir),
                                    "--modality", "text", "--model", args.model, "--device", args.device,
                                    "--out", str(path), "--no-progress", f"dtype={dtype}"]))
            ids, vectors = load(path)
            summary[f"extract_{dtype}_s"] = seconds
            rows.append((f"extract {dtype} (whole process, 2nd run)",
                         f"{seconds[1]:.1f} s, {len(ids) / seconds[1]:.0f} utt/s (1st run {seconds[0]:.1f} s)"))
        ids32, v32 = load(files["float32"])
        ids16, v16 = load(files["bfloat16"])
        assert ids32 == ids16
        cos = cosine(v32, v16)
        rows.append(("bf16 vs fp32: cosine per utterance", f"min {cos.min():.5f}, median {np.median(cos):.6f}"))
        wf1 = {d: lr_dev_wf1(args.features_dir, args.corpus, v, ids32) for d, v in (("fp32", v32), ("bf16", v16))}
        rows.append(("logistic regression dev W-F1", f"fp32 {wf1['fp32'] * 100:.2f}, bf16 {wf1['bf16'] * 100:.2f}"))
        summary.update(cos_min=float(cos.min()), cos_median=float(np.median(cos)), lr_dev_wf1=wf1)
        if args.reference:
            ref_ids, ref = load(args.reference)  # may hold a subset of the corpus
            here = {uid: k for k, uid in enumerate(ids32)}
            rows_here = [here[u] for u in ref_ids]
            for label, v in (("fp32", v32), ("bf16", v16)):
                c = cosine(ref, v[rows_here])
                rows.append((f"reference vs {args.device} {label}: cosine ({len(ref_ids)} utt.)",
                             f"min {c.min():.5f}, median {np.median(c):.6f}"))

    if args.batched_sweep:
        rows += batched_sweep(args, summary)

    for target in [t for t in args.targets.split(",") if t]:
        for device in [args.device, "cpu"] if args.cpu and args.device != "cpu" else [args.device]:
            folder = args.out / f"t-{target}-seed{args.seed}-{device}"
            seconds = run([*mm, "train", "--corpus", args.corpus, "--features-dir", str(args.features_dir),
                           "--modalities", "t", "--target", target, "--seed", str(args.seed), "--device", device,
                           "--out", str(folder), "--quiet", *args.set])
            res = json.loads((folder / "results.json").read_text())
            summary[f"train_{target}_{device}"] = {k: res[k] for k in ("seconds_per_epoch", "best_epoch", "epochs_run",
                                                                          "device")}
            rows.append((f"train {target} on {res['device']}",
                         f"{res['seconds_per_epoch']:.2f} s/epoch, {res['epochs_run']} epochs, best {res['best_epoch']}, "
                         f"dev W-F1 {res['valid']['weighted_f1'] * 100:.2f}, test W-F1 "
                         f"{res['test']['weighted_f1'] * 100:.2f}, {seconds:.0f} s in all"))

    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


def batched_sweep(args: argparse.Namespace, summary: dict) -> list[tuple[str, str]]:
    """The table6 sweep batched on the device, against a few of its runs one after another."""
    import torch

    from mmemolr.compare import LocalExecutor, make_plan, run_sweep

    fixed = [f"optim.max_epochs={args.epochs}", f"optim.patience={args.epochs}", f"device={args.device}", *args.set]
    out = args.out / "batched-sweep"
    plan = make_plan(args.corpus, args.features_dir, preset="table6", modalities="all", seeds=args.seeds,
                     overrides=fixed)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    report = run_sweep(plan, out, LocalExecutor(1), progress="lines", batched=True)
    wall = time.perf_counter() - start
    if report.failures:
        raise SystemExit(f"batched runs failed: {[(f.name, f.error) for f in report.failures]}")
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else float("nan")
    runs = len(plan.runs)
    groups = 2  # one per target
    base = plan.runs[:args.baseline_runs]
    plan.runs = base
    start = time.perf_counter()
    run_sweep(plan, args.out / "unbatched-baseline", LocalExecutor(1), progress="lines", batched=False)
    baseline = (time.perf_counter() - start) / max(1, len(base)) * runs
    summary["batched_sweep"] = {"runs": runs, "epochs": args.epochs, "wall_s": wall, "peak_gib": peak,
                                "peak_gib_per_run": peak / max(1, runs // groups),
                                "s_per_group_epoch": wall / (groups * args.epochs), "runs_per_s": runs / wall,
                                "unbatched_estimate_s": baseline, "speedup": baseline / wall}
    b = summary["batched_sweep"]
    return [(f"batched table6: {runs} runs x {args.epochs} epochs on {args.device}",
             f"{wall:.1f} s in all ({b['s_per_group_epoch']:.2f} s per group epoch, {b['runs_per_s']:.2f} runs/s), "
             f"peak GPU memory {peak:.2f} GiB ({b['peak_gib_per_run'] * 1024:.0f} MiB per run of a group)"),
            (f"unbatched, one after another ({len(base)} runs measured)",
             f"{baseline:.1f} s for all {runs} (estimate); batched is {b['speedup']:.1f}x faster")]


if __name__ == "__main__":
    main()
