"""mmemolr: multimodal emotion recognition in conversations with EmoLR label refinement."""

__version__ = "0.1.0"
