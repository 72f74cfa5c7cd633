"""``librosa`` audio extractor: utterance functionals of classic acoustic descriptors (ISC licence).

Frame-level descriptors (25 ms windows every 10 ms at 16 kHz by default), in this order:

  mfcc0..mfcc{n-1}, mfcc_d0.., mfcc_dd0..  MFCCs from a mel spectrogram, then deltas (``delta_order``)
  rms_db                                   frame RMS energy in dBFS (floored at -100)
  zcr                                      zero-crossing rate
  spectral_centroid, spectral_bandwidth, spectral_rolloff (Hz), spectral_flatness
  f0_hz                                    pitch, over voiced frames only

Each is summarised over the utterance by the functionals ``mean, std, min, max, p{q} for q in
percentiles, slope`` (slope: least-squares change per second), named ``{descriptor}_{functional}``;
then two scalars follow: ``voiced_fraction`` and ``duration_s``. With the defaults (13 MFCCs, deltas
to order 2, percentiles 10/50/90) that is 46 descriptors x 8 functionals + 2 = 370 values. The exact
list is ``feature_names()``; the runner stores it in the feature file's attributes.

Pitch: ``yin`` (default) is about 25x faster than ``pyin`` (probabilistic YIN with HMM voicing: a 3 s
utterance takes ~15 ms against ~360 ms on one core). With ``yin`` a frame is voiced when its normalised
autocorrelation at the YIN period reaches ``voicing_threshold`` and its energy is within
``voicing_gate_db`` of the utterance's loudest frame (0.5 / -30 dB agree with pyin's voicing on 84%
of the frames of the test speech). An utterance with fewer than two voiced frames gets 0 for every
f0 functional; ``voiced_fraction`` then says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extractors.audio_io import AudioInputConfig, load_utterance_audio
from extractors.base import Extractor, ItemError, register_extractor
from mmemolr.corpus.model import Corpus, Utterance

SPECTRAL = ["spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "spectral_flatness"]
_EPS = 1e-10
# -100 dBFS, below 16-bit quantisation noise: digital-zero frames would otherwise pull rms_db to -200.
_RMS_FLOOR = 1e-5


@dataclass
class LibrosaConfig(AudioInputConfig):
    n_mfcc: int = 13
    n_mels: int = 40
    delta_order: int = 2  # 0: MFCCs only, 1: + deltas, 2: + delta-deltas
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    pitch: str = "yin"  # yin or pyin (see the module docstring)
    pitch_fmin: float = 60.0
    pitch_fmax: float = 500.0
    pitch_frame_length: int = 1024
    voicing_threshold: float = 0.5
    voicing_gate_db: float = -30.0
    percentiles: list[float] = field(default_factory=lambda: [10.0, 50.0, 90.0])


def descriptor_names(config: LibrosaConfig) -> list[str]:
    """Frame-level descriptors in output order (f0 last: it is summarised over voiced frames only)."""
    names = [f"mfcc{i}" for i in range(config.n_mfcc)]
    for order in range(1, config.delta_order + 1):
        names += [f"mfcc_{'d' * order}{i}" for i in range(config.n_mfcc)]
    return names + ["rms_db", "zcr", *SPECTRAL, "f0_hz"]


def functional_names(config: LibrosaConfig) -> list[str]:
    return ["mean", "std", "min", "max", *[f"p{q:g}" for q in config.percentiles], "slope"]


def feature_names(config: LibrosaConfig) -> list[str]:
    return [f"{d}_{f}" for d in descriptor_names(config) for f in functional_names(config)] + [
        "voiced_fraction", "duration_s",
    ]


def functionals(values: np.ndarray, times: np.ndarray, percentiles: list[float]) -> np.ndarray:
    """Functionals of each row of ``values`` (descriptors x frames) -> (descriptors, n_functionals)."""
    if values.shape[1] == 0:
        return np.zeros((values.shape[0], 5 + len(percentiles)), dtype=np.float64)
    stats = [values.mean(1), values.std(1), values.min(1), values.max(1)]
    if percentiles:
        stats += list(np.percentile(values, percentiles, axis=1))
    t = times - times.mean()
    denom = float(np.dot(t, t))
    slope = (values - values.mean(1, keepdims=True)) @ t / denom if denom > 0 else np.zeros(values.shape[0])
    return np.stack([*stats, slope], axis=1)


def _validate(config: LibrosaConfig) -> None:
    problems = []
    if config.pitch not in ("yin", "pyin"):
        problems.append(f"pitch must be yin or pyin, not {config.pitch!r}")
    if config.n_mfcc < 1 or config.n_mels < config.n_mfcc:
        problems.append(f"need 1 <= n_mfcc <= n_mels (got n_mfcc={config.n_mfcc}, n_mels={config.n_mels})")
    if not 0 <= config.delta_order <= 2:
        problems.append(f"delta_order must be 0, 1 or 2, not {config.delta_order}")
    if not 0 < config.win_length <= config.n_fft or config.hop_length < 1:
        problems.append("need 0 < win_length <= n_fft and hop_length >= 1")
    if not 0 < config.pitch_fmin < config.pitch_fmax < config.sample_rate / 2:
        problems.append("need 0 < pitch_fmin < pitch_fmax < sample_rate / 2")
    # YIN compares a window of frame_length/2 with lags up to sr/fmin.
    if config.sample_rate / config.pitch_fmin >= config.pitch_frame_length // 2:
        problems.append(
            f"pitch_frame_length {config.pitch_frame_length} is too short for pitch_fmin {config.pitch_fmin} Hz; "
            f"use at least {2 * math.ceil(config.sample_rate / config.pitch_fmin) + 2}"
        )
    if any(not 0 <= q <= 100 for q in config.percentiles):
        problems.append(f"percentiles must lie in [0, 100], got {config.percentiles}")
    if problems:
        raise ValueError("librosa extractor config: " + "; ".join(problems))


@register_extractor
class LibrosaExtractor(Extractor):
    """Hand-crafted acoustic functionals; CPU only, one utterance at a time (use --workers)."""

    name = "librosa"
    modality = "audio"
    config_class = LibrosaConfig
    cpu_parallel = True
    worker_preload = ("librosa.core.spectrum", "librosa.core.pitch", "librosa.feature", "scipy.signal",
                      "soundfile", "soxr")

    def __init__(self, config: LibrosaConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        _validate(self.config)

    def feature_dim(self) -> int:
        return len(feature_names(self.config))

    def feature_names(self) -> list[str]:
        return feature_names(self.config)

    def provenance(self) -> dict[str, Any]:
        from mmemolr.store import library_versions

        return {
            "feature_names": self.feature_names(),
            "sample_rate": self.config.sample_rate,
            "versions": library_versions("librosa", "soxr", "soundfile", "av", "scipy"),
        }

    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        from threadpoolctl import threadpool_limits

        out: list[np.ndarray | ItemError] = []
        # Small FFTs gain nothing from BLAS threads; one thread per worker lets --workers scale.
        with threadpool_limits(limits=1):
            for utt in items:
                try:
                    samples = load_utterance_audio(utt, self.config)
                except ItemError as err:
                    out.append(err)
                    continue
                out.append(self.features(samples))
        return out

    def features(self, y: np.ndarray) -> np.ndarray:
        """The feature vector of 16 kHz mono samples (``feature_names()`` order)."""
        import librosa

        c = self.config
        sr = c.sample_rate
        duration = y.size / sr
        if y.size < c.n_fft:
            # Zero-padding the tail keeps very short utterances analysable; duration_s keeps the truth.
            y = np.pad(y, (0, c.n_fft - y.size))
        S = np.abs(librosa.stft(y, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length))
        mel = librosa.feature.melspectrogram(S=S**2, sr=sr, n_fft=c.n_fft, n_mels=c.n_mels)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=c.n_mfcc)
        rows = [mfcc]
        if c.delta_order and mfcc.shape[1] >= 3:
            width = min(9, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # odd, at most the frame count
            rows += [librosa.feature.delta(mfcc, order=o, width=width) for o in range(1, c.delta_order + 1)]
        elif c.delta_order:
            rows += [np.zeros_like(mfcc)] * c.delta_order  # too few frames for a derivative
        rms = librosa.feature.rms(y=y, frame_length=c.win_length, hop_length=c.hop_length)[0]
        rows.append(20.0 * np.log10(np.maximum(rms, _RMS_FLOOR))[None])
        rows.append(librosa.feature.zero_crossing_rate(y, frame_length=c.win_length, hop_length=c.hop_length))
        rows.append(librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=c.n_fft))
        rows.append(librosa.feature.spectral_bandwidth(S=S, sr=sr, n_fft=c.n_fft))
        rows.append(librosa.feature.spectral_rolloff(S=S, sr=sr, n_fft=c.n_fft))
        rows.append(librosa.feature.spectral_flatness(S=S))
        n = min(r.shape[1] for r in rows)
        frames = np.concatenate([r[:, :n] for r in rows], axis=0).astype(np.float64)
        times = np.arange(n) * c.hop_length / sr

        f0, voiced = self._pitch(y)
        m = min(len(f0), n)
        f0, voiced = f0[:m], voiced[:m]
        pitch_times = np.arange(m) * c.hop_length / sr
        if voiced.sum() >= 2:
            pitch_stats = functionals(f0[voiced][None], pitch_times[voiced], c.percentiles)
        else:
            pitch_stats = np.zeros((1, 5 + len(c.percentiles)))
        stats = np.concatenate([functionals(frames, times, c.percentiles), pitch_stats], axis=0)
        extra = [float(voiced.mean()) if m else 0.0, duration]
        return np.concatenate([stats.ravel(), extra]).astype(np.float32)

    def _pitch(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f0 per frame in Hz, voiced flag per frame)."""
        import librosa

        c = self.config
        kwargs = dict(fmin=c.pitch_fmin, fmax=c.pitch_fmax, sr=c.sample_rate,
                      frame_length=c.pitch_frame_length, hop_length=c.hop_length)
        if c.pitch == "pyin":
            f0, voiced, _ = librosa.pyin(y, **kwargs)
            return np.nan_to_num(f0), voiced.astype(bool)
        f0 = librosa.yin(y, **kwargs)
        return f0, self._voicing(y, f0)

    def _voicing(self, y: np.ndarray, f0: np.ndarray) -> np.ndarray:
        """Voiced where the frame repeats itself at the YIN period and is not far below the peak energy."""
        import librosa

        c = self.config
        length = c.pitch_frame_length
        # The same centred, zero-padded frames librosa.yin analyses.
        frames = librosa.util.frame(np.pad(y, length // 2), frame_length=length, hop_length=c.hop_length)
        n = min(frames.shape[1], len(f0))
        frames, f0 = frames[:, :n].astype(np.float64), f0[:n]
        window = length // 2
        period = np.clip(np.rint(c.sample_rate / f0).astype(np.int64), 1, length - window)
        head = frames[:window]
        lagged = np.take_along_axis(frames, np.arange(window)[:, None] + period[None, :], axis=0)
        energy = np.sqrt(np.sum(head * head, 0) * np.sum(lagged * lagged, 0))
        correlation = np.sum(head * lagged, 0) / np.maximum(energy, _EPS)
        level = 10.0 * np.log10(np.maximum(np.mean(frames * frames, 0), _EPS))
        return (correlation >= c.voicing_threshold) & (level >= level.max() + c.voicing_gate_db)
