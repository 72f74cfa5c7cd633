"""The RLD target's refinement diagnostics on dev after every epoch of one run: when does the jointly
trained refiner become class-specific? (The verdicts of a run are those of its selected epoch; a run
selected early can be called `collapsed` while its refiner is still forming.) Dev split only.

  .venv/bin/python benchmarks/refiner_epochs.py --corpus emorynlp --backbone dag-erc --seed 2 --epochs 14
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmemolr.config import load_config
from mmemolr.model.dropout import dropout_generator
from mmemolr.tables import format_table
from mmemolr.targets.diagnostics import refinement_diagnostics
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig, default_config_path
from mmemolr.train.data import load_training_data
from mmemolr.train.device import set_threads
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, evaluate, train_epoch
from mmemolr.train.metrics import classification_metrics
from mmemolr.train.run import make_optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="emorynlp")
    parser.add_argument("--backbone", default="emolr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()
    set_threads(args.threads)
    config = load_config(TrainConfig, default_config_path(args.corpus), [
        f"corpus={args.corpus}", f"model.backbone={args.backbone}", "target.name=rld", f"seed={args.seed}",
        *args.overrides])
    # As run_training starts a run: the seed, then the model, the optimiser, the batch order's and the
    # dropout masks' generators.
    torch.manual_seed(config.seed)
    data = load_training_data(config.corpus, list(config.modalities), dict(config.features),
                              Path(args.features_dir)).data
    model = build_model(config, data.input_dim, len(data.labels))
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device("cpu")
    dropout = dropout_generator(config.seed, device)
    rows = []
    for epoch in range(1, args.epochs + 1):
        train_epoch(model, data, data.split("train"), optimizer, config.optim, generator, device, epoch=epoch - 1,
                    dropout=dropout)
        ev = evaluate(model, data, data.split("dev"), EVAL_BATCH_DIALOGUES, device, states=True, refined=True)
        d = refinement_diagnostics(ev.refined, ev.gold, data.labels, states=ev.emotion)
        wf1 = classification_metrics(ev.gold, ev.probs.argmax(1), data.labels)["weighted_f1"]
        rows.append([epoch, f"{100 * wf1:.2f}", f"{d['specificity']:.3f} ({d['specificity_null']:.3f})",
                     f"{d['variation']:.3f}", f"{d['neighbours']['distance']:.3f} ({d['neighbours']['null']:.3f})",
                     f"{d['entropy']:.3f}", d["verdict"]])
        print(" ".join(map(str, rows[-1])), flush=True)
    print(format_table(["epoch", "dev W-F1", "class spec. (null)", "variation", "nbr TV (random)", "H other", "verdict"],
                       rows,
                       title=f"{args.corpus} {args.backbone} rld seed {args.seed}, dev split"))


if __name__ == "__main__":
    main()
