"""The ``ssl`` audio extractor with tiny randomly initialised encoders (no real SSL weights here).

Correctness is what these check: padding and masking (batched == one by one), chunking of long
utterances (== length-weighted average of the chunks), length planning, and clear errors.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from audio_helpers import corpus_of, file_utterance, stm_utterances, write_silent_wav
from transformers import (
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

from extractors import get_extractor
from extractors.audio_ssl import SslConfig, SslExtractor, split_chunks

# Narrow on purpose: the convolutional front end dominates CPU time.
TINY = dict(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
KINDS = {
    # feat_extract_norm "layer": padding is masked, so mixed lengths share a batch
    "wav2vec2-layer": (Wav2Vec2Config, Wav2Vec2Model, "layer"),
    "wavlm-layer": (WavLMConfig, WavLMModel, "layer"),
    # "group": group norm sees the padding, so only equal lengths share a batch
    "hubert-group": (HubertConfig, HubertModel, "group"),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    torch.manual_seed(0)
    folders = {}
    for name, (config_cls, model_cls, norm) in KINDS.items():
        folder = tmp_path_factory.mktemp(name)
        config = config_cls(**TINY, feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
        model_cls(config).save_pretrained(folder)
        Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=norm == "layer").save_pretrained(folder)
        folders[name] = str(folder)
    return folders


@pytest.fixture(scope="module")
def items(media_dir):
    return stm_utterances(media_dir)


@pytest.fixture(scope="module")
def short_items(items):
    """The six utterances under 1.5 s: mixed lengths, cheap to encode twice."""
    return [u for u in items if u.end - u.start < 1.5]


def _extractor(path: str, **options) -> SslExtractor:
    return SslExtractor(SslConfig(model=path, **options))


def _one_by_one(extractor: SslExtractor, items) -> np.ndarray:
    return np.stack([extractor.extract_batch([u], corpus_of([u]))[0] for u in items])


def test_registered_as_a_batched_audio_extractor():
    cls = get_extractor("ssl")
    assert cls is SslExtractor and cls.modality == "audio" and not cls.cpu_parallel


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_padded_batches_equal_one_by_one(tiny_models, short_items, kind):
    items = short_items
    extractor = _extractor(tiny_models[kind], max_seconds=1.0, batch_seconds=3.0)  # mixed-length batches
    lengths = [round((u.end - u.start) * 16000) for u in items]
    batches = extractor._batches(lengths)
    if KINDS[kind][2] == "group":
        assert all(len({lengths[i] for i in b}) == 1 for b in batches)
    else:
        assert len(batches) < len(items) and any(len({lengths[i] for i in b}) > 1 for b in batches)
    together = np.stack(extractor.extract_batch(items, corpus_of(items)))
    assert together.shape == (len(items), 16) and np.isfinite(together).all()
    np.testing.assert_allclose(together, _one_by_one(extractor, items), atol=2e-5)


def test_pooling_is_the_mean_of_the_last_layers(tiny_models, items):
    extractor = _extractor(tiny_models["wav2vec2-layer"], layers=2)
    u = items[2]
    [vector] = extractor.extract_batch([u], corpus_of([u]))
    model = extractor.model
    samples = extractor._normalise(np.asarray(extractor_audio(u), dtype=np.float32))
    with torch.inference_mode():
        hidden = model(torch.from_numpy(samples)[None], output_hidden_states=True).hidden_states
    expected = torch.stack(hidden[-2:]).mean(0)[0].mean(0).numpy()
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def extractor_audio(u):
    from extractors.audio_io import AudioInputConfig, load_utterance_audio

    return load_utterance_audio(u, AudioInputConfig())


def test_long_utterances_are_chunked_and_weighted_by_length(tiny_models, items):
    extractor = _extractor(tiny_models["hubert-group"], max_seconds=1.0)
    u = items[11]  # 4.37 s -> 5 chunks of ~0.87 s
    samples = extractor_audio(u)
    chunks = split_chunks(samples, 16000)
    assert len(chunks) == 5 and sum(c.size for c in chunks) == samples.size
    assert max(c.size for c in chunks) - min(c.size for c in chunks) <= 1
    vectors = np.stack(extractor.encode(chunks))
    weights = np.array([c.size for c in chunks], dtype=np.float64)
    expected = (vectors * weights[:, None]).sum(0) / weights.sum()
    [vector] = extractor.extract_batch([u], corpus_of([u]))
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    [whole] = _extractor(tiny_models["hubert-group"], max_seconds=10.0).extract_batch([u], corpus_of([u]))
    assert np.abs(whole - vector).max() > 1e-3  # chunking really changed the input


def test_failures_stay_in_place(tiny_models, items, media_dir, tmp_path):
    extractor = _extractor(tiny_models["wav2vec2-layer"])
    batch = [items[0], file_utterance("silent", write_silent_wav(tmp_path / "s.wav"), 1),
             file_utterance("video", media_dir / "carphone_pristine.mp4", 2), items[1]]
    out = extractor.extract_batch(batch, corpus_of(batch))
    assert isinstance(out[0], np.ndarray) and isinstance(out[3], np.ndarray)
    assert [out[1].kind, out[2].kind] == ["silent", "no_audio_track"]
    np.testing.assert_allclose(out[3], extractor.extract_batch([items[1]], corpus_of([items[1]]))[0], atol=2e-5)


def test_plan_batches_orders_by_length(tiny_models, items):
    extractor = _extractor(tiny_models["wav2vec2-layer"])
    plan = extractor.plan_batches(items, corpus_of(items), 4)
    assert sorted(u.id for b in plan for u in b) == sorted(u.id for u in items)
    durations = [u.end - u.start for b in plan for u in b]
    assert durations == sorted(durations, reverse=True) and [len(b) for b in plan] == [4, 4, 4, 1]


def test_provenance_names_the_weights(tiny_models):
    extractor = _extractor(tiny_models["wavlm-layer"])
    weights = sorted(p for p in __import__("pathlib").Path(tiny_models["wavlm-layer"]).iterdir()
                     if p.suffix == ".safetensors")
    assert len(weights) == 1
    provenance = extractor.provenance()
    assert provenance["weights_sha256"] == hashlib.sha256(weights[0].read_bytes()).hexdigest()
    assert provenance["model_id"] == tiny_models["wavlm-layer"]
    assert extractor.feature_dim() == 16


def test_absent_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="huggingface-cli download nobody/no-such-model"):
        _extractor("nobody/no-such-model").feature_dim()
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        _extractor(str(tmp_path / "weights.pt")).feature_dim()


def test_config_checks(tiny_models):
    with pytest.raises(ValueError, match="4 hidden layers"):
        _extractor(tiny_models["wav2vec2-layer"], layers=5).feature_dim()
    with pytest.raises(ValueError, match="dtype"):
        _extractor(tiny_models["wav2vec2-layer"], dtype="int8")


def test_bfloat16_stays_close_to_float32(tiny_models, short_items):
    items = short_items[:3]
    full = np.stack(_extractor(tiny_models["wavlm-layer"]).extract_batch(items, corpus_of(items)))
    half = np.stack(_extractor(tiny_models["wavlm-layer"], dtype="bfloat16").extract_batch(items, corpus_of(items)))
    assert half.dtype == np.float32
    cosine = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert (cosine > 0.95).all() and (cosine < 1 - 1e-6).all()  # random tiny weights amplify rounding


def test_folder_without_feature_extractor_settings(tmp_path):
    config = Wav2Vec2Config(**TINY, feat_extract_norm="layer", do_stable_layer_norm=True)
    Wav2Vec2Model(config).save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        _extractor(str(tmp_path)).feature_dim()
