"""R models of one architecture as one: weights with a leading runs dimension, trained with
``torch.func.functional_call`` + ``vmap``. Nothing random happens under ``vmap`` (randomness="error"): each
run's dropout masks are drawn outside, from its own generator, and passed in (mmemolr.model.dropout).

Nothing here knows the Emotion Predictor: any backbone built by ``mmemolr.train.build.build_model`` whose
weights have the same shapes for every run is batched. Runs may differ in their modality subset: the group
reads the union of the modalities (u = t ⊕ a ⊕ v, then one availability column per modality) and run r
sees its own columns only (the others are zeroed in its copy of the input). Its weights are its own
model's, embedded in the union's shapes with zeros where an absent column enters; with zero inputs those
weights get zero gradient, zero weight decay and so zero Adam updates, so they stay exactly zero and run r
computes exactly what its own model computes. :func:`input_blocks` finds, for every parameter whose shape
depends on the input width, where the input columns sit (it cannot tell from the names: DAG-ERC's MLP
reads H^0 ⊕ .. ⊕ H^L ⊕ u_t, the GRUs u_t ⊕ s): they are the entries whose gradient is zero when the
input is all zeros. :meth:`StackedModel.check_embedding` then verifies on random input that each
embedded run reproduces its own model's outputs, so a backbone where this reading fails is refused.

Optimiser: Adam (PyTorch's update, L2 weight decay) is elementwise, so stacking it is exact; what is not
elementwise is the step count, kept per run (runs resumed at different epochs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.optim.adam import adam as fused_adam

from mmemolr.model.dropout import dropout_sites, masks_installed

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which make_optimizer uses
EPS = 1e-8


def union_columns(own: Sequence[str], union: Sequence[str], dims: dict[str, int], availability: bool) -> torch.Tensor:
    """For each input column of a run on modalities ``own``, its column in the union's fused input.

    Fused input layout (mmemolr.fuse.build_fused): each modality's block in order, then one availability
    column per modality in the same order."""
    start, offset = {}, 0
    for code in union:
        start[code] = offset
        offset += dims[code]
    cols = [c for code in own for c in range(start[code], start[code] + dims[code])]
    if availability:
        cols += [offset + list(union).index(code) for code in own]
    return torch.tensor(cols, dtype=torch.long)


def _probe_grads(model: nn.Module, input_dim: int) -> dict[str, torch.Tensor]:
    """Gradients of a random function of the predictor's outputs for an all-zero input (3 steps, 2 parties)."""
    model = model.double().eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 3, input_dim, dtype=torch.float64)
    out = model.predictor(x, torch.tensor([[0, 1, 0]]), torch.ones(1, 3, dtype=torch.bool), 2)
    total = sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum()
                for t in (getattr(out, f.name) for f in fields(out)) if isinstance(t, torch.Tensor))
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(total, list(params.values()), allow_unused=True)
    return {name: (g if g is not None else torch.zeros_like(p)) for (name, p), g in zip(params.items(), grads)}


def input_blocks(build: Callable[[int], nn.Module], input_dim: int) -> dict[str, tuple[int, int]]:
    """Parameter name -> (dim, start) of the input columns, for every parameter whose shape depends on the
    input width (found by building the model for ``input_dim`` and ``input_dim + 1``)."""
    small, large = build(input_dim), build(input_dim + 1)
    grads = None
    blocks = {}
    for (name, a), (_, b) in zip(small.named_parameters(), large.named_parameters()):
        if a.shape == b.shape:
            continue
        differ = [k for k in range(a.dim()) if a.shape[k] != b.shape[k]]
        if len(differ) != 1 or b.shape[differ[0]] - a.shape[differ[0]] != 1:
            raise ValueError(f"parameter {name} grows other than by one column per input column "
                             f"({tuple(a.shape)} -> {tuple(b.shape)}): runs on different modality subsets "
                             "cannot be batched with this backbone; group runs by modality subset")
        if grads is None:
            grads = _probe_grads(small, input_dim)
        k = differ[0]
        zero = grads[name].abs().transpose(0, k).reshape(a.shape[k], -1).sum(1) == 0
        starts = [s for s in range(a.shape[k] - input_dim + 1) if bool(zero[s:s + input_dim].all())]
        if len(starts) != 1:
            raise ValueError(f"cannot tell which entries of parameter {name} read the input: runs on different "
                             "modality subsets cannot be batched with this backbone; group runs by modality subset")
        blocks[name] = (k, starts[0])
    return blocks


def _embed(own: torch.Tensor, dim: int, start: int, own_width: int, union_width: int,
           cols: torch.Tensor) -> torch.Tensor:
    shape = list(own.shape)
    after = shape[dim] - start - own_width
    shape[dim] = start + union_width + after
    out = own.new_zeros(shape)
    out.narrow(dim, 0, start).copy_(own.narrow(dim, 0, start))
    out.narrow(dim, start + union_width, after).copy_(own.narrow(dim, start + own_width, after))
    out.index_copy_(dim, cols.to(own.device) + start, own.narrow(dim, start, own_width))
    return out


def _extract(union: torch.Tensor, dim: int, start: int, own_width: int, union_width: int,
             cols: torch.Tensor) -> torch.Tensor:
    after = union.shape[dim] - start - union_width
    return torch.cat([union.narrow(dim, 0, start), union.index_select(dim, cols.to(union.device) + start),
                      union.narrow(dim, start + union_width, after)], dim)


class _Wrapper(nn.Module):
    """functional_call needs a forward: this one calls ``fn(model)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[[nn.Module], object]) -> object:
        return fn(self.model)


class StackedModel:
    """The weights of R runs stacked as (R, ...) tensors, with a template module to call them through.

    ``template`` is one run's model built for the union input width (its own weights are not used);
    ``columns[r]`` the union columns run r reads (:func:`union_columns`); ``blocks`` from
    :func:`input_blocks`. Weight tensors and Adam moments live in dicts keyed by parameter name.
    """

    def __init__(self, template: nn.Module, union_width: int, columns: Sequence[torch.Tensor],
                 blocks: dict[str, tuple[int, int]]) -> None:
        if any(True for _ in template.buffers()):
            raise ValueError("models with buffers (e.g. batch norm statistics) are not batched")
        self.template = template
        self._wrapper = _Wrapper(template)
        self.union_width = union_width
        self.columns = [c.clone() for c in columns]
        self.blocks = blocks
        self.names = [name for name, _ in template.named_parameters()]
        device = next(template.parameters()).device
        masks = torch.zeros(len(columns), union_width, device=device)
        for r, cols in enumerate(columns):
            masks[r, cols.to(device)] = 1.0
        self.input_masks = masks  # (R, U): 1 on the columns run r reads

    @property
    def runs(self) -> int:
        return len(self.columns)

    def embed(self, r: int, own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run r's own-shaped tensors (a state_dict, Adam moments) in the union's shapes."""
        width = len(self.columns[r])
        return {name: (_embed(own[name], *self.blocks[name], width, self.union_width, self.columns[r])
                       if name in self.blocks else own[name]) for name in self.names}

    def embed_columns(self, r: int, own: torch.Tensor, start: int | None) -> torch.Tensor:
        """Run r's ``own`` (..., W) whose last dimension holds its input columns from ``start`` on, in the
        union's width (zeros where the columns of the other modalities are): e.g. an input dropout mask."""
        if start is None:
            raise ValueError("this tensor's width grows with the input width but does not say where the input "
                             "columns are: runs on different modality subsets cannot be batched with this backbone")
        width = len(self.columns[r])
        return _embed(own, own.dim() - 1, start, width, self.union_width, self.columns[r])

    def extract(self, r: int, stacked: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run r's slice of stacked (R, ...) tensors, in its own model's shapes (detached)."""
        width = len(self.columns[r])
        out = {}
        for name in self.names:
            value = stacked[name][r].detach()
            out[name] = (_extract(value, *self.blocks[name], width, self.union_width, self.columns[r])
                         if name in self.blocks else value)
        return out

    def stack(self, per_run: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Own-shaped tensors of every run -> stacked union-shaped (R, ...) tensors."""
        device = next(self.template.parameters()).device
        embedded = [self.embed(r, own) for r, own in enumerate(per_run)]
        return {name: torch.stack([e[name].to(device) for e in embedded]) for name in self.names}

    def check_embedding(self, r: int, own_model: nn.Module, x_union: torch.Tensor, speakers: torch.Tensor,
                        mask: torch.Tensor, n_parties: int) -> None:
        """Refuse the group if run r, embedded, does not compute what its own model computes."""
        weights = self.embed(r, dict(own_model.named_parameters()))
        self.template.eval()
        own_model.eval()
        with torch.no_grad():
            mine = self._call(weights, lambda m: m.predictor(x_union * self.input_masks[r], speakers, mask, n_parties))
            theirs = own_model.predictor(x_union[..., self.columns[r].to(x_union.device)], speakers, mask, n_parties)
        if not torch.allclose(mine.logits[mask], theirs.logits[mask], rtol=1e-4, atol=1e-5):  # real steps
            raise ValueError("a run embedded in its group does not reproduce its own model's outputs: this backbone "
                             "cannot batch runs on different modality subsets; group runs by modality subset")

    def _call(self, weights: dict[str, torch.Tensor], fn: Callable[[nn.Module], object]):
        """``fn(template)`` with the template's parameters replaced by ``weights`` (torch.func.functional_call)."""
        return functional_call(self._wrapper, {f"model.{k}": v for k, v in weights.items()}, (fn,))

    # --- the batched calls -------------------------------------------------------------------------

    def losses(self, weights: dict[str, torch.Tensor], masks: torch.Tensor, x: torch.Tensor, speakers: torch.Tensor,
               mask: torch.Tensor, n_parties: int, index: torch.Tensor, labels: torch.Tensor,
               weight: torch.Tensor, dropout: dict[str, torch.Tensor],
               votes: torch.Tensor | None = None) -> torch.Tensor:
        """Per-run training losses (A,) for A stacked runs: ``weights`` (A, ...), ``masks`` (A, U) their input
        columns, ``x`` (A, B, T, U), ``speakers``/``mask`` (A, B, T), ``index`` (A, N) the flat (B*T) positions
        of each run's utterances (padded), ``labels`` (A, N), ``weight`` (A, N): 1/N_r on run r's utterances,
        0 on padding, ``dropout`` the template's dropout masks by layer name, (A, B, T, width) each, ``votes``
        (A, N, C) the utterances' annotator votes (targets that read them). The loss of a run is its target's
        mean loss over its own utterances, computed per utterance so that runs with different numbers of
        utterances share one call."""
        template = self.template
        template.train()
        sites = dropout_sites(template)

        def run_loss(model, xr, sp, mk, idx, y, wt, drop, vt):
            with masks_installed(sites, drop):
                out = model.predictor(xr, sp, mk, n_parties)
            sel = {f.name: getattr(out, f.name).flatten(0, 1)[idx] for f in fields(out)
                   if getattr(out, f.name) is not None}

            def one_utterance(parts, label, vote):
                single = type(out)(**{name: p.unsqueeze(0) for name, p in parts.items()})
                return model.target.loss(single, label.unsqueeze(0), vote.unsqueeze(0) if vote is not None else None)

            per_utterance = vmap(one_utterance, in_dims=(0, 0, vote_dim), randomness="error")
            return (per_utterance(sel, y, vt) * wt).sum()

        def one_run(w, m, xr, sp, mk, idx, y, wt, drop, vt):
            return self._call(w, lambda model: run_loss(model, xr * m, sp, mk, idx, y, wt, drop, vt))

        vote_dim = 0 if votes is not None else None  # vmap maps no dimension of a missing input
        return vmap(one_run, in_dims=(0,) * 9 + (vote_dim,), randomness="error")(
            weights, masks, x, speakers, mask, index, labels, weight, dropout, votes)

    @torch.no_grad()
    def predict(self, weights: dict[str, torch.Tensor], masks: torch.Tensor, x: torch.Tensor, speakers: torch.Tensor,
                mask: torch.Tensor, n_parties: int, labels: torch.Tensor | None = None,
                votes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (A, B, T, C) of A stacked runs on one shared batch (eval mode: no dropout), and with
        ``labels`` (B, T; -1 where unknown: those steps' rows are meaningless) the refining target's
        distributions z (A, B, T, C) as ``loop.evaluate`` computes them (``votes`` (B, T, C) where the corpus
        has them)."""
        template = self.template
        template.eval()

        def one_run(w, m):
            def outputs(model):
                out = model.predictor(x * m, speakers, mask, n_parties)
                if labels is None:
                    return out.logits, None
                flat = type(out)(**{f.name: getattr(out, f.name).flatten(0, 1) for f in fields(out)
                                    if getattr(out, f.name) is not None})
                z = model.target.distribution(flat, labels.clamp(min=0).flatten(),
                                              votes.flatten(0, 1) if votes is not None else None)
                return out.logits, z.view(*labels.shape, -1)

            return self._call(w, outputs)

        logits, z = vmap(one_run, out_dims=(0, 0 if labels is not None else None))(weights, masks)
        return logits, z


@torch.no_grad()
def adam_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], exp_avg: Sequence[torch.Tensor],
              exp_avg_sq: Sequence[torch.Tensor], steps: torch.Tensor, lr: float, weight_decay: float) -> None:
    """One step of torch.optim.Adam (L2 weight decay) on stacked tensors; ``steps`` (A,) per run, incremented.

    When every run is at the same step (always, unless runs were resumed at different epochs) this is
    PyTorch's own fused Adam on the stacked tensors (elementwise, so exact); otherwise the same update
    written out with per-run bias corrections."""
    beta1, beta2 = BETAS
    if bool((steps == steps[0]).all()):
        try:
            state_steps = [torch.tensor(float(steps[0]), device=p.device if p.is_cuda else "cpu") for p in params]
            # The fused kernel reads memory in order: vmap's gradients may come with other strides.
            fused_adam(list(params), [g.contiguous() for g in grads], list(exp_avg), list(exp_avg_sq), [],
                       state_steps, fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
                       weight_decay=weight_decay, eps=EPS, maximize=False)
            steps += 1
            return
        except (RuntimeError, TypeError, ValueError):
            pass  # no fused kernel for this device or dtype: the update below
    steps += 1
    bc1 = 1 - beta1 ** steps
    bc2_sqrt = (1 - beta2 ** steps).sqrt()
    for p, g, m, v in zip(params, grads, exp_avg, exp_avg_sq):
        shape = (-1, *([1] * (p.dim() - 1)))
        if weight_decay:
            g = g.add(p, alpha=weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(EPS)
        p.sub_(m / denom * (lr / bc1).view(shape))
