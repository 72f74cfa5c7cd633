"""DialogueRNN's hand-written backward through time against autograd through its per-step ops, in one
process: seconds per MELD training epoch, with the emolr backbone as the same-process baseline.

Three models (dialoguernn with the hand-written recurrences, dialoguernn forced onto the autograd loop,
emolr) train epochs in turn, ``--repeats`` rounds; the first round is a warm-up. Wall seconds of
``train_epoch`` (published sizes, 16 dialogues a batch, target rld, configs/meld.yaml), medians and
ratios. Timings on shared cores drift by tens of percent between minutes: compare the ratios, which
are taken round by round in the same process.

  .venv/bin/python benchmarks/bench_dialoguernn_bptt.py --features-dir features [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

import mmemolr.model.backbones.dialoguernn as dialoguernn
from mmemolr.config import load_config
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
    hand_written = dialoguernn.fast_path_applies
    arms = {}
    for name, backbone in [("dialoguernn, hand-written BPTT", "dialoguernn"),
                           ("dialoguernn, autograd loop", "dialoguernn"), ("emolr (baseline)", "emolr")]:
        config = load_config(TrainConfig, default_config_path(args.corpus), [
            f"corpus={args.corpus}", f"model.backbone={backbone}", "target.name=rld", "optim.batch_dialogues=16"])
        torch.manual_seed(0)
        model = build_model(config, data.input_dim, len(data.labels))
        arms[name] = (config, model, make_optimizer(model, config), torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(args.repeats):
        for name, (config, model, optimizer, generator) in arms.items():
            dialoguernn.fast_path_applies = (lambda listener: False) if "autograd" in name else hand_written
            t0 = time.perf_counter()
            train_epoch(model, data, train, optimizer, config.optim, generator, torch.device("cpu"))
            times[name].append(time.perf_counter() - t0)
        print(f"round {round_}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    dialoguernn.fast_path_applies = hand_written
    timed = {name: t[1:] or t for name, t in times.items()}
    fast = timed["dialoguernn, hand-written BPTT"]
    rows = []
    for name, t in timed.items():
        ratio = statistics.median(a / b for a, b in zip(t, fast))
        rows.append([name, f"{statistics.median(t):.2f}", f"{ratio:.2f}"])
    print(f"\n{args.corpus}, {source}, {args.threads} thread(s), 16 dialogues a batch, target rld; median of "
          f"{len(fast)} epochs after a warm-up, ratio taken round by round")
    print(format_table(["arm", "s/epoch", "x hand-written"], rows))


if __name__ == "__main__":
    main()
