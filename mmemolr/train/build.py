"""The trainable pair: a backbone (the Emotion Predictor by default) + training target (which may own a
refinement module)."""

from __future__ import annotations

from torch import nn

from mmemolr.model.backbones import build_backbone
from mmemolr.targets import Target, build_target
from mmemolr.train.config import TrainConfig


class EmoLRModel(nn.Module):
    """state_dict keys: ``predictor.*`` (the backbone: all that prediction needs; the name predates
    backbones and is kept so that earlier checkpoints load) and ``target.*`` (training only)."""

    def __init__(self, predictor: nn.Module, target: Target) -> None:
        super().__init__()
        self.predictor = predictor
        self.target = target


def build_model(config: TrainConfig, input_dim: int, n_classes: int) -> EmoLRModel:
    m = config.model
    predictor = build_backbone(m, input_dim, n_classes)
    # The target modules read the backbone's speaker and context states (state_dim wide) and, for lcm,
    # its emotion state (emotion_dim wide; the same width for the Emotion Predictor).
    emotion_dim = getattr(predictor, "emotion_dim", predictor.state_dim)
    target = build_target(config.target, n_classes, predictor.state_dim, m.label_dim,
                          emotion_dim=emotion_dim if emotion_dim != predictor.state_dim else None)
    return EmoLRModel(predictor, target)
