"""Backbones: the dialogue models label refinement plugs into.

A backbone is one small module with a class decorated by ``@register_backbone``. It reads the fused
utterance features ``x`` (B, T, F), the speaking party ``speakers`` (B, T), ``mask`` (B, T) (True on real
steps, which come first in each row) and the number of parties of the batch, and returns a
:class:`~mmemolr.model.predictor.PredictorOutput` with, per utterance,

  logits   (B, T, C)  what the classifier predicts (the only output prediction needs),
  speaker  (B, T, D)  a *speaker-sensitive* state: what the refinement module's Sim_speaker reads,
  context  (B, T, D)  a *context-sensitive* state: what Sim_ctx reads,
  emotion  (B, T, ·)  the classifier's input (what ``lcm`` reads and ``states.npz`` stores).

``speaker`` and ``context`` have the same width, :attr:`Backbone.state_dim`, because the refinement
module scores both against one label matrix R (mmemolr.model.refinement). Each backbone's docstring says
which of its states plays which role and why.

A backbone's own hyper-parameters are a dataclass, ``Options``, read from
``model.backbone_options.<name>`` of the training config (``key=value`` overrides work as for every key:
``model.backbone_options.dialoguegcn.window_past=4``) and validated like the rest of the config. Its fields
are declared with :func:`mmemolr.config.option` (documentation, the measurement or source that keeps
them, allowed range: the docs' options table is generated from them); removed options are listed in the
dataclass's ``REMOVED_KEYS``, as for the sections of the training config.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from mmemolr.model.predictor import PredictorOutput

BACKBONES: dict[str, type[Any]] = {}


@dataclasses.dataclass
class NoOptions:
    """A backbone without options of its own."""


class Backbone(nn.Module):
    """Base class of the backbones (the ``emolr`` backbone is the Emotion Predictor, which predates it and
    follows the same protocol without inheriting from it)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    @property
    def state_dim(self) -> int:
        """Width of the speaker and context states (what the target modules are built for)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, model: Any, options: Any, input_dim: int, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor,
                n_parties: int | None = None) -> PredictorOutput:
        raise NotImplementedError


def register_backbone(cls: type) -> type:
    if cls.name in BACKBONES:
        raise ValueError(f"backbone {cls.name!r} is registered twice")
    BACKBONES[cls.name] = cls
    return cls


def load_builtin_backbones() -> None:
    import mmemolr.model.backbones.builtin  # noqa: F401  (imports every built-in backbone module)


def backbone_class(name: str) -> type:
    load_builtin_backbones()
    if name not in BACKBONES:
        raise ValueError(f"model.backbone={name!r} is not a known backbone ({', '.join(sorted(BACKBONES))})")
    return BACKBONES[name]


def backbone_options(model: Any) -> Any:
    """The chosen backbone's options, validated from ``model.backbone_options[<name>]``."""
    from mmemolr.config import ConfigError, check_ranges, field_ranges, from_dict

    cls = backbone_class(model.backbone)
    where = f"model.backbone_options.{model.backbone}"
    raw = _options_of(model.backbone_options or {}, model.backbone)
    options = from_dict(cls.Options, raw, where)
    problems = check_ranges(options, field_ranges(cls.Options, f"{where}."), f"{where}.")
    check = getattr(cls, "check", None)
    problems += check(options) if check is not None else []
    if problems:
        raise ConfigError("invalid training config: " + "; ".join(problems))
    return options


def _key(name: str) -> str:
    """Backbone names as option keys: ``key=value`` overrides spell dag-erc as dag_erc."""
    return name.replace("-", "_")


def _options_of(options: dict[str, Any], name: str) -> dict[str, Any]:
    found = [value for key, value in options.items() if _key(key) == _key(name)]
    if len(found) > 1:
        from mmemolr.config import ConfigError

        raise ConfigError(f"model.backbone_options holds {name} twice (as {name} and {_key(name)}); keep one")
    return found[0] or {} if found else {}


def drop_removed_options(options: dict[str, Any]) -> dict[str, Any]:
    """``model.backbone_options`` without the removed options that hold their "off" value (as a stored
    config of an earlier version may); other values stay, so that validation names them."""
    load_builtin_backbones()
    out = {}
    for name, values in options.items():
        cls = next((c for n, c in BACKBONES.items() if _key(n) == _key(name)), None)
        removed = getattr(cls.Options, "REMOVED_KEYS", {}) if cls is not None else {}
        if isinstance(values, dict):
            values = {k: v for k, v in values.items() if not (k in removed and v == removed[k].off)}
        out[name] = values
    return out


def check_backbone_config(model: Any) -> list[str]:
    """Problems with ``model.backbone`` and ``model.backbone_options`` (each names the key)."""
    from mmemolr.config import ConfigError

    load_builtin_backbones()
    problems = []
    known = {_key(name) for name in BACKBONES}
    for name, value in (model.backbone_options or {}).items():
        if _key(name) not in known:
            problems.append(f"model.backbone_options.{name}: {name!r} is not a known backbone "
                            f"({', '.join(sorted(BACKBONES))})")
        elif value is not None and not isinstance(value, dict):
            problems.append(f"model.backbone_options.{name} must be a mapping of option names to values")
    if model.backbone not in BACKBONES:
        problems.append(f"model.backbone={model.backbone!r} is not a known backbone ({', '.join(sorted(BACKBONES))})")
        return problems
    try:
        backbone_options(model)
    except ConfigError as err:
        problems.append(str(err).removeprefix("invalid training config: "))
    return problems


def build_backbone(model: Any, input_dim: int, n_classes: int) -> nn.Module:
    """The backbone named by ``model.backbone`` (a ModelConfig), for ``input_dim`` features and
    ``n_classes`` labels."""
    cls = backbone_class(model.backbone)
    return cls.from_config(model, backbone_options(model), input_dim, n_classes)


def padded_softmax(scores: torch.Tensor, allowed: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """softmax of ``scores`` over the ``allowed`` entries along ``dim``; all-zero where none is allowed."""
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * allowed.to(scores.dtype)
