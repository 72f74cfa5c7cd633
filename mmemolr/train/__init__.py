"""Training: fused features -> Emotion Predictor (+ Label Refinement) -> run folder."""
