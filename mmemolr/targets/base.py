"""Training targets: what the predictor's output distribution is pulled towards.

A target is one small module with a class decorated by ``@register_target``. It sees the predictor's
states and the gold labels of the labelled utterances of a batch (context-only utterances are read by the
predictor but never reach a target), and their annotator votes where the corpus has them, and returns
the loss. Targets
only shape training: prediction uses the Emotion Predictor alone, so a target's own parameters (the
label refinement module of ``rld``, the label embeddings of ``lcm``) are not needed at inference.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmemolr.model.predictor import PredictorOutput
from mmemolr.train.config import TargetConfig

TARGETS: dict[str, type[Target]] = {}


class Target(nn.Module):
    """Base target: ``distribution()`` gives z (N, C); the loss is KL(z ‖ softmax(logits))."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    # True when z is a learned distribution worth writing to predictions.csv as <name>_<label>.
    refines: ClassVar[bool] = False
    # True when z is built from the annotators' votes: `train` refuses it on a corpus without votes.
    needs_votes: ClassVar[bool] = False

    def __init__(self, config: TargetConfig, n_classes: int, hidden: int, label_dim: int,
                 emotion_dim: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.n_classes = n_classes

    def distribution(self, out: PredictorOutput, labels: torch.Tensor,
                     votes: torch.Tensor | None = None) -> torch.Tensor:
        """Target distribution z (N, C) for outputs ``out`` (N, ·) with gold ``labels`` (N,) and annotator vote
        counts ``votes`` (N, C; None when the corpus has none)."""
        raise NotImplementedError(f"target {self.name!r} defines neither distribution() nor loss()")

    def loss(self, out: PredictorOutput, labels: torch.Tensor, votes: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over utterances of KL(z ‖ softmax(logits))."""
        return kl_to(out.logits, self.distribution(out, labels, votes))


def kl_to(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over utterances of KL(z ‖ softmax(logits)).

    F.kl_div(reduction="batchmean") written out (the same sum): torch.func.vmap has no batching rule for
    kl_div and would loop over the runs of a batched group (mmemolr.train.batched) one by one."""
    return (torch.xlogy(z, z) - z * F.log_softmax(logits, dim=-1)).sum() / logits.shape[0]


def register_target(cls: type[Target]) -> type[Target]:
    if cls.name in TARGETS:
        raise ValueError(f"target {cls.name!r} is registered twice")
    TARGETS[cls.name] = cls
    return cls


def load_builtin_targets() -> None:
    import mmemolr.targets.builtin  # noqa: F401  (imports every built-in target module)


def build_target(config: TargetConfig, n_classes: int, hidden: int, label_dim: int,
                 emotion_dim: int | None = None) -> Target:
    """``hidden``: width of the speaker and context states; ``emotion_dim``: width of the emotion state
    when it differs (some backbones; passed only then, so targets written before keep working)."""
    load_builtin_targets()
    if config.name not in TARGETS:
        raise ValueError(f"unknown target {config.name!r}; known: {', '.join(sorted(TARGETS))}")
    if emotion_dim is None:
        return TARGETS[config.name](config, n_classes, hidden, label_dim)
    return TARGETS[config.name](config, n_classes, hidden, label_dim, emotion_dim=emotion_dim)
