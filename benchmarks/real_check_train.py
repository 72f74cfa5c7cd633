"""Real check of issue 4: EmoLR's predictor with `onehot` and `rld` targets on real MELD and EmoryNLP
text features (all-MiniLM-L6-v2, 384-d), several seeds, against a context-free logistic regression on
the same utterance vectors.

Protocol: every run selects its epoch on the dev split (weighted F1, early stopping) and evaluates the
test split once with that checkpoint (mmemolr.train.run). The logistic regression is trained on train,
its C chosen on dev by weighted F1, and scored on test once.

  .venv/bin/python benchmarks/real_check_train.py [--seeds 5] [--jobs 2] [--features-dir features]
                                                  [--out runs/real_check]

Runs already complete under --out are reused (rerun after a kill to continue). Prints a table of test
weighted F1 and accuracy (mean ± std over seeds) and writes summary.json / summary.md beside the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from threadpoolctl import threadpool_limits

from mmemolr.compare.floor import fit_floor
from mmemolr.config import load_config
from mmemolr.fileio import write_json_atomic, write_text_atomic
from mmemolr.tables import format_markdown, format_table, mean_std_pct
from mmemolr.train.config import TrainConfig
from mmemolr.train.data import load_training_data
from mmemolr.train.run import run_training

REPO = Path(__file__).resolve().parent.parent


def one_run(corpus: str, target: str, seed: int, features_dir: str, out: str, max_epochs: int | None,
            extra: list[str]) -> dict:
    overrides = [f"target.name={target}", f"seed={seed}", "device=cpu", *extra]
    if max_epochs:
        overrides.append(f"optim.max_epochs={max_epochs}")
    config = load_config(TrainConfig, REPO / "configs" / f"{corpus}.yaml", overrides)
    run_dir = Path(out) / corpus / f"t-{target}-seed{seed}"
    results = run_training(config, run_dir, Path(features_dir), progress=False, threads=1)
    return {"corpus": corpus, "target": target, "seed": seed, "test": results["test"],
            "valid": results["valid"], "best_epoch": results["best_epoch"], "epochs_run": results["epochs_run"],
            "seconds_per_epoch": results["seconds_per_epoch"]}


def logistic_baseline(corpus: str, features_dir: str) -> dict:
    """The context-free floor (mmemolr.compare.floor): one utterance's text vector (z-normalised with train
    statistics) -> label, C chosen on dev, test once."""
    prepared = load_training_data(corpus, ["t"], {}, features_dir, availability_input=False)
    # One BLAS thread: it runs beside the training workers, and spinning threads would stall them.
    with threadpool_limits(1):
        floor = fit_floor(prepared.data)
    return {"corpus": corpus, "C": floor["C"], "valid_weighted_f1": floor["valid"]["weighted_f1"],
            "test": floor["test"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default="meld,emorynlp")
    parser.add_argument("--targets", default="onehot,rld")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--out", default="runs/real_check")
    parser.add_argument("--max-epochs", type=int, default=None, help="override optim.max_epochs (smoke tests)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (e.g. optim.lr=5e-4); use another --out")
    args = parser.parse_args()

    corpora, targets = args.corpora.split(","), args.targets.split(",")
    jobs = [(c, t, s) for c in corpora for t in targets for s in range(args.seeds)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(one_run, c, t, s, args.features_dir, args.out, args.max_epochs, args.set) for c, t, s in jobs]
        baselines = {c: logistic_baseline(c, args.features_dir) for c in corpora}
        runs = []
        for future in futures:
            run = future.result()
            runs.append(run)
            print(f"{run['corpus']:>9} {run['target']:>7} seed {run['seed']}: test W-F1 "
                  f"{run['test']['weighted_f1'] * 100:.2f} acc {run['test']['accuracy'] * 100:.2f} "
                  f"(best epoch {run['best_epoch']} of {run['epochs_run']})", flush=True)

    headers = ["corpus", "method", "runs", "dev W-F1 %", "test W-F1 %", "test acc %", "test macro-F1 %",
               "best epoch", "s/epoch"]
    rows = []
    for c in corpora:
        b = baselines[c]
        rows.append([c, f"logistic regression (C={b['C']:g})", 1, f"{b['valid_weighted_f1'] * 100:.2f}",
                     f"{b['test']['weighted_f1'] * 100:.2f}",
                     f"{b['test']['accuracy'] * 100:.2f}", f"{b['test']['macro_f1'] * 100:.2f}", "", ""])
        for t in targets:
            rs = [r for r in runs if r["corpus"] == c and r["target"] == t]
            rows.append([c, f"EmoLR predictor, {t}", len(rs), mean_std_pct([r["valid"]["weighted_f1"] for r in rs]),
                         mean_std_pct([r["test"]["weighted_f1"] for r in rs]),
                         mean_std_pct([r["test"]["accuracy"] for r in rs]), mean_std_pct([r["test"]["macro_f1"] for r in rs]),
                         f"{statistics.mean(r['best_epoch'] for r in rs):.1f}",
                         f"{statistics.median(r['seconds_per_epoch'] for r in rs):.2f}"])
    title = (f"test split at the best dev epoch; mean ± std over {args.seeds} seeds; text features "
             f"all-MiniLM-L6-v2; overrides: {' '.join(args.set) or 'none'}; {time.perf_counter() - t0:.0f} s wall")
    print(format_table(headers, rows, title=title))
    out = Path(args.out)
    write_json_atomic(out / "summary.json", {"runs": runs, "logistic_regression": baselines})
    write_text_atomic(out / "summary.md", title + "\n\n" + format_markdown(headers, rows) + "\n")


if __name__ == "__main__":
    main()
