"""Choose training settings on the validation split only: a small grid, several seeds, dev metrics only.

Each candidate is a name and a list of config overrides; every (candidate, target, seed) is one normal
training run (configs/<corpus>.yaml + overrides, epoch selected on dev). The script prints and saves
dev weighted F1 / accuracy / macro F1 (mean ± std over seeds) and never prints or stores test figures:
a choice made from its output cannot have looked at test. Score the chosen setting on test afterwards,
once (benchmarks/real_check_train.py --set ...).

  .venv/bin/python benchmarks/dev_search.py --corpus meld --seeds 3 --targets onehot \\
      --candidate base: --candidate drop3:model.dropout=0.3 --candidate lr3e-4:optim.lr=3e-4,optim.weight_decay=1e-5

The first candidate is the reference: every other row also gives its dev W-F1 difference paired by seed
(mean ± std of the differences, paired t-test p).

Runs already complete under --out are reused; summary_dev.json / summary_dev.md are written beside them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from mmemolr.compare.stats import paired_test
from mmemolr.config import load_config
from mmemolr.fileio import write_json_atomic, write_text_atomic
from mmemolr.tables import format_markdown, format_table, mean_std_pct
from mmemolr.train.config import TrainConfig
from mmemolr.train.run import run_training

REPO = Path(__file__).resolve().parent.parent


def parse_candidate(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition(":")
    if not name:
        raise SystemExit(f"--candidate {text!r}: expected NAME:KEY=VALUE,KEY=VALUE (overrides may be empty)")
    return name, [o for o in overrides.split(",") if o]


def one_run(corpus: str, name: str, overrides: list[str], target: str, seed: int, features_dir: str,
            out: str) -> dict:
    config = load_config(TrainConfig, REPO / "configs" / f"{corpus}.yaml",
                         [*overrides, f"target.name={target}", f"seed={seed}", "device=cpu"])
    results = run_training(config, Path(out) / corpus / name / f"{target}-seed{seed}", Path(features_dir),
                           progress=False, threads=1)
    # Dev only: the test metrics stay in the run folder, unread by this script.
    return {"candidate": name, "target": target, "seed": seed, "valid": results["valid"],
            "best_epoch": results["best_epoch"], "epochs_run": results["epochs_run"]}


def paired_wf1(runs: list[dict], name: str, reference: str, target: str) -> str:
    """Dev W-F1 of ``name`` minus ``reference``, paired by seed: mean ± std of the differences (t-test p)."""
    by_seed = {c: {r["seed"]: r["valid"]["weighted_f1"] * 100 for r in runs if r["candidate"] == c
                   and r["target"] == target} for c in (name, reference)}
    test = paired_test(by_seed[name], by_seed[reference])
    if test["diff_std"] is None:
        return ""
    p = f"{test['p']:.3f}" if test["p"] is not None else "n/a"
    return f"{test['diff_mean']:+.2f} ± {test['diff_std']:.2f} ({p})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="meld")
    parser.add_argument("--targets", default="onehot")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--candidate", action="append", required=True, metavar="NAME:KEY=VALUE,...")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--out", default="runs/dev_search")
    args = parser.parse_args()

    candidates = [parse_candidate(c) for c in args.candidate]
    targets = args.targets.split(",")
    # Seed-major order: if the search is cut short, every candidate has its first seeds.
    jobs = [(name, overrides, t, s) for s in range(args.seeds) for name, overrides in candidates for t in targets]
    started = time.perf_counter()
    runs = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(one_run, args.corpus, n, o, t, s, args.features_dir, args.out) for n, o, t, s in jobs]
        for future in as_completed(futures):
            run = future.result()
            runs.append(run)
            print(f"{run['candidate']:>16} {run['target']:>7} seed {run['seed']}: dev W-F1 "
                  f"{run['valid']['weighted_f1'] * 100:.2f} (epoch {run['best_epoch']} of {run['epochs_run']})",
                  flush=True)

    reference = candidates[0][0]
    headers = ["candidate", "overrides", "target", "runs", "dev W-F1 %", f"Δ vs {reference} (p)", "dev acc %",
               "dev macro-F1 %", "best epoch"]
    rows = []
    for name, overrides in candidates:
        for t in targets:
            rs = [r for r in runs if r["candidate"] == name and r["target"] == t]
            rows.append([name, " ".join(overrides) or "(config as shipped)", t, len(rs),
                         mean_std_pct([r["valid"]["weighted_f1"] for r in rs]),
                         paired_wf1(runs, name, reference, t) if name != reference else "",
                         mean_std_pct([r["valid"]["accuracy"] for r in rs]),
                         mean_std_pct([r["valid"]["macro_f1"] for r in rs]),
                         f"{statistics.mean(r['best_epoch'] for r in rs):.1f}"])
    title = (f"{args.corpus}: dev split only, mean ± std over {args.seeds} seeds; "
             f"{time.perf_counter() - started:.0f} s wall")
    print(format_table(headers, rows, title=title))
    out = Path(args.out) / args.corpus
    write_json_atomic(out / "summary_dev.json", {"candidates": dict(candidates), "runs": runs})
    write_text_atomic(out / "summary_dev.md", title + "\n\n" + format_markdown(headers, rows) + "\n")


if __name__ == "__main__":
    main()
