"""Dropout whose masks a run draws from its own generator, alone or in a batched group (docs/batched.md).

``nn.Dropout`` draws from the global random generator, and under the ``vmap`` of a batched group
(mmemolr.train.stacked) which masks a run gets would depend on its group. :class:`Dropout` takes its mask
from the caller instead. The training loops draw every mask of a step before the forward pass
(:func:`draw_masks`): site after site in the model's module order, each (B, T, width) from the run's own
dropout generator (:func:`dropout_generator`, on the training device), then install them
(:func:`masks_installed`). A run alone and the same run in any group draw the same numbers in the same
order for the same batch, so they drop the same units; the group embeds each run's masks in its own shapes
and passes them through ``vmap`` as inputs.

Without installed masks (a model called in training mode outside the training loops) a :class:`Dropout`
is ``F.dropout``. Models draw no other random numbers: :func:`dropout_sites` refuses ``nn.Dropout`` and
recurrent layers with internal dropout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

_INSTALLED: ContextVar[dict[int, torch.Tensor] | None] = ContextVar("dropout_masks", default=None)


class Dropout(nn.Module):
    """Dropout of per-utterance features (B, T, ``width``), its mask drawn by the caller.

    ``input_at``: where the model's input columns begin in the last dimension when ``width`` grows with the
    model's input width (the input dropout: 0), None when it does not. A batched group, whose runs read
    the union of their modalities, uses it to put a run's mask columns where its input columns are."""

    def __init__(self, p: float, width: int, input_at: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.width, self.input_at = p, width, input_at

    def extra_repr(self) -> str:
        return f"p={self.p}, width={self.width}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        installed = _INSTALLED.get()
        if installed is None:
            return F.dropout(x, self.p, True)
        if id(self) not in installed:
            raise RuntimeError("a dropout layer ran without its mask: draw_masks drew masks for another model")
        return x * installed[id(self)]


Sites = Sequence[tuple[str, Dropout]]


def dropout_sites(model: nn.Module) -> list[tuple[str, Dropout]]:
    """The model's :class:`Dropout` layers that drop something (p > 0), by name, in module order; refuses
    layers that would draw from the global random generator."""
    sites = []
    for name, module in model.named_modules():
        if isinstance(module, Dropout):
            if module.p > 0:
                sites.append((name, module))
        elif (isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0) or \
                (isinstance(module, nn.RNNBase) and module.dropout > 0):
            raise ValueError(f"{name} ({type(module).__name__}) draws dropout masks from the global random generator: "
                             "use mmemolr.model.dropout.Dropout, so that every run draws its own masks")
    return sites


def dropout_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A run's dropout generator on ``device``: seeded from ``seed``, apart from its batch generator's stream."""
    digest = hashlib.sha256(f"mmemolr dropout {seed}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def draw_masks(sites: Sites, generator: torch.Generator, batch: int, steps: int,
               dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """One step's masks, name -> (batch, steps, width): 0 for a dropped unit, 1 / (1 - p) for a kept one."""
    masks = {}
    for name, site in sites:
        keep = torch.rand((batch, steps, site.width), generator=generator, device=generator.device) >= site.p
        masks[name] = keep.to(dtype).mul_(1.0 / (1.0 - site.p))
    return masks


@contextmanager
def masks_installed(sites: Sites, masks: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Inside, the layers of ``sites`` drop with ``masks`` (by name); ``None``: ``F.dropout`` as usual."""
    if masks is None:
        yield
        return
    token = _INSTALLED.set({id(site): masks[name] for name, site in sites})
    try:
        yield
    finally:
        _INSTALLED.reset(token)
