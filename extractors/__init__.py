"""Modality feature extractors. Importing this package registers the built-in extractors."""

from extractors.base import EXTRACTORS, Extractor, ExtractorConfig, ItemError, get_extractor, register_extractor

__all__ = ["EXTRACTORS", "Extractor", "ExtractorConfig", "ItemError", "get_extractor", "register_extractor"]
