"""``train_group``: train several runs as one batched model (docs/batched.md).

A group is runs whose configs are equal except for ``seed`` and ``modalities`` (:func:`group_key`): the
same backbone, target and optimiser settings, so their weights have the same shapes once every run reads
the union of the group's modalities (mmemolr.train.stacked). Each run stays itself:

- its own seed: initial weights (its model is built exactly as ``run_training`` builds it, then embedded),
  batches (its own generator draws which dialogues of each length bucket form its batches, as alone; the
  buckets come in the order of the epoch's schedule, which depends on no run, so no run is padded to
  another's longer dialogues: mmemolr.fuse.batch_plan), dropout masks (drawn outside vmap from its own
  dropout generator, as alone: mmemolr.model.dropout). A run follows the trajectory it follows alone, in
  any group, of any size, with any partners: only the order of floating-point sums differs;
- its own modality subset: absent modalities and their availability columns are zero in its input, the
  weights reading them are zero and stay zero (no gradient, no decay);
- its own loss (the group's loss is the sum of per-run means), Adam moments and step count;
- its own dev selection and early stopping: a run that stops leaves the stack (its weights are not
  touched again), is finished at once (test evaluated once with its best.pt) and the group goes on
  with the others until all have stopped.

Every run writes its normal run folder through the functions of mmemolr.train.run (config.yaml,
inputs.json, metrics, best.pt, last.pt in run_training's format, predictions, results.json), so
``evaluate``, ``predict``, ``compare`` tables and ``report`` read it as any other. Each epoch of the group
is committed as one unit (mmemolr.train.commit: every run's next.pt, then every run's best.pt, metrics and
last.pt), so a group killed at any point resumes with all its runs at one epoch, to exactly the results of
the uninterrupted group; a single run of it may also be resumed alone with ``mmemolr train`` (its
trajectory then differs from the group's by the order of floating-point sums only).

The ``seconds`` of a run's epoch row is the group's epoch wall time divided by the runs it trained.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mmemolr.config import to_dict
from mmemolr.fuse import DialogueIndex, FusedData, ZNorm, batch_plan, collate
from mmemolr.fuse.sources import MODALITY_NAMES, normalise_modalities
from mmemolr.model import bptt
from mmemolr.model.dropout import draw_masks, dropout_generator, dropout_sites
from mmemolr.progress import Progress
from mmemolr.targets.diagnostics import epoch_diagnostics
from mmemolr.train import commit, rundir
from mmemolr.train.budget import resolve_budget
from mmemolr.train.build import EmoLRModel, build_model
from mmemolr.train.checkpoint import (
    LAST_FORMAT,
    check_last_format,
    cpu_copy,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from mmemolr.train.config import TrainConfig, check_train_config
from mmemolr.train.data import PreparedData, load_training_data
from mmemolr.train.device import resolve_device, set_threads
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, collect_evaluation
from mmemolr.train.metrics import classification_metrics
from mmemolr.train.run import (
    _check_same_features,
    _identity_record,
    begin_run,
    epoch_row,
    finish_run,
    make_optimizer,
    new_state,
    select_epoch,
    write_run_start,
)
from mmemolr.train.stacked import StackedModel, adam_step, input_blocks, union_columns

log = logging.getLogger(__name__)
GROUP_FREE = ("seed", "modalities")  # the config keys runs of one group may differ in


def group_key(config: TrainConfig) -> str:
    """Runs with equal keys can train as one group: everything but seed and modalities agrees."""
    d = to_dict(config)
    for key in GROUP_FREE:
        d.pop(key)
    return json.dumps(d, sort_keys=True, default=str)


def group_runs(configs: Sequence[TrainConfig], group_size: int | None = None,
               mixed_subsets: bool = True) -> list[list[int]]:
    """Indices of ``configs`` by group (first-appearance order), each group cut into chunks of at most
    ``group_size`` runs (None: no limit). ``mixed_subsets=False`` also keeps each modality subset in
    groups of its own: then no run reads the union's wider input (on CPU the union's width costs more
    than the batching saves; docs/batched.md)."""
    if group_size is not None and group_size < 1:
        raise ValueError(f"--group-size must be at least 1, got {group_size}")
    groups: dict[str, list[int]] = {}
    for i, config in enumerate(configs):
        key = group_key(config)
        if not mixed_subsets:
            key += repr(normalise_modalities(config.modalities))
        groups.setdefault(key, []).append(i)
    out = []
    for members in groups.values():
        size = group_size or len(members)
        out += [members[i:i + size] for i in range(0, len(members), size)]
    return out


def union_modalities(configs: Sequence[TrainConfig]) -> list[str]:
    """The modalities any run reads, in t, a, v order."""
    used = {code for c in configs for code in normalise_modalities(c.modalities)}
    return [code for code in MODALITY_NAMES if code in used]


def restrict(prepared: PreparedData, codes: Sequence[str], fused: bool = True) -> PreparedData:
    """The data of a run on ``codes`` cut from the union's: the same as load_training_data would give
    (ZNorm statistics are per modality). ``fused=False`` leaves the fused matrix out (``data`` None):
    enough for the run-folder checks and records, without a copy of the features per run."""
    data = prepared.data
    files = {code: prepared.files[code] for code in codes}
    norm = ZNorm({c: prepared.norm.mean[c] for c in codes}, {c: prepared.norm.std[c] for c in codes})
    own = None
    if fused:
        availability = data.input_dim > sum(data.dims.values())
        cols = union_columns(codes, data.modalities, data.dims, availability)
        pad = data.features[:, cols].contiguous()
        own = FusedData(ids=data.ids, labels=data.labels, modalities=list(codes),
                        dims={c: data.dims[c] for c in codes}, features=pad,
                        available=data.available[:, [data.modalities.index(c) for c in codes]],
                        dialogues=data.dialogues, votes=data.votes)
    return PreparedData(prepared.corpus, prepared.corpus_folder, files, norm, own)  # type: ignore[arg-type]


@dataclass
class _Run:
    config: TrainConfig
    run_dir: Path
    codes: list[str]
    inputs: dict[str, dict]
    model: EmoLRModel  # own shapes; used to initialise, to draw its dropout masks, then to finish
    generator: torch.Generator  # batches (CPU)
    dropout: torch.Generator  # dropout masks (on the training device)
    state: dict[str, Any] = field(default_factory=new_state)
    results: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None  # last.pt of a run being resumed

    @property
    def training(self) -> bool:
        return self.results is None and not self.state["stopped"] and self.state["epoch"] < self.config.optim.max_epochs


@dataclass
class _Batch:
    x: torch.Tensor  # (A, B, T, U)
    speakers: torch.Tensor  # (A, B, T)
    mask: torch.Tensor  # (A, B, T)
    n_parties: int
    index: torch.Tensor  # (A, N) flat positions of each run's labelled utterances (context-only ones are not scored)
    labels: torch.Tensor  # (A, N)
    weight: torch.Tensor  # (A, N) 1/N_r, 0 on padding
    counts: torch.Tensor  # (A,) N_r
    shapes: list[tuple[int, int]]  # each run's own (B_r, T_r) before padding to the others
    votes: torch.Tensor | None = None  # (A, N, C) annotator votes of those utterances, if the corpus has them


def gather_batch(data: FusedData, features: torch.Tensor, per_run: Sequence[Sequence[DialogueIndex]],
                 device: torch.device) -> _Batch:
    """One padded batch holding each run's own dialogues: (A, B, T) with B, T the largest of any run."""
    batches = [collate(data, dialogues) for dialogues in per_run]
    a = len(batches)
    b = max(x.rows.shape[0] for x in batches)
    t = max(x.rows.shape[1] for x in batches)
    rows = torch.full((a, b, t), data.pad_row, dtype=torch.long)
    speakers = torch.zeros((a, b, t), dtype=torch.long)
    labels = torch.full((a, b, t), -1, dtype=torch.long)
    for i, x in enumerate(batches):
        rows[i, :x.rows.shape[0], :x.rows.shape[1]] = x.rows
        speakers[i, :x.rows.shape[0], :x.rows.shape[1]] = x.speakers
        labels[i, :x.rows.shape[0], :x.rows.shape[1]] = x.labels
    mask = rows != data.pad_row
    flat = (mask & (labels >= 0)).view(a, -1)
    counts = flat.sum(1)
    n = max(1, int(counts.max()))  # one weightless slot when no run has a labelled utterance in this step
    index = torch.zeros((a, n), dtype=torch.long)
    weight = torch.zeros((a, n), dtype=torch.float64)
    for i in range(a):
        pos = flat[i].nonzero().squeeze(1)
        index[i, :len(pos)] = pos
        weight[i, :len(pos)] = 1.0 / max(1, len(pos))
    sel_labels = labels.view(a, -1).gather(1, index).clamp(min=0)
    votes = None
    if data.votes is not None:
        votes = data.votes[rows.view(a, -1).gather(1, index)].to(device=device, dtype=features.dtype)
    rows_d = rows.to(device)
    return _Batch(features[rows_d], speakers.to(device), mask.to(device), max(x.n_parties for x in batches),
                  index.to(device), sel_labels.to(device), weight.to(device=device, dtype=features.dtype), counts,
                  [tuple(x.rows.shape) for x in batches], votes)


class GroupTrainer:
    """The stacked state of a group: weights, Adam moments and step counts, (R, ...)."""

    def __init__(self, runs: list[_Run], stacked: StackedModel, device: torch.device) -> None:
        self.runs, self.stacked, self.device = runs, stacked, device
        names = stacked.names
        own_params = [dict(r.model.named_parameters()) for r in runs]
        self.weights = stacked.stack([{k: v.detach() for k, v in p.items()} for p in own_params])
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.weights.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.weights.items()}
        self.steps = torch.zeros(len(runs), dtype=torch.float64, device=device)
        self.names = names
        # Dropout: each run draws its masks through its own model (own widths), as alone; the group's
        # template holds the same layers at the union's widths.
        self.sites = dropout_sites(stacked.template)
        self.own_sites = [dropout_sites(r.model) for r in runs]
        # Runs whose input columns are not the union's, in order: their masks of input columns are embedded.
        self.embedded = [not torch.equal(c, torch.arange(stacked.union_width)) for c in stacked.columns]
        for r, own in enumerate(self.own_sites):
            for (name, site), (own_name, mine) in zip(self.sites, own, strict=True):
                if own_name != name or (mine.width != site.width and site.input_at is None):
                    raise ValueError(f"dropout layer {name} of run {r} cannot be embedded in its group: group runs by "
                                     "modality subset with this backbone")

    # --- single-run checkpoint format (run_training's last.pt) ------------------------------------

    def load_run_checkpoint(self, r: int, ckpt: dict[str, Any]) -> None:
        run = self.runs[r]
        run.generator.set_state(ckpt["generator"])
        run.dropout.set_state(ckpt["dropout_generator"])
        run.model.load_state_dict(ckpt["model"])
        own = dict(run.model.named_parameters())
        zeros = {k: torch.zeros_like(v) for k, v in own.items()}
        moments = ckpt["optimizer"]["state"]
        m = {k: moments[i]["exp_avg"] if i in moments else zeros[k] for i, k in enumerate(self.names)}
        v = {k: moments[i]["exp_avg_sq"] if i in moments else zeros[k] for i, k in enumerate(self.names)}
        steps = {float(moments[i]["step"]) for i in moments}
        self.steps[r] = steps.pop() if steps else 0.0
        for target, source in ((self.weights, {k: p.detach() for k, p in own.items()}), (self.exp_avg, m),
                               (self.exp_avg_sq, v)):
            embedded = self.stacked.embed(r, source)
            for k in self.names:
                target[k][r] = embedded[k].to(self.device)

    def run_checkpoint(self, r: int) -> dict[str, Any]:
        """Run r's last.pt as run_training writes it (so either trainer can resume it)."""
        run = self.runs[r]
        weights = self.stacked.extract(r, self.weights)
        run.model.load_state_dict(weights)
        optimizer = make_optimizer(run.model, run.config).state_dict()
        m, v = self.stacked.extract(r, self.exp_avg), self.stacked.extract(r, self.exp_avg_sq)
        step = torch.tensor(float(self.steps[r]))
        if float(self.steps[r]) > 0:
            optimizer["state"] = {i: {"step": step.clone(), "exp_avg": m[k].cpu(), "exp_avg_sq": v[k].cpu()}
                                  for i, k in enumerate(self.names)}
        last = {"format": LAST_FORMAT, "model": cpu_copy(weights), "optimizer": optimizer,
                "generator": run.generator.get_state(), "dropout_generator": run.dropout.get_state(), "rng": rng_state(),
                "state": run.state}
        return last

    def selected_weights(self, r: int) -> dict[str, torch.Tensor]:
        """What is scored and kept as best.pt."""
        return cpu_copy(self.stacked.extract(r, self.weights))

    # --- one epoch ---------------------------------------------------------------------------------

    def train_epoch(self, active: list[int], data: FusedData, features: torch.Tensor,
                    dialogues: Sequence[DialogueIndex], on_step=None) -> list[float]:
        """One epoch of the ``active`` runs (each on its own batch order); their mean loss per utterance.
        ``on_step(losses)`` sees each step's per-run losses (A,)."""
        optim = self.runs[active[0]].config.optim
        idx = torch.tensor(active, device=self.device)
        w = {k: self.weights[k][idx].clone().requires_grad_() for k in self.names}
        m = [self.exp_avg[k][idx].clone() for k in self.names]
        v = [self.exp_avg_sq[k][idx].clone() for k in self.names]
        steps = self.steps[idx].clone()
        masks = self.stacked.input_masks[idx]
        lengths = [len(d) for d in dialogues]
        # Every run draws its own batches as alone; runs at one epoch take the length buckets in the same
        # order (mmemolr.fuse.schedule), so a step pads no run to another's longer dialogues.
        plans = [batch_plan(lengths, optim.batch_dialogues, self.runs[r].generator, True,
                            self.runs[r].state["epoch"]) for r in active]
        total = torch.zeros(len(active), dtype=torch.float64)
        count = torch.zeros(len(active), dtype=torch.float64)
        params = [w[k] for k in self.names]
        for step in range(len(plans[0])):
            batch = gather_batch(data, features, [[dialogues[i] for i in plan[step]] for plan in plans], self.device)
            dropout = self.dropout_masks(active, batch.shapes, *batch.mask.shape[1:])
            losses = self.stacked.losses(w, masks, batch.x, batch.speakers, batch.mask, batch.n_parties,
                                         batch.index, batch.labels, batch.weight, dropout, batch.votes)
            if on_step is not None:
                on_step(losses.detach())
            grads = list(torch.autograd.grad(losses.sum(), params))
            # A run whose batch holds only context-only utterances takes no step, as alone (train_epoch).
            idle = (batch.counts == 0).nonzero().squeeze(1).to(self.device)
            kept = [[t[idle].clone() for t in group] for group in (params, m, v)] if len(idle) else None
            kept_steps = steps[idle].clone() if len(idle) else None
            adam_step(params, grads, m, v, steps, optim.lr, optim.weight_decay)
            if kept is not None:
                with torch.no_grad():
                    for group, saved in zip((params, m, v), kept):
                        for t, old in zip(group, saved):
                            t[idle] = old
                    steps[idle] = kept_steps
            total += losses.detach().double().cpu() * batch.counts
            count += batch.counts
        with torch.no_grad():
            for j, k in enumerate(self.names):
                self.weights[k][idx] = w[k].detach()
                self.exp_avg[k][idx] = m[j]
                self.exp_avg_sq[k][idx] = v[j]
            self.steps[idx] = steps
        if bool((count == 0).any()):
            raise ValueError("the training split has no labelled utterances")
        return (total / count).tolist()

    def dropout_masks(self, active: list[int], shapes: Sequence[tuple[int, int]], b: int, t: int) -> dict[str, torch.Tensor]:
        """One step's dropout masks of the active runs, (A, b, t, width) by layer: each run's drawn from its
        own generator at its own shapes (mmemolr.model.dropout.draw_masks, as train_epoch draws them alone),
        then its input columns put where the union has them and its batch padded to the group's."""
        dtype = next(self.stacked.template.parameters()).dtype
        stacked: dict[str, list[torch.Tensor]] = {name: [] for name, _ in self.sites}
        for r, (b_r, t_r) in zip(active, shapes):
            own = draw_masks(self.own_sites[r], self.runs[r].dropout, b_r, t_r, dtype)
            for name, site in self.sites:
                mask = own[name]
                if site.input_at is not None and self.embedded[r]:
                    mask = self.stacked.embed_columns(r, mask, site.input_at)
                stacked[name].append(F.pad(mask, (0, 0, 0, t - t_r, 0, b - b_r)))
        return {name: torch.stack(masks) for name, masks in stacked.items()}

    @torch.no_grad()
    def evaluate(self, active: list[int], data: FusedData, features: torch.Tensor,
                 dialogues: Sequence[DialogueIndex], batch_size: int):
        """Per active run, its Evaluation (mmemolr.train.loop) of ``dialogues``, with the refined target
        distributions of a refining target as ``loop.evaluate(refined=True)`` gives them."""
        idx = torch.tensor(active, device=self.device)
        w = {k: self.weights[k][idx] for k in self.names}
        masks = self.stacked.input_masks[idx]
        refines = self.runs[active[0]].model.target.refines
        rows, gold, probs, dist = [], [], [[] for _ in active], [[] for _ in active]
        for plan in batch_plan([len(d) for d in dialogues], batch_size, None, True):
            batch = collate(data, [dialogues[i] for i in plan])
            mask = batch.mask.to(self.device)
            labels = batch.labels.to(self.device) if refines else None
            votes = batch.votes.to(device=self.device, dtype=features.dtype) \
                if refines and batch.votes is not None else None
            logits, z = self.stacked.predict(w, masks, features[batch.rows.to(self.device)],
                                             batch.speakers.to(self.device), mask, batch.n_parties, labels, votes)
            rows.append(batch.rows[batch.mask])
            gold.append(batch.labels[batch.mask])
            scored = (labels[mask] >= 0).cpu() if refines else None
            for a in range(len(active)):
                probs[a].append(torch.softmax(logits[a][mask].float(), dim=-1).cpu())
                if refines:  # NaN rows for the context-only utterances, as loop.refined_rows
                    dist[a].append(torch.where(scored.unsqueeze(-1), z[a][mask].float().cpu(), float("nan")))
        return [collect_evaluation(rows, gold, p, None, d if refines else None) for p, d in zip(probs, dist)]


def train_group(configs: Sequence[TrainConfig], run_dirs: Sequence[str | Path], features_dir: str | Path = "features",
                progress: bool | str = True, threads: int | None = None,
                tensorboard: str | Path | None = None) -> list[dict[str, Any]]:
    """Train the runs ``configs`` (one group: equal :func:`group_key`) into ``run_dirs`` as one batched
    model; returns each run's results dict (complete runs are returned as stored, started ones resume).
    ``tensorboard``: each run also logs into ``<tensorboard>/<run folder name>`` (mmemolr.train.tblog)."""
    if len(configs) != len(run_dirs) or not configs:
        raise ValueError("train_group needs one run folder per config, and at least one config")
    for config in configs:
        check_train_config(config)
    if len({group_key(c) for c in configs}) > 1:
        raise ValueError("these runs cannot train as one group: their configs differ in more than seed and "
                         "modalities (group them with mmemolr.train.batched.group_runs)")
    configs = [resolve_budget(c, features_dir) for c in configs]
    features_dir = Path(features_dir)
    first = configs[0]
    codes_union = union_modalities(configs)
    features = {}
    for c in configs:
        features.update(c.features)
    union = load_training_data(first.corpus, codes_union, features, features_dir)
    data = union.data

    set_threads(threads)
    device = resolve_device(first.device)
    bptt.usable(device)  # checks the hand-written recurrences on a device the tests have not verified
    for run_dir in run_dirs:
        commit.settle(Path(run_dir))  # an epoch commit a kill interrupted: all runs at one epoch again
    runs: list[_Run] = []
    results: list[dict[str, Any] | None] = []
    resumed_rng = None
    for config, run_dir in zip(configs, map(Path, run_dirs)):
        codes = normalise_modalities(config.modalities)
        start = begin_run(config, run_dir, features_dir, restrict(union, codes, fused=False), tensorboard)
        results.append(start.complete)
        if start.complete is not None:
            continue
        torch.manual_seed(config.seed)
        own_dim = sum(data.dims[c] for c in codes) + len(codes)  # features, then availability columns
        model = build_model(config, own_dim, len(data.labels)).to(device)
        run = _Run(config, run_dir, codes, start.inputs, model, torch.Generator().manual_seed(config.seed),
                   dropout_generator(config.seed, device))
        if (run_dir / rundir.LAST).exists():
            ckpt = load_checkpoint(run_dir / rundir.LAST, map_location="cpu")
            check_last_format(ckpt, run_dir / rundir.LAST)
            run.state = ckpt["state"]
            run.checkpoint = ckpt
            resumed_rng = resumed_rng or ckpt["rng"]
            _check_same_features(run_dir, run.state.get("feature_files") or {},
                                 {c: (union.files[c].path, start.inputs[c]) for c in codes})
            log.info("resuming %s after epoch %d", run_dir, run.state["epoch"])
        else:
            write_run_start(run_dir, config, restrict(union, codes, fused=False), start.inputs)
        run.state["feature_files"] = {c: _identity_record(union.files[c]) for c in codes}
        runs.append(run)
    if runs:
        _train(runs, union, device, progress, resumed_rng)
    done = iter(runs)
    return [stored if stored is not None else next(done).results for stored in results]


def build_stack(runs: list[_Run], union: PreparedData, device: torch.device) -> StackedModel:
    data = union.data
    columns = [union_columns(r.codes, data.modalities, data.dims, True) for r in runs]
    first = runs[0].config
    dtype = next(runs[0].model.parameters()).dtype
    template = build_model(first, data.input_dim, len(data.labels)).to(device=device, dtype=dtype)
    blocks: dict[str, tuple[int, int]] = {}
    if any(len(c) != data.input_dim or not torch.equal(c, torch.arange(data.input_dim)) for c in columns):
        blocks = input_blocks(lambda width: build_model(first, width, len(data.labels)), len(columns[0]))
        # The blocks' positions do not depend on the width (checked for every run below).
    stacked = StackedModel(template, data.input_dim, columns, blocks)
    sample = collate(data, data.split("train")[:4])
    checked = set()
    for r, run in enumerate(runs):
        if tuple(run.codes) in checked:
            continue
        checked.add(tuple(run.codes))
        stacked.check_embedding(r, run.model, data.features[sample.rows].to(device=device, dtype=dtype),
                                sample.speakers.to(device),
                                sample.mask.to(device), sample.n_parties)
    return stacked


def _train(runs: list[_Run], union: PreparedData, device: torch.device, progress: bool | str,
           resumed_rng: dict | None) -> None:
    data = union.data
    stacked = build_stack(runs, union, device)
    trainer = GroupTrainer(runs, stacked, device)
    for r, run in enumerate(runs):
        if run.checkpoint is not None:
            trainer.load_run_checkpoint(r, run.checkpoint)
            run.checkpoint = None
    if resumed_rng is not None:
        set_rng_state(resumed_rng)
    features = data.features.to(device)
    train, dev = data.split("train"), data.split("dev")
    optim = runs[0].config.optim
    first_epoch = min(r.state["epoch"] for r in runs)
    bar = Progress(optim.max_epochs, f"train group of {len(runs)}", "epoch", initial=first_epoch,
                   progress=progress, every=1)
    try:
        while True:
            for run in runs:
                if run.results is None and not run.training:
                    _finish(run, union, device)
            active = [r for r, run in enumerate(runs) if run.training]
            if not active:
                break
            t0 = time.perf_counter()
            losses = trainer.train_epoch(active, data, features, train)
            evaluations = trainer.evaluate(active, data, features, dev, EVAL_BATCH_DIALOGUES)
            seconds = (time.perf_counter() - t0) / len(active)
            # The epoch is committed as one unit (mmemolr.train.commit): every run's next.pt, then each applied.
            token, members = uuid.uuid4().hex, [str(runs[r].run_dir.resolve()) for r in active]
            best_weights = {}
            for r, loss, valid in zip(active, losses, evaluations):
                run = runs[r]
                scores = classification_metrics(valid.gold, valid.pred, data.labels)
                row = epoch_row(run.state["epoch"] + 1, loss, valid.loss, scores, seconds)
                row.update(epoch_diagnostics(valid.refined, valid.gold, data.labels))  # as run_training's rows
                best_weights[r] = trainer.selected_weights(r) if select_epoch(run.config, run.state, row) else None
                commit.write_next(run.run_dir, trainer.run_checkpoint(r), best_weights[r], token, members)
            for r in active:
                commit.apply_next(runs[r].run_dir, best_weights[r], runs[r].state["history"])
            best = max(runs[r].state["best_score"] for r in active)
            bar.update(1, f"{len(active)} of {len(runs)} runs training, best dev W-F1 {best:.4f}")
    finally:
        bar.close()


def _finish(run: _Run, union: PreparedData, device: torch.device) -> None:
    """Test once with best.pt and write the run's outputs (run_training's finish_run)."""
    prepared = restrict(union, run.codes)
    run.results = finish_run(run.config, run.run_dir, prepared, run.inputs, run.model, device, run.state)


def parse_seed_list(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> seeds."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds += list(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r}: give distinct integers, e.g. 0,1,2,3,4 or 0-4")
    return seeds


