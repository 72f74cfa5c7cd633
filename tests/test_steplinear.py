"""StepLinear (mmemolr.model.steplinear): a recurrence's per-step products with the weight gradient deferred
to one product after the loop; its gradients against finite differences and against plain autograd."""

from __future__ import annotations

import pytest
import torch

from mmemolr.model.steplinear import StepLinear


def _recurrence(x0: torch.Tensor, weight: torch.Tensor, add: torch.Tensor, steps: int, deferred: bool) -> torch.Tensor:
    """h_{t+1} = tanh(add_t + h_t W), h_t read again by the next step and the output (two uses per state)."""
    linear = StepLinear(weight) if deferred else (lambda h, a: a + h @ weight)
    h, outs = x0, []
    for t in range(steps):
        h = torch.tanh(linear(h, add[t]))
        outs.append(h * h.sum(-1, keepdim=True))
    return torch.stack(outs)


@pytest.mark.parametrize("batched", [False, True])
def test_step_linear_gradients_match_finite_differences_and_autograd(batched):
    torch.manual_seed(0)
    shape = (2, 3) if batched else (3,)  # (K, N) groups of a batched product, or N rows
    x0 = torch.randn(*shape, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(*shape[:-1], 4, 4, dtype=torch.float64, requires_grad=True) * 0.5
    add = torch.randn(5, *shape[:-1], 1, 4, dtype=torch.float64, requires_grad=True)  # broadcast over rows
    assert torch.autograd.gradcheck(lambda *a: _recurrence(*a, 5, True), (x0, weight, add))
    seed = torch.randn(5, *shape, 4, dtype=torch.float64)
    got = torch.autograd.grad(_recurrence(x0, weight, add, 5, True), (x0, weight, add), seed)
    want = torch.autograd.grad(_recurrence(x0, weight, add, 5, False), (x0, weight, add), seed)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_step_linear_without_gradients_and_twice_backward():
    torch.manual_seed(0)
    weight = torch.randn(4, 4, requires_grad=True)
    with torch.no_grad():  # evaluation: no graph, the same values
        torch.testing.assert_close(StepLinear(weight)(torch.ones(2, 4)), torch.ones(2, 4) @ weight)
    out = _recurrence(torch.randn(3, 4), weight, torch.zeros(3, 1, 4), 3, True).sum()
    first = torch.autograd.grad(out, weight, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(out, weight)[0], first)  # each pass collects its own steps
