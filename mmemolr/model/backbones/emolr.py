"""``emolr``: EmoLR's Emotion Predictor (mmemolr.model.predictor), the default backbone.

Roles: ``speaker`` is s_{p,t}, the speaking party's state after its update at t (GRU_S: a state per party,
updated only when that party speaks, so it is speaker-sensitive by construction); ``context`` is c_t, the
state of the context GRU shared by all parties (context-sensitive); these are the two states the paper's
refinement module reads (eqs. 7-8). ``state_dim`` is ``model.hidden``.

Its hyper-parameters are the ``model.*`` keys (hidden, dropout, input_dropout, emotion_speaker); it has no
``model.backbone_options`` of its own. The class is the
Emotion Predictor itself (a subclass adding nothing to the weights), so state_dict keys are unchanged and
checkpoints written before backbones existed load as they are.
"""

from __future__ import annotations

from typing import Any

from mmemolr.model.backbones.base import NoOptions, register_backbone
from mmemolr.model.predictor import EmotionPredictor


@register_backbone
class EmoLRBackbone(EmotionPredictor):
    name = "emolr"
    description = "EmoLR Emotion Predictor: context, per-party speaker and emotion GRUs (the paper's eqs. 2-5)"
    Options = NoOptions

    @classmethod
    def from_config(cls, model: Any, options: Any, input_dim: int, n_classes: int) -> EmoLRBackbone:
        return cls(input_dim, n_classes, hidden=model.hidden, dropout=model.dropout,
                   input_dropout=model.input_dropout, emotion_speaker=model.emotion_speaker)
