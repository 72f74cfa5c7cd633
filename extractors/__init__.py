"""Modality feature extractors. Importing this package registers the built-in extractors."""

import extractors.audio_librosa  # noqa: F401  (registers "librosa")
import extractors.audio_opensmile  # noqa: F401  (registers "opensmile"; opensmile itself is optional)
import extractors.audio_ssl  # noqa: F401  (registers "ssl")
import extractors.visual_hoglbp  # noqa: F401  (registers "hoglbp")
import extractors.visual_timm  # noqa: F401  (registers "timm")
from extractors import text_transformers  # noqa: F401  (registers "transformers")
from extractors.base import (
    EXTRACTORS,
    Extractor,
    ExtractorConfig,
    ItemError,
    get_extractor,
    register_extractor,
)

__all__ = ["EXTRACTORS", "Extractor", "ExtractorConfig", "ItemError", "get_extractor", "register_extractor"]
