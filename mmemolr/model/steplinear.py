"""Per-step products of a recurrence whose weight gradient is one product after the loop.

A recurrence written as a Python loop over time steps multiplies its state by the same weight at every
step. Autograd then computes, at every step of the backward pass, a weight gradient x_tᵀ g_t (a full
(in, out) product) and adds it to the running sum, and the input gradient g_t Wᵀ reads a transposed view
of the weight, which is a slow layout for CPU batched products. :class:`StepLinear` does what cuDNN's
RNN backward does instead: every step's backward computes the input gradient only (from a contiguous
copy of Wᵀ) and keeps (x_t, g_t); after the last of them the weight's gradient is
Σ_t x_tᵀ g_t = [x_0; ..; x_T]ᵀ [g_0; ..; g_T], one product. Values and gradients are those of
``add + x @ weight``; only the order of the sums in the weight gradient differs. Not twice differentiable
(the backward pass is not itself recorded). Under torch.func transforms (the ``vmap`` of
``mmemolr.train.stacked``, which runs several models as one) it is the plain product: its backward keeps
state between nodes, which such transforms do not allow.
"""

from __future__ import annotations

import torch


class StepLinear:
    """``add + x @ weight`` for every step of one forward pass, the weight's gradient deferred.

    ``weight`` (in, out), or (K, in, out) for K independent products batched (e.g. the directions of a
    bidirectional recurrence); it may be a non-leaf tensor (a slice or stack of parameters). ``x`` has the
    weight's number of dimensions ((N, in) or (K, N, in)); ``add`` (optional) is anything that broadcasts
    to the product (a bias, or pre-activations computed before the loop) and gets its gradient per step.
    Make one per forward pass: it keeps the steps' inputs and output gradients until the weight's gradient
    is computed.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        self._plain = torch._C._are_functorch_transforms_active()
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (x_t, g_t) of the steps' backward
        if self._plain:
            self._weight = weight
            return
        self._weight_t = weight.detach().transpose(-1, -2).contiguous()  # for the input gradient
        # The steps read this view of the weight: autograd runs its backward after every step's.
        self._weight = _WeightGrad.apply(weight, self._pairs)

    def __call__(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        if self._plain:
            return x @ self._weight if add is None else add + x @ self._weight
        return _Step.apply(x, self._weight, add, self._weight_t, self._pairs)


class _WeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, pairs: list) -> torch.Tensor:
        ctx.pairs = pairs
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)  # the same values; the steps' link to this node

    @staticmethod
    def backward(ctx, _unused: torch.Tensor | None) -> tuple[torch.Tensor | None, None]:
        pairs = ctx.pairs
        if not pairs:
            return None, None
        x = torch.cat([x for x, _ in pairs], -2)
        g = torch.cat([g for _, g in pairs], -2)
        pairs.clear()  # a second backward pass (retain_graph) collects its own steps
        return x.transpose(-1, -2) @ g, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, add: torch.Tensor | None, weight_t: torch.Tensor,
                pairs: list) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.weight_t, ctx.pairs = weight_t, pairs
        ctx.add_shape = None if add is None else add.shape
        if add is None:
            return x @ weight
        return torch.baddbmm(add, x, weight) if x.dim() == 3 else torch.addmm(add, x, weight)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None, None, None]:
        (x,) = ctx.saved_tensors
        needs_x, needs_weight, needs_add = ctx.needs_input_grad[:3]
        if needs_weight:
            ctx.pairs.append((x, g))
        grad_x = g @ ctx.weight_t if needs_x else None
        grad_add = g.sum_to_size(ctx.add_shape) if needs_add else None
        return grad_x, None, grad_add, None, None
