"""The ``librosa`` audio extractor on real speech and on broken media."""

from __future__ import annotations

import numpy as np
import pytest
from audio_helpers import SR, corpus_of, file_utterance, stm_utterances, write_garbage, write_silent_wav

from extractors import ItemError, get_extractor
from extractors.audio_librosa import LibrosaConfig, LibrosaExtractor, feature_names, functionals


@pytest.fixture(scope="module")
def extractor() -> LibrosaExtractor:
    return LibrosaExtractor()


@pytest.fixture(scope="module")
def stm_vectors(extractor, media_dir) -> np.ndarray:
    items = stm_utterances(media_dir)
    out = extractor.extract_batch(items, corpus_of(items))
    assert not [o for o in out if isinstance(o, ItemError)]
    return np.stack(out)


def _column(extractor: LibrosaExtractor, name: str) -> int:
    return extractor.feature_names().index(name)


def test_registered_as_a_parallel_audio_extractor():
    cls = get_extractor("librosa")
    assert cls is LibrosaExtractor and cls.modality == "audio" and cls.cpu_parallel


def test_dimension_follows_the_config(extractor):
    names = extractor.feature_names()
    assert extractor.feature_dim() == len(names) == len(set(names)) == 46 * 8 + 2
    assert names[:3] == ["mfcc0_mean", "mfcc0_std", "mfcc0_min"]
    assert names[-2:] == ["voiced_fraction", "duration_s"]
    small = LibrosaConfig(n_mfcc=20, delta_order=0, percentiles=[25.0, 75.0])
    assert LibrosaExtractor(small).feature_dim() == (20 + 6 + 1) * (4 + 2 + 1) + 2
    assert extractor.provenance()["feature_names"] == names


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="pitch must be yin or pyin"):
        LibrosaExtractor(LibrosaConfig(pitch="crepe"))
    with pytest.raises(ValueError, match="pitch_frame_length"):
        LibrosaExtractor(LibrosaConfig(pitch_fmin=20.0))


def test_stm_utterances_give_distinct_finite_vectors(extractor, stm_vectors, media_dir):
    assert stm_vectors.shape == (13, extractor.feature_dim())
    assert stm_vectors.dtype == np.float32 and np.isfinite(stm_vectors).all()
    distances = np.linalg.norm(stm_vectors[:, None] - stm_vectors[None], axis=-1)
    assert (distances + np.eye(13) > 1e-3).all()  # no two utterances alike
    durations = [u.end - u.start for u in stm_utterances(media_dir)]
    np.testing.assert_allclose(stm_vectors[:, _column(extractor, "duration_s")], durations, atol=1e-3)
    voiced = stm_vectors[:, _column(extractor, "voiced_fraction")]
    assert ((voiced > 0.3) & (voiced < 1.0)).all()
    f0 = stm_vectors[:, _column(extractor, "f0_hz_p50")]
    assert ((f0 > 120) & (f0 < 320)).all()  # two adult women on the phone


def test_speaker_pitch_ranks_like_pyin(extractor, media_dir):
    """yin+voicing and pyin agree on which utterances are higher pitched."""
    items = stm_utterances(media_dir)[:6]
    pyin = LibrosaExtractor(LibrosaConfig(pitch="pyin"))
    column = _column(extractor, "f0_hz_p50")
    fast = np.stack(extractor.extract_batch(items, corpus_of(items)))[:, column]
    slow = np.stack(pyin.extract_batch(items, corpus_of(items)))[:, column]
    assert np.abs(fast - slow).max() < 0.1 * slow.max()
    assert np.corrcoef(fast, slow)[0, 1] > 0.9


def test_pitch_and_voicing_of_known_signals(extractor):
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    vector = extractor.features(tone)
    assert abs(vector[_column(extractor, "f0_hz_mean")] - 220) < 2
    assert vector[_column(extractor, "voiced_fraction")] > 0.95
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    vector = extractor.features(noise)
    assert vector[_column(extractor, "voiced_fraction")] < 0.1


def test_functionals_of_a_ramp():
    times = np.arange(101) * 0.01
    values = np.stack([3.0 + 2.0 * times, np.full(101, 5.0)])
    stats = functionals(values, times, [50.0])  # mean, std, min, max, p50, slope
    np.testing.assert_allclose(stats[0], [4.0, np.std(2.0 * times), 3.0, 5.0, 4.0, 2.0], atol=1e-9)
    np.testing.assert_allclose(stats[1], [5.0, 0.0, 5.0, 5.0, 5.0, 0.0], atol=1e-9)
    assert functionals(values[:, :1], times[:1], [50.0])[0, -1] == 0.0  # one frame: no slope


def test_real_clips_and_the_audio_of_a_video(extractor, media_dir):
    paths = sorted((media_dir / "emotional-speech").glob("*.wav")) + [media_dir / "single_face.mp4"]
    items = [file_utterance(f"clip{i}", p, i) for i, p in enumerate(paths)]
    vectors = extractor.extract_batch(items, corpus_of(items))
    assert all(isinstance(v, np.ndarray) and v.shape == (370,) and np.isfinite(v).all() for v in vectors)


def test_failures_are_errors_in_place_never_vectors(extractor, media_dir, tmp_path):
    good = stm_utterances(media_dir)[:2]
    items = [
        good[0],
        file_utterance("silent", write_silent_wav(tmp_path / "silent.wav"), 1),
        file_utterance("corrupt", write_garbage(tmp_path / "corrupt.wav"), 2),
        file_utterance("noaudio", media_dir / "carphone_pristine.mp4", 3),
        file_utterance("missing", tmp_path / "absent.wav", 4),
        file_utterance("nopath", None, 5),
        good[1],
    ]
    out = extractor.extract_batch(items, corpus_of(items))
    assert len(out) == len(items)
    assert isinstance(out[0], np.ndarray) and isinstance(out[-1], np.ndarray)
    kinds = [o.kind for o in out[1:-1]]
    assert kinds == ["silent", "corrupt", "no_audio_track", "missing", "missing"]
    assert all(item.id in err.message for item, err in zip(items[1:-1], out[1:-1]))


def test_shortest_accepted_utterance(extractor):
    vector = extractor.features(np.random.default_rng(1).normal(0, 0.1, 400).astype(np.float32))
    assert vector.shape == (370,) and np.isfinite(vector).all()
    assert abs(vector[_column(extractor, "duration_s")] - 0.025) < 1e-6


def test_names_match_a_changed_percentile_list():
    config = LibrosaConfig(percentiles=[5.0, 95.0])
    assert "rms_db_p5" in feature_names(config) and "f0_hz_p95" in feature_names(config)
