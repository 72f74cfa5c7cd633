"""The ``opensmile`` audio extractor (optional extra) on real speech."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from audio_helpers import (
    corpus_of,
    file_utterance,
    need_opensmile,
    stm_utterances,
    write_silent_wav,
    write_truncated_wav,
)

from extractors import ItemError, get_extractor
from extractors.audio_opensmile import INSTALL_HINT, OpenSmileConfig, OpenSmileExtractor
from mmemolr.paths import REPO_ROOT


@pytest.fixture(scope="module", name="need_opensmile")
def need_opensmile_fixture() -> None:
    need_opensmile()


@pytest.fixture(scope="module")
def egemaps(need_opensmile) -> OpenSmileExtractor:
    return OpenSmileExtractor()


def test_egemaps_on_real_clips(egemaps, media_dir):
    items = stm_utterances(media_dir)
    items += [file_utterance(f"clip{i}", p, i) for i, p in enumerate(sorted((media_dir / "emotional-speech").glob("*.wav")))]
    out = egemaps.extract_batch(items, corpus_of(items))
    vectors = np.stack(out)
    assert egemaps.feature_dim() == 88 and vectors.shape == (19, 88)
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    assert (distances + np.eye(len(items)) > 1e-3).all()
    names = egemaps.provenance()["feature_names"]
    assert len(names) == 88 and names[0] == "F0semitoneFrom27.5Hz_sma3nz_amean"
    assert egemaps.provenance()["feature_set"] == "eGeMAPSv02"


@pytest.mark.parametrize("feature_set,dim,output", [
    ("IS09_emotion", 384, "audio-opensmile-IS09_emotion"),
    ("is10_paraling", 1582, "audio-opensmile-IS10_paraling"),
    ("IS13", 6373, "audio-opensmile-IS13_ComParE"),
    ("ComParE_2016", 6373, "audio-opensmile-ComParE_2016"),
])
def test_challenge_feature_sets(feature_set, dim, output, media_dir, need_opensmile):
    extractor = OpenSmileExtractor(OpenSmileConfig(feature_set=feature_set))
    [u] = stm_utterances(media_dir)[3:4]
    [vector] = extractor.extract_batch([u], corpus_of([u]))
    assert extractor.feature_dim() == dim == vector.shape[0] == len(extractor.feature_names())
    assert np.isfinite(vector).all()
    assert extractor.default_output_name() == output


def test_unknown_feature_set_lists_the_known_ones():
    with pytest.raises(ValueError, match="not one of: eGeMAPSv02"):
        OpenSmileExtractor(OpenSmileConfig(feature_set="IS99"))


def test_failures_are_item_errors(egemaps, media_dir, tmp_path):
    items = [
        file_utterance("silent", write_silent_wav(tmp_path / "s.wav"), 0),
        file_utterance("cut", write_truncated_wav(tmp_path / "c.wav", media_dir / "dialogue-sample.wav"), 1),
        file_utterance("noaudio", media_dir / "carphone_pristine.mp4", 2),
    ]
    out = egemaps.extract_batch(items, corpus_of(items))
    assert [o.kind for o in out] == ["silent", "corrupt", "no_audio_track"]


def test_too_short_for_the_analysis_windows(egemaps):
    with pytest.raises(ItemError, match="too short") as info:
        egemaps.features(np.random.default_rng(0).normal(0, 0.1, 400).astype(np.float32), "u1")
    assert info.value.kind == "empty" and "u1" in info.value.message


def test_survives_pickling_for_worker_processes(egemaps, media_dir):
    [u] = stm_utterances(media_dir)[:1]
    clone = pickle.loads(pickle.dumps(egemaps))
    np.testing.assert_array_equal(clone.extract_batch([u], corpus_of([u]))[0], egemaps.extract_batch([u], corpus_of([u]))[0])


def test_clear_error_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)  # import opensmile -> ImportError
    with pytest.raises(RuntimeError, match=r"pip install mmemolr\[opensmile\]"):
        get_extractor("opensmile")()


def test_extractors_import_without_opensmile():
    code = (
        "import sys; sys.modules['opensmile'] = None\n"
        "import extractors.audio_opensmile as m\n"
        "from extractors.base import EXTRACTORS\n"
        "assert 'opensmile' in EXTRACTORS\n"
        "try:\n    m.OpenSmileExtractor()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == INSTALL_HINT
