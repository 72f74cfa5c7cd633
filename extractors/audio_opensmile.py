"""``opensmile`` audio extractor: openSMILE functionals (eGeMAPS, ComParE, INTERSPEECH challenge sets).

Optional: ``pip install mmemolr[opensmile]``. openSMILE is free for research and education only
(audEERING's licence); commercial use needs a licence from audEERING.

``feature_set`` names one of the configurations shipped inside the opensmile package:

  eGeMAPSv02     88   extended Geneva minimalistic set (Eyben et al., 2016); the default
  ComParE_2016   6373 ComParE 2016 functionals
  IS09_emotion   384  INTERSPEECH 2009 Emotion Challenge (alias IS09)
  IS10_paraling  1582 INTERSPEECH 2010 Paralinguistic Challenge (alias IS10)
  IS13_ComParE   6373 INTERSPEECH 2013 ComParE, the set of the paper-era ERC features (alias IS13)

and also GeMAPSv01b, eGeMAPSv01b, emobase, IS11_speaker_state (IS11), IS12_speaker_trait (IS12).
The dimension and the feature names come from openSMILE itself and go into the feature file's
attributes. Audio is decoded by ``extractors.audio_io`` (16 kHz mono by default) before openSMILE sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from extractors.audio_io import AudioInputConfig, load_utterance_audio
from extractors.base import Extractor, ItemError, register_extractor
from mmemolr.corpus.model import Corpus, Utterance

INSTALL_HINT = "the opensmile extractor needs the opensmile package: pip install mmemolr[opensmile]"
# Names accepted for ``feature_set`` -> opensmile.FeatureSet member.
FEATURE_SETS = {
    "eGeMAPSv02": "eGeMAPSv02",
    "eGeMAPSv01b": "eGeMAPSv01b",
    "GeMAPSv01b": "GeMAPSv01b",
    "ComParE_2016": "ComParE_2016",
    "emobase": "emobase",
    "IS09_emotion": "IS09",
    "IS10_paraling": "IS10",
    "IS11_speaker_state": "IS11",
    "IS12_speaker_trait": "IS12",
    "IS13_ComParE": "IS13",
    "IS09": "IS09",
    "IS10": "IS10",
    "IS11": "IS11",
    "IS12": "IS12",
    "IS13": "IS13",
}
CANONICAL = {"IS09": "IS09_emotion", "IS10": "IS10_paraling", "IS11": "IS11_speaker_state",
             "IS12": "IS12_speaker_trait", "IS13": "IS13_ComParE"}
_BY_LOWER = {name.lower(): member for name, member in FEATURE_SETS.items()}


@dataclass
class OpenSmileConfig(AudioInputConfig):
    feature_set: str = "eGeMAPSv02"


def import_opensmile() -> Any:
    try:
        import opensmile
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return opensmile


def feature_set_member(name: str) -> str:
    """The opensmile.FeatureSet member name for a configured ``feature_set``."""
    member = _BY_LOWER.get(name.lower())
    if member is None:
        raise ValueError(f"opensmile feature_set {name!r} is not one of: {', '.join(FEATURE_SETS)}")
    return member


@register_extractor
class OpenSmileExtractor(Extractor):
    """openSMILE utterance-level functionals; CPU only, single-threaded per process (use --workers)."""

    name = "opensmile"
    modality = "audio"
    config_class = OpenSmileConfig
    cpu_parallel = True
    worker_preload = ("opensmile", "soundfile", "soxr")

    def __init__(self, config: OpenSmileConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        self._member = feature_set_member(self.config.feature_set)
        self._opensmile = import_opensmile()
        self._smile: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # The native openSMILE handle and the module do not pickle; workers rebuild them.
        state = self.__dict__.copy()
        state["_smile"] = None
        state["_opensmile"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._opensmile = import_opensmile()

    @property
    def smile(self) -> Any:
        if self._smile is None:
            opensmile = self._opensmile
            self._smile = opensmile.Smile(
                feature_set=opensmile.FeatureSet[self._member],
                feature_level=opensmile.FeatureLevel.Functionals,
                num_workers=1,
            )
        return self._smile

    def feature_names(self) -> list[str]:
        return list(self.smile.feature_names)

    def feature_dim(self) -> int:
        return len(self.smile.feature_names)

    def default_output_name(self) -> str:
        return f"audio-opensmile-{CANONICAL.get(self._member, self._member)}"

    def provenance(self) -> dict[str, Any]:
        from mmemolr.store import library_versions

        return {
            "feature_names": self.feature_names(),
            "feature_set": self._member,
            "opensmile_config": self.smile.config_name,
            "sample_rate": self.config.sample_rate,
            "licence": "openSMILE: research and education use only (audEERING)",
            "versions": library_versions("opensmile", "soxr", "soundfile", "av"),
        }

    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        out: list[np.ndarray | ItemError] = []
        for utt in items:
            try:
                samples = load_utterance_audio(utt, self.config)
                out.append(self.features(samples, utt.id))
            except ItemError as err:
                out.append(err)
        return out

    def features(self, samples: np.ndarray, uid: str = "signal") -> np.ndarray:
        """Functionals of 16 kHz mono samples; ItemError when openSMILE cannot summarise them."""
        import warnings

        # openSMILE converts to 16-bit by scaling with 32768; resampling can overshoot full scale.
        samples = np.clip(samples, -1.0, 32767.0 / 32768.0)
        with warnings.catch_warnings():
            # "Segment too short, filling with NaN": turned into an ItemError below.
            warnings.simplefilter("ignore", UserWarning)
            frame = self.smile.process_signal(samples, self.config.sample_rate)
        vector = frame.to_numpy(dtype=np.float32).reshape(-1)
        if vector.size != self.feature_dim() or not np.isfinite(vector).all():
            raise ItemError(
                "empty",
                f"utterance {uid}: openSMILE {self._member} produced no functionals for {samples.size / self.config.sample_rate:.3f} s "
                "of audio (too short for its analysis windows)",
            )
        return vector
