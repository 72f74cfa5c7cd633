"""Does a refined target recover label confusions that are known? Every rld form on the synthetic corpus.

mmemolr.corpus.synthetic builds dialogues in which each emotion has one designed partner (joy/excitement,
anger/frustration, sadness/fear) and 70% of the utterances are genuine mixtures of gold and partner with a
known weight. For each refiner form and seed this trains on it (small model, as in
tests/test_refinement_recovery.py) and prints, on the test split: W-F1, the diagnostics verdict, the
smallest and the mean share of a class's non-gold target mass that goes to its partner (uniform: 0.2),
and the rank correlation between an utterance's partner mass and its true secondary weight 1 - w.

  .venv/bin/python benchmarks/rld_recovery.py --seeds 3 [--out runs/rld_recovery]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from mmemolr.config import load_config
from mmemolr.corpus import load_prepared
from mmemolr.corpus.synthetic import recovery, write_synthetic
from mmemolr.tables import format_table
from mmemolr.train.config import TrainConfig
from mmemolr.train.inference import refined_on_split
from mmemolr.train.run import run_training

FORMS = {
    "paper (eta)": ["target.name=rld", "target.refiner=paper", "target.combine=eta"],
    "bounded (eta)": ["target.name=rld", "target.refiner=bounded", "target.combine=eta"],
    "bounded (mix)": ["target.name=rld", "target.refiner=bounded", "target.combine=mix"],
    "supervised (mix)": ["target.name=rld", "target.refiner=supervised", "target.combine=mix"],
    "supervised (eta)": ["target.name=rld", "target.refiner=supervised", "target.combine=eta"],
    "lcm": ["target.name=lcm"],
}
SMALL = ["device=cpu", "model.hidden=32", "model.label_dim=16", "optim.lr=0.003", "optim.max_epochs=20",
         "optim.patience=20", "optim.batch_dialogues=8"]


def measure(features: Path, overrides: list[str], seed: int, out: Path) -> dict:
    config = load_config(TrainConfig, None, ["corpus=synthetic-mixed", f"seed={seed}", *SMALL, *overrides])
    results = run_training(config, out, features, progress=False, threads=1)
    z, _, ids = refined_on_split(out, "test")
    scores = recovery(z, ids, load_prepared(features / "synthetic-mixed"))
    d = results["refinement"]["test"]
    return {"wf1": results["test"]["weighted_f1"], "verdict": d["verdict"], "gold": d["gold_mass"], **scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/rld_recovery"))
    parser.add_argument("--forms", default=",".join(FORMS), help="comma-separated subset of: " + ", ".join(FORMS))
    args = parser.parse_args(argv)
    features = args.out / "features"
    if not (features / "synthetic-mixed" / "corpus.json").exists():
        write_synthetic(features / "synthetic-mixed")
    rows = []
    for name in args.forms.split(","):
        per_seed = [measure(features, FORMS[name], seed, args.out / f"{name.replace(' ', '')}-seed{seed}")
                    for seed in range(args.seeds)]

        def stat(key: str, scale: float = 1.0, digits: int = 2, per_seed: list[dict] = per_seed) -> str:
            values = [r[key] * scale for r in per_seed]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"

        verdicts = [r["verdict"] for r in per_seed]
        rows.append([name, stat("wf1", 100), stat("gold", digits=3), stat("min_share"), stat("mean_share"),
                     stat("rho"), ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts)))])
        print(f"{name}: done", file=sys.stderr)
    print(format_table(["form", "test W-F1 %", "z[gold]", "min partner share", "mean partner share",
                        "Spearman ρ", "verdicts"], rows,
                       title=f"synthetic corpus with known confusions, {args.seeds} seed(s), test split"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
