"""EmoLR model parts: the Emotion Predictor and the Label Refinement module."""

from mmemolr.model.predictor import EmotionPredictor, PredictorOutput
from mmemolr.model.refinement import LabelRefinement

__all__ = ["EmotionPredictor", "LabelRefinement", "PredictorOutput"]
