"""Seconds per training epoch of the Emotion Predictor on MELD and EmoryNLP, against a baseline.

The data are the real corpora from shared/ (dialogue lengths, speakers, labels). Features are the real
384-d text features when ``--features-dir`` holds them (features/<corpus>/text-*.h5), otherwise random
384-d vectors: speed does not depend on the values. D = 150, 16 dialogues a batch, paper settings.

Baseline, in the same process: a straightforward implementation with one nn.GRUCell call per GRU per
step on concatenated inputs, speaker states gathered and scattered with indexing, random batches padded
to the longest dialogue, plain Adam. Ours: batch-vectorised predictor with the u_t input products hoisted
out of the time loop, length-bucketed batches, fused Adam.

  .venv/bin/python benchmarks/bench_train.py [--epochs 5] [--threads 2] [--features-dir features] \
      [--set model.emotion_speaker=updated]

Prints median seconds per epoch (train), the ratio baseline/ours, evaluation time of the dev split and
peak RSS. Run it on an otherwise idle machine for numbers worth quoting.

Ours draws its dropout masks as training does (from the run's own dropout generator,
mmemolr.model.dropout). ``--dropout-ab`` also times, epoch by epoch in turn, the same model with
``nn.Dropout``'s masks from the global random generator (what training drew before the per-run streams)
and prints the median ratio of the two.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmemolr.config import load_config
from mmemolr.corpus import Corpus, corpus_dir, load_corpus, load_prepared
from mmemolr.fuse import ZNorm, build_fused, load_feature_files, resolve_feature_files
from mmemolr.fuse.batches import collate
from mmemolr.fuse.dataset import FusedData
from mmemolr.model.dropout import dropout_generator
from mmemolr.paths import shared_dir
from mmemolr.store import FeatureFile
from mmemolr.tables import format_table
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig
from mmemolr.train.device import set_threads
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, evaluate, train_epoch
from mmemolr.train.run import make_optimizer

DIM = 384


class BaselinePredictor(nn.Module):
    """The same equations written the straightforward way (one GRUCell call per GRU per step)."""

    def __init__(self, input_dim: int, n_classes: int, hidden: int = 150, dropout: float = 0.5) -> None:
        super().__init__()
        self.gru_c = nn.GRUCell(input_dim + hidden, hidden)
        self.gru_s = nn.GRUCell(input_dim + hidden, hidden)
        self.gru_e = nn.GRUCell(input_dim + hidden, hidden)
        self.att = nn.Linear(input_dim, hidden, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor, n_parties: int) -> torch.Tensor:
        b, t_max, _ = x.shape
        arange = torch.arange(b)
        c = x.new_zeros(b, self.hidden)
        e = x.new_zeros(b, self.hidden)
        parties = x.new_zeros(b, n_parties, self.hidden)
        history, outputs = [], []
        for t in range(t_max):
            u, who, m = x[:, t], speakers[:, t], mask[:, t].unsqueeze(1)
            s_prev = parties[arange, who]
            c_new = self.gru_c(torch.cat([u, s_prev], -1), c)
            if history:
                ctx = torch.stack(history, 1)
                alpha = torch.softmax(torch.bmm(ctx, self.att(u).unsqueeze(2)), 1)
                att = (alpha * ctx).sum(1)
            else:
                att = torch.zeros_like(c)
            s_new = self.gru_s(torch.cat([u, att], -1), s_prev)
            e_new = self.gru_e(torch.cat([u, s_prev], -1), e)
            parties = parties.clone()
            parties[arange, who] = torch.where(m, s_new, s_prev)
            c = torch.where(m, c_new, c)
            e = torch.where(m, e_new, e)
            history.append(c)
            outputs.append(e)
        return self.classifier(self.dropout(torch.stack(outputs, 1)))


def baseline_epoch(model: BaselinePredictor, optimizer: torch.optim.Optimizer, data: FusedData, dialogues: list,
                   generator: torch.Generator) -> float:
    model.train()
    order = torch.randperm(len(dialogues), generator=generator).tolist()
    total = 0.0
    for i in range(0, len(order), 16):
        batch = collate(data, [dialogues[j] for j in order[i:i + 16]])
        logits = model(batch.x, batch.speakers, batch.mask, batch.n_parties)
        loss = F.cross_entropy(logits[batch.mask], batch.labels[batch.mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.item())
    return total


def random_features(corpus: Corpus, seed: int = 0) -> dict[str, FeatureFile]:
    ids = corpus.utterance_ids()
    rng = np.random.default_rng(seed)
    ff = FeatureFile(path=Path("random"), attrs={"modality": "text", "dim": DIM}, ids=ids,
                     features=rng.normal(size=(len(ids), DIM)).astype(np.float32),
                     available=np.ones(len(ids), bool), done=np.ones(len(ids), bool), errors=[])
    return {"t": ff}


def load_data(name: str, features_dir: Path) -> tuple[FusedData, str]:
    folder = corpus_dir(name, features_dir)
    if (folder / "corpus.json").exists():
        try:
            corpus = load_prepared(name, features_dir)
            files = load_feature_files(resolve_feature_files(folder, ["t"]), corpus)
            source = f"real {files['t'].dim}-d text features ({files['t'].path.name})"
        except (FileNotFoundError, ValueError):
            files = None
    else:
        files = None
    if files is None:
        corpus = load_corpus(name, shared_dir() / "data" / name)
        files = random_features(corpus)
        source = f"random {DIM}-d features"
    norm = ZNorm.fit(files, [u.id for u in corpus.utterances("train")])
    return build_fused(corpus, files, norm, corpus.labels), source


def bench(name: str, args: argparse.Namespace) -> list:
    data, source = load_data(name, Path(args.features_dir))
    train, dev = data.split("train"), data.split("dev")
    config = load_config(TrainConfig, None, [f"corpus={name}", f"target.name={args.target}", *args.set])
    device = torch.device("cpu")

    torch.manual_seed(0)
    model = build_model(config, data.input_dim, len(data.labels))
    optimizer = make_optimizer(model, config)
    gen, dropout = torch.Generator().manual_seed(0), dropout_generator(0, device)
    ours, evals, global_rng = [], [], []
    for epoch in range(args.epochs + 1):  # the first epoch warms up allocators and is not counted
        t0 = time.perf_counter()
        train_epoch(model, data, train, optimizer, config.optim, gen, device, epoch=epoch, dropout=dropout)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        evaluate(model, data, dev, EVAL_BATCH_DIALOGUES, device)
        evals.append(time.perf_counter() - t0)
        if args.dropout_ab:
            t0 = time.perf_counter()
            train_epoch(model, data, train, optimizer, config.optim, gen, device, epoch=epoch)  # F.dropout
            global_rng.append(time.perf_counter() - t0)
    if args.dropout_ab:
        ratio = statistics.median(g / o for g, o in zip(global_rng[1:], ours[1:]))
        print(f"{name}: dropout masks from the run's own generator {statistics.median(ours[1:]):.2f} s/epoch, from the "
              f"global generator (F.dropout) {statistics.median(global_rng[1:]):.2f} s/epoch; ratio global / own "
              f"{ratio:.3f} (median of {args.epochs} rounds)", flush=True)

    torch.manual_seed(0)
    base = BaselinePredictor(data.input_dim, len(data.labels))
    base_opt = torch.optim.Adam(base.parameters(), lr=1e-4, weight_decay=3e-4)
    gen = torch.Generator().manual_seed(0)
    theirs = []
    for _ in range(args.baseline_epochs + 1):
        t0 = time.perf_counter()
        baseline_epoch(base, base_opt, data, train, gen)
        theirs.append(time.perf_counter() - t0)

    ours_s, base_s = statistics.median(ours[1:]), statistics.median(theirs[1:])
    return [name, source, len(train), sum(len(d) for d in train), f"{ours_s:.2f}", f"{base_s:.2f}",
            f"{base_s / ours_s:.1f}x", f"{statistics.median(evals[1:]):.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default="meld,emorynlp")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs of ours (after one warm-up)")
    parser.add_argument("--baseline-epochs", type=int, default=3, help="timed epochs of the baseline")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    parser.add_argument("--target", default="rld", help="training target of ours (rld costs a little more)")
    parser.add_argument("--features-dir", default="features")
    parser.add_argument("--dropout-ab", action="store_true",
                        help="also time ours with global-generator dropout masks, in turn (see above)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override of ours (e.g. model.emotion_speaker=updated); default: paper settings")
    args = parser.parse_args()
    threads = set_threads(args.threads)
    rows = [bench(name, args) for name in args.corpora.split(",")]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(format_table(
        ["corpus", "features", "train dialogues", "train utterances", "ours s/epoch", "baseline s/epoch",
         "speed-up", "dev eval s"], rows,
        title=f"training epoch, D=150, batch 16 dialogues, target {args.target}, {threads} thread(s), "
              f"median of {args.epochs} (baseline {args.baseline_epochs}) epochs"
              + (f", ours with {' '.join(args.set)}" if args.set else "")))
    print(f"peak RSS: {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
