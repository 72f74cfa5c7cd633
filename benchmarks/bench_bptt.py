"""The hand-written backward through time of the dialogue recurrences (mmemolr.model.bptt) against
autograd through the per-step loops, in one process: seconds per MELD training epoch of the Emotion
Predictor (emolr) and of DialogueRNN, each both ways.

The four models train one epoch each in turn, ``--repeats`` rounds; the first round is a warm-up. Wall
seconds of ``train_epoch`` (configs/meld.yaml with the backbone's published sizes, 16 dialogues a batch,
target rld), medians and the ratio autograd / hand-written taken round by round. Timings on shared cores
drift by tens of percent between minutes: compare the ratios.

  .venv/bin/python benchmarks/bench_bptt.py --features-dir features [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

from mmemolr.config import load_config
from mmemolr.model import bptt
from mmemolr.tables import format_table
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig, default_config_path
from mmemolr.train.device import set_threads
from mmemolr.train.loop import train_epoch
from mmemolr.train.run import make_optimizer

HERE = Path(__file__).resolve().parent


def _load_data(corpus: str, features_dir: Path):
    spec = importlib.util.spec_from_file_location("bench_train", HERE / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_train"] = module
    spec.loader.exec_module(module)
    return module.load_data(corpus, features_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="meld")
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of one epoch per arm (the first is a warm-up)")
    args = parser.parse_args()
    set_threads(args.threads)
    data, source = _load_data(args.corpus, Path(args.features_dir))
    train = data.split("train")
    arms = {}
    for backbone in ("emolr", "dialoguernn"):
        config = load_config(TrainConfig, default_config_path(args.corpus), [
            f"corpus={args.corpus}", f"model.backbone={backbone}", "target.name=rld", "optim.batch_dialogues=16"])
        for how in ("hand-written", "autograd"):
            torch.manual_seed(0)
            model = build_model(config, data.input_dim, len(data.labels))
            arms[(backbone, how)] = (config, model, make_optimizer(model, config), torch.Generator().manual_seed(0))
    times: dict[tuple[str, str], list[float]] = {arm: [] for arm in arms}
    for round_ in range(args.repeats):
        for (backbone, how), (config, model, optimizer, generator) in arms.items():
            bptt.ENABLED = how == "hand-written"
            t0 = time.perf_counter()
            train_epoch(model, data, train, optimizer, config.optim, generator, torch.device("cpu"))
            times[(backbone, how)].append(time.perf_counter() - t0)
        print(f"round {round_}: " + ", ".join(f"{b} {h} {t[-1]:.2f} s" for (b, h), t in times.items()), flush=True)
    bptt.ENABLED = True
    timed = {arm: t[1:] or t for arm, t in times.items()}
    rows = []
    for backbone in ("emolr", "dialoguernn"):
        fast, slow = timed[(backbone, "hand-written")], timed[(backbone, "autograd")]
        ratio = statistics.median(a / b for a, b in zip(slow, fast))
        rows.append([backbone, f"{statistics.median(fast):.2f}", f"{statistics.median(slow):.2f}", f"{ratio:.2f}"])
    print(f"\n{args.corpus}, {source}, {args.threads} thread(s), 16 dialogues a batch, target rld; median of "
          f"{len(timed[('emolr', 'autograd')])} epochs after a warm-up, ratio taken round by round")
    print(format_table(["backbone", "hand-written s/epoch", "autograd s/epoch", "autograd / hand-written"], rows))


if __name__ == "__main__":
    main()
