"""``mmemolr predict``: apply a trained run to a prepared corpus or to recordings with transcripts."""

from mmemolr.predict.run import Prediction, predict_corpus, predict_transcript, prepare_transcript

__all__ = ["Prediction", "predict_corpus", "predict_transcript", "prepare_transcript"]
