"""The trainable pair: Emotion Predictor + training target (which may own a refinement module)."""

from __future__ import annotations

from torch import nn

from mmemolr.model.predictor import EmotionPredictor
from mmemolr.targets import Target, build_target
from mmemolr.train.config import TrainConfig


class EmoLRModel(nn.Module):
    """state_dict keys: ``predictor.*`` (all that prediction needs) and ``target.*`` (training only)."""

    def __init__(self, predictor: EmotionPredictor, target: Target) -> None:
        super().__init__()
        self.predictor = predictor
        self.target = target


def build_model(config: TrainConfig, input_dim: int, n_classes: int) -> EmoLRModel:
    m = config.model
    predictor = EmotionPredictor(input_dim, n_classes, hidden=m.hidden, input_proj=m.input_proj,
                                 dropout=m.dropout, attention=m.attention,
                                 input_dropout=m.input_dropout, skip=m.skip, bidirectional=m.bidirectional,
                                 emotion_speaker=m.emotion_speaker)
    # The target modules read the predictor's states, 2D wide when it is bidirectional.
    target = build_target(config.target, n_classes, predictor.state_dim, m.label_dim)
    return EmoLRModel(predictor, target)
