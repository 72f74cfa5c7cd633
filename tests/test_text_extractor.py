"""The ``transformers`` text extractor on the real MiniLM encoder and real MELD utterances."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from extractors import ItemError
from extractors.text_transformers import TransformersTextConfig, TransformersTextExtractor
from mmemolr.config import ConfigError
from mmemolr.corpus.model import Corpus, Utterance
from mmemolr.extract import make_config


@pytest.fixture(scope="module")
def corpus(meld_corpus) -> Corpus:
    return Corpus(meld_corpus.name, meld_corpus.labels, meld_corpus.dialogues[:4])


@pytest.fixture(scope="module")
def mean_extractor(minilm_dir) -> TransformersTextExtractor:
    return TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir)))


def _hidden(extractor: TransformersTextExtractor, *texts: str) -> tuple[torch.Tensor, list]:
    """Hand computation: average of the last four layers for one input, no padding."""
    extractor._load()
    enc = extractor._tokenizer(*texts, return_tensors="pt")
    with torch.inference_mode():
        hidden = extractor._model(**enc, output_hidden_states=True).hidden_states
    return torch.stack(hidden[-4:]).mean(0)[0], enc.sequence_ids(0)


def _utterance(corpus: Corpus, min_index: int = 0) -> Utterance:
    return next(u for u in corpus.utterances() if u.index >= min_index and len(u.text.split()) > 3)


def test_feature_dim_comes_from_the_model_config(mean_extractor, minilm_dir):
    expected = json.loads((minilm_dir / "config.json").read_text())["hidden_size"]
    assert mean_extractor.feature_dim() == expected


def test_mean_pooling_matches_hand_computation(mean_extractor, corpus):
    u = _utterance(corpus)
    [vector] = mean_extractor.extract_batch([u], corpus)
    hidden, seq = _hidden(mean_extractor, u.text)
    own = [i for i, s in enumerate(seq) if s == 0]  # the utterance's tokens, no [CLS]/[SEP]
    expected = hidden[own].mean(0).numpy()
    assert vector.shape == (mean_extractor.feature_dim(),)
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_padding_in_a_batch_does_not_change_vectors(mean_extractor, corpus):
    items = list(corpus.utterances())[:12]
    together = np.stack(mean_extractor.extract_batch(items, corpus))
    alone = np.stack([mean_extractor.extract_batch([u], corpus)[0] for u in items])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_cls_pooling_takes_the_first_token_and_differs_from_mean(mean_extractor, minilm_dir, corpus):
    u = _utterance(corpus)
    cls = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), pooling="cls"))
    [vector] = cls.extract_batch([u], corpus)
    hidden, _ = _hidden(mean_extractor, u.text)
    np.testing.assert_allclose(vector, hidden[0].numpy(), atol=1e-5)
    [mean] = mean_extractor.extract_batch([u], corpus)
    assert not np.allclose(vector, mean, atol=1e-3)


def test_context_pools_only_the_current_utterance(mean_extractor, minilm_dir, corpus):
    u = _utterance(corpus, min_index=2)
    ctx = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), context=2))
    [encoded] = ctx.encode([u], corpus)
    tok = mean_extractor._tokenizer
    own_ids = tok(u.text, add_special_tokens=False)["input_ids"]
    assert encoded.ids[encoded.pool].tolist() == own_ids
    dialogue = next(d for d in corpus.dialogues if d.id == u.dialogue_id)
    context = " ".join(f"{p.speaker}: {p.text}" for p in dialogue.utterances[u.index - 2 : u.index])
    assert tok.decode(encoded.ids[: encoded.pool[0]], skip_special_tokens=True) == tok.decode(
        tok(context, add_special_tokens=False)["input_ids"])
    [vector] = ctx.extract_batch([u], corpus)
    hidden, seq = _hidden(mean_extractor, context, u.text)
    expected = hidden[[i for i, s in enumerate(seq) if s == 1]].mean(0).numpy()
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    [plain] = mean_extractor.extract_batch([u], corpus)
    assert not np.allclose(vector, plain, atol=1e-3)  # the context changes the vector


def test_context_first_utterance_has_none_and_long_context_is_cut_from_the_left(mean_extractor, minilm_dir, corpus):
    first = corpus.dialogues[0].utterances[0]
    ctx = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), context=3))
    np.testing.assert_allclose(ctx.extract_batch([first], corpus)[0],
                               mean_extractor.extract_batch([first], corpus)[0], atol=1e-5)
    u = _utterance(corpus, min_index=3)
    tok = mean_extractor._tokenizer
    own_ids = tok(u.text, add_special_tokens=False)["input_ids"]
    limit = len(own_ids) + 3 + 4  # specials ([CLS] ctx [SEP] cur [SEP]) + 4 context tokens
    short = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), context=3, max_length=limit))
    [encoded] = short.encode([u], corpus)
    assert len(encoded.ids) == limit
    assert encoded.ids[encoded.pool].tolist() == own_ids
    full = ctx.encode([u], corpus)[0]
    full_context = full.ids[1 : full.pool[0] - 1].tolist()
    assert encoded.ids[1:5].tolist() == full_context[-4:]  # the most recent context tokens are kept


def test_speaker_prefix_is_pooled_with_the_utterance(mean_extractor, minilm_dir, corpus):
    u = _utterance(corpus)
    spk = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), speaker_prefix=True))
    [encoded] = spk.encode([u], corpus)
    tok = mean_extractor._tokenizer
    assert encoded.ids[encoded.pool].tolist() == tok(f"{u.speaker}: {u.text}", add_special_tokens=False)["input_ids"]
    assert not np.allclose(spk.extract_batch([u], corpus)[0], mean_extractor.extract_batch([u], corpus)[0], atol=1e-3)


def test_autocast_dtype_gives_close_vectors(mean_extractor, minilm_dir, corpus):
    """The bf16 autocast path (dtype=bfloat16), run on CPU: close to float32, pooled in float32."""
    items = list(corpus.utterances())[:6]
    bf16 = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), dtype="bfloat16"))
    assert bf16.provenance()["compute_dtype"] == "bfloat16"
    low = np.stack(bf16.extract_batch(items, corpus))
    full = np.stack(mean_extractor.extract_batch(items, corpus))
    assert low.dtype == np.float32
    cos = (low * full).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(full, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(low, full)


def test_empty_text_is_an_item_error_not_a_vector(mean_extractor, corpus):
    u = next(corpus.utterances())
    empty = Utterance(**{**u.to_dict(), "id": "empty", "text": "  "})
    results = mean_extractor.extract_batch([empty, u], corpus)
    assert isinstance(results[0], ItemError) and results[0].kind == "empty-text"
    assert isinstance(results[1], np.ndarray)


def test_plan_batches_sorts_by_length_under_the_token_budget(minilm_dir, corpus):
    ex = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), batch_size=8, max_tokens=120))
    items = list(corpus.utterances())
    batches = ex.plan_batches(items, corpus, batch_size=64)
    assert sorted(u.id for b in batches for u in b) == sorted(u.id for u in items)
    lengths = [[len(ex._encoded[u.id].ids) for u in b] for b in batches]
    for batch in lengths:
        assert len(batch) <= 8 and (len(batch) == 1 or len(batch) * max(batch) <= 120)
    flat = [n for b in lengths for n in b]
    assert flat == sorted(flat, reverse=True)
    # planned encodings are used (and consumed) by extract_batch
    vectors = ex.extract_batch(batches[0], corpus)
    assert len(vectors) == len(batches[0]) and not any(u.id in ex._encoded for u in batches[0])


def test_provenance_hashes_the_weights_and_records_versions(mean_extractor, minilm_dir):
    prov = mean_extractor.provenance()
    assert prov["weights_sha256"] == hashlib.sha256((minilm_dir / "model.safetensors").read_bytes()).hexdigest()
    assert prov["model_id"] == str(minilm_dir)
    assert prov["weights_files"] == ["model.safetensors"]
    assert {"torch", "transformers", "tokenizers"} <= set(prov["versions"])
    assert prov["compute_dtype"] == "float32"
    # auto is float32 on CUDA too (bf16 autocast measured slower there); bf16 is an explicit choice.
    on_gpu = TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir)), device="cuda")
    assert on_gpu.compute_dtype() == "float32"
    assert TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), dtype="bfloat16"),
                                     device="cuda").compute_dtype() == "bfloat16"


def test_default_output_names(minilm_dir):
    def name(**kw):
        return TransformersTextExtractor(TransformersTextConfig(**kw)).default_output_name()

    assert name(model=str(minilm_dir)) == "text-all-MiniLM-L6-v2"
    assert name(model=str(minilm_dir) + "/") == "text-all-MiniLM-L6-v2"
    assert name(model="sentence-transformers/all-MiniLM-L6-v2") == "text-sentence-transformers_all-MiniLM-L6-v2"
    assert name(model="roberta-large", pooling="cls", context=2, speaker_prefix=True, layers=1) == \
        "text-roberta-large-cls-last1-ctx2-spk"


@pytest.mark.parametrize("model", ["no-such-org/no-such-encoder-xyz", "./no/such/folder"])
def test_missing_model_names_the_model_and_how_to_get_it(model):
    ex = TransformersTextExtractor(TransformersTextConfig(model=model))
    with pytest.raises(FileNotFoundError) as err:
        ex.feature_dim()
    message = str(err.value)
    assert repr(model) in message and "--local-dir" in message and "--model DIR" in message


def test_config_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="pooling"):
        make_config(TransformersTextExtractor, {"pooling": "max"})
    with pytest.raises(ConfigError, match="poolin"):
        make_config(TransformersTextExtractor, {"poolin": "cls"})
    with pytest.raises(ConfigError, match="layers"):
        make_config(TransformersTextExtractor, {"layers": 0})
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError):  # a folder without a usable model
        TransformersTextExtractor(TransformersTextConfig(model=str(tmp_path))).feature_dim()


def test_too_many_layers_is_an_error(minilm_dir):
    with pytest.raises(ValueError, match="only 6 layers"):
        TransformersTextExtractor(TransformersTextConfig(model=str(minilm_dir), layers=7)).feature_dim()
