"""Text features from any Hugging Face encoder (``transformers``): last-layers average, token pooling.

Utterance vector = the average of the last ``layers`` (default 4) hidden layers, pooled over the
utterance's own tokens. ``mean`` pooling (default) averages the word-piece tokens of the utterance and
leaves out special tokens and context: a frozen encoder that was not fine-tuned for sentence
classification (RoBERTa has no next-sentence objective) carries sentence meaning spread over all its
tokens, and mean pooling is the stronger frozen feature in sentence-embedding studies (Reimers &
Gurevych, 2019). ``cls`` takes the first token, as COSMIC did with its fine-tuned RoBERTa.

With ``context: K`` the K previous utterances of the dialogue are fed as the first sequence of a pair
("Speaker: text ..."), the current utterance as the second; the tokenizer's sequence ids say exactly which
tokens are the current utterance's, and only those are pooled. Context is cut from the left (oldest
first) when the pair exceeds ``max_length``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from extractors.base import Extractor, ExtractorConfig, ItemError, register_extractor
from mmemolr.config import option
from mmemolr.corpus.model import Corpus, Dialogue, Utterance
from mmemolr.fileio import sha256_files

# Utterances tokenised per tokenizer call when planning batches.
ENCODE_CHUNK = 1024
# Weight files in the order transformers prefers them; an index file lists the shards of a big model.
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin")


@dataclass
class TransformersTextConfig(ExtractorConfig):
    model: str = option("roberta-base", doc="hub name or local folder (`--model`); `roberta-large` is the choice of "
                        "the EmoLR paper")
    pooling: Literal["mean", "cls"] = option(
        "mean", doc="`mean`: average of the utterance's own tokens (special tokens and context excluded); `cls`: the "
        "first token, as COSMIC")
    layers: int = option(4, doc="average of the last N hidden layers")
    batch_size: int = option(64, doc="most utterances per forward pass (utterances are sorted by length and batched "
                             "under `max_tokens`)")
    max_tokens: int = option(4096, doc="most padded tokens (utterances × longest) per forward pass")
    max_length: int = option(512, doc="tokens per input, special tokens and context included (capped by the model)")
    # auto = float32 on every device: bf16 autocast measured slower than fp32 on an H200 (docs/extraction.md).
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = option(
        "auto", doc="`auto` = fp32 on every device (see GPU below); `bfloat16` / `float16` run the encoder under "
        "autocast; pooling is always done in fp32")
    context: int = option(0, doc="feed the K previous utterances of the dialogue (\"Speaker: text ...\") as left "
                          "context; only the current utterance's tokens are pooled; context is cut oldest-first to fit "
                          "`max_length`")
    speaker_prefix: bool = option(False, doc="encode the current utterance as \"Speaker: text\"")

    def __post_init__(self) -> None:
        for name in ("layers", "batch_size", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")
        if self.context < 0:
            raise ValueError(f"context must be 0 or more previous utterances, got {self.context}")
        if not self.model.strip():
            raise ValueError("model must name a Hugging Face model or a local folder")


@dataclass
class _Encoded:
    ids: np.ndarray  # int64 (T,)
    types: np.ndarray | None  # int64 (T,) token type ids, when the model takes them
    pool: np.ndarray  # int64 positions of the current utterance's tokens


@register_extractor
class TransformersTextExtractor(Extractor):
    name: ClassVar[str] = "transformers"
    modality: ClassVar[str] = "text"
    config_class: ClassVar[type[ExtractorConfig]] = TransformersTextConfig
    cpu_parallel: ClassVar[bool] = False
    weights_keys: ClassVar[tuple[str, ...]] = ("model",)
    # Padding never changes an utterance's vector (tests/test_text_extractor.py checks it).
    throughput_keys: ClassVar[tuple[str, ...]] = ("batch_size", "max_tokens")

    config: TransformersTextConfig

    def __init__(self, config: TransformersTextConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        self._hf_config: Any = None
        self._tokenizer: Any = None
        self._model: Any = None
        self._encoded: dict[str, _Encoded] = {}
        self._dialogues: tuple[int, dict[str, Dialogue]] | None = None

    # --- model resolution -----------------------------------------------------------------------------
    def _missing_model(self, reason: str) -> FileNotFoundError:
        model = self.config.model
        return FileNotFoundError(
            f"text model {model!r} could not be loaded ({reason.strip().splitlines()[0]}). "
            f"If it is a Hugging Face hub name, download it on a machine with internet with "
            f"`huggingface-cli download {model} --local-dir DIR` (or `hf download {model} --local-dir DIR`), "
            "copy DIR here and pass --model DIR; a local folder must hold config.json, the tokenizer files "
            "and the weights"
        )

    def _local_dir(self) -> Path | None:
        path = Path(self.config.model).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise self._missing_model(f"{path} has no config.json")
            return path
        if self.config.model.startswith((".", "/", "~")) or self.config.model.count("/") > 1:
            raise self._missing_model(f"folder {path} does not exist")
        return None

    def hf_config(self) -> Any:
        if self._hf_config is None:
            from transformers import AutoConfig

            local = self._local_dir()
            try:
                self._hf_config = AutoConfig.from_pretrained(str(local or self.config.model))
            except (OSError, ValueError) as err:
                raise self._missing_model(str(err)) from None
            layers = getattr(self._hf_config, "num_hidden_layers", None)
            if layers is not None and self.config.layers > layers:
                raise ValueError(f"layers={self.config.layers}: model {self.config.model!r} has only {layers} layers")
        return self._hf_config

    def feature_dim(self) -> int:
        config = self.hf_config()
        for key in ("hidden_size", "d_model", "dim"):
            value = getattr(config, key, None)
            if isinstance(value, int):
                return value
        raise ValueError(f"model {self.config.model!r}: its config has no hidden_size; is it a text encoder?")

    def _source(self) -> str:
        return str(self._local_dir() or self.config.model)

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        self.hf_config()
        source = self._source()
        folder = Path(source) if Path(source).exists() else None
        stamp = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in _weight_files(folder)) if folder else ()
        try:
            tokenizer, model = _load_pretrained(str(folder.resolve()) if folder else source, self.device, stamp)
        except (OSError, ValueError) as err:
            raise self._missing_model(str(err)) from None
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"model {self.config.model!r} has no fast tokenizer (tokenizer.json); the extractor "
                             "needs one to know which tokens belong to the current utterance")
        self._tokenizer, self._model = tokenizer, model
        if self.device == "cpu":
            # Never more threads than CPUs this process may use (containers, taskset).
            torch.set_num_threads(max(1, min(torch.get_num_threads(), _usable_cpus())))

    def model_dir(self) -> Path:
        """The folder holding the model files (a local folder, or the hub cache snapshot)."""
        local = self._local_dir()
        if local is not None:
            return local
        self.hf_config()
        folder = _hub_snapshot_dir(self.config.model)
        if not _weight_files(folder):
            self._load()  # a hub model whose weights are not downloaded yet
        return folder

    def compute_dtype(self) -> str:
        return "float32" if self.config.dtype == "auto" else self.config.dtype

    def provenance(self) -> dict[str, Any]:
        from mmemolr.store.h5 import library_versions

        folder = self.model_dir()
        files = _weight_files(folder)
        if not files:
            raise FileNotFoundError(f"model {self.config.model!r}: no weight file ({', '.join(WEIGHT_FILES[1::2])}) "
                                    f"in {folder}")
        hashes = {f.name: sha256_files(f) for f in files}
        digest = next(iter(hashes.values())) if len(hashes) == 1 else hashlib.sha256(
            "".join(f"{name} {h}\n" for name, h in sorted(hashes.items())).encode()).hexdigest()
        config = self.hf_config()
        return {
            "model_id": self.config.model,
            "model_dir": str(folder.resolve()),
            "weights_sha256": digest,
            "weights_files": sorted(hashes),
            "model_type": str(getattr(config, "model_type", "")),
            "num_hidden_layers": int(getattr(config, "num_hidden_layers", 0) or 0),
            "compute_dtype": self.compute_dtype(),
            "versions": library_versions("torch", "transformers", "tokenizers"),
        }

    def default_output_name(self) -> str:
        model = self.config.model.rstrip("/\\")
        local = Path(model).expanduser()
        stem = local.resolve().name if local.exists() else model.replace("/", "_")
        suffix = ""
        if self.config.pooling != "mean":
            suffix += f"-{self.config.pooling}"
        if self.config.layers != 4:
            suffix += f"-last{self.config.layers}"
        if self.config.context:
            suffix += f"-ctx{self.config.context}"
        if self.config.speaker_prefix:
            suffix += "-spk"
        return f"text-{stem}{suffix}"

    # --- tokenisation ---------------------------------------------------------------------------------
    def _dialogue_index(self, corpus: Corpus) -> dict[str, Dialogue]:
        if self._dialogues is None or self._dialogues[0] != id(corpus):
            self._dialogues = (id(corpus), {d.id: d for d in corpus.dialogues})
        return self._dialogues[1]

    def _current_text(self, u: Utterance) -> str:
        return _with_speaker(u) if self.config.speaker_prefix else u.text

    def _context_text(self, u: Utterance, corpus: Corpus) -> str:
        if not self.config.context or u.index == 0:
            return ""
        dialogue = self._dialogue_index(corpus).get(u.dialogue_id)
        if dialogue is None:
            raise ValueError(f"utterance {u.id!r}: dialogue {u.dialogue_id!r} is not in corpus {corpus.name!r}")
        previous = dialogue.utterances[max(0, u.index - self.config.context) : u.index]
        return " ".join(_with_speaker(p) for p in previous)

    def encode(self, items: list[Utterance], corpus: Corpus) -> list[_Encoded]:
        """Token ids of each item (with its context) and the positions of its own tokens."""
        self._load()
        tok = self._tokenizer
        limit = min(self.config.max_length, _model_max_length(tok, self.hf_config()))
        with_types = "token_type_ids" in tok.model_input_names
        current = [self._current_text(u) for u in items]
        context = [self._context_text(u, corpus) for u in items]
        out: list[_Encoded | None] = [None] * len(items)
        single = [i for i, c in enumerate(context) if not c]
        pair = [i for i, c in enumerate(context) if c]
        if single:
            enc = tok([current[i] for i in single], truncation=True, max_length=limit,
                      return_token_type_ids=with_types, return_attention_mask=False)
            for j, i in enumerate(single):
                out[i] = _make(enc["input_ids"][j], enc["token_type_ids"][j] if with_types else None,
                               enc.sequence_ids(j), own=0, limit=limit)
        if pair:
            # No tokenizer truncation: it would cut the most recent context; _make cuts the oldest.
            enc = tok([context[i] for i in pair], [current[i] for i in pair], truncation=False,
                      return_token_type_ids=with_types, return_attention_mask=False)
            for j, i in enumerate(pair):
                out[i] = _make(enc["input_ids"][j], enc["token_type_ids"][j] if with_types else None,
                               enc.sequence_ids(j), own=1, limit=limit)
        return out  # type: ignore[return-value]

    def plan_batches(self, items: list[Utterance], corpus: Corpus, batch_size: int) -> list[list[Utterance]]:
        """Tokenise everything once, then cut length-sorted batches under the token budget."""
        # In chunks: the tokenizer's per-text Encoding objects (offsets, word ids, strings) are far bigger
        # than the ids kept here, so tokenising a whole corpus at once would raise the memory peak.
        encoded = [e for start in range(0, len(items), ENCODE_CHUNK)
                   for e in self.encode(items[start : start + ENCODE_CHUNK], corpus)]
        self._encoded = {u.id: e for u, e in zip(items, encoded)}
        order = sorted(range(len(items)), key=lambda i: -len(encoded[i].ids))  # longest first: OOM shows early
        cap = min(batch_size, self.config.batch_size)
        batches: list[list[Utterance]] = []
        batch: list[Utterance] = []
        longest = 0
        for i in order:
            n = len(encoded[i].ids)
            if batch and (len(batch) >= cap or (len(batch) + 1) * max(longest, n) > self.config.max_tokens):
                batches.append(batch)
                batch, longest = [], 0
            batch.append(items[i])
            longest = max(longest, n)
        if batch:
            batches.append(batch)
        return batches

    # --- encoding -------------------------------------------------------------------------------------
    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        self._load()
        encoded = [self._encoded.pop(u.id, None) for u in items]
        todo = [i for i, e in enumerate(encoded) if e is None]
        if todo:
            for i, e in zip(todo, self.encode([items[i] for i in todo], corpus)):
                encoded[i] = e
        results: list[np.ndarray | ItemError | None] = [None] * len(items)
        rows = []
        for i, e in enumerate(encoded):
            assert e is not None
            if len(e.pool) == 0:
                results[i] = ItemError("empty-text", "the utterance has no tokens (empty text)")
            else:
                rows.append(i)
        if rows:
            vectors = self._forward([encoded[i] for i in rows])  # type: ignore[misc]
            for i, v in zip(rows, vectors):
                results[i] = v
        return results  # type: ignore[return-value]

    def _forward(self, batch: list[_Encoded]) -> np.ndarray:
        import torch

        n, width = len(batch), max(len(e.ids) for e in batch)
        pad = self._tokenizer.pad_token_id
        ids = np.full((n, width), 0 if pad is None else pad, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        pool = np.zeros((n, width), dtype=np.float32)
        types = np.zeros((n, width), dtype=np.int64) if batch[0].types is not None else None
        for r, e in enumerate(batch):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
            pool[r, e.pool] = 1.0
            if types is not None and e.types is not None:
                types[r, : len(e.types)] = e.types
        inputs = {"input_ids": torch.from_numpy(ids).to(self.device),
                  "attention_mask": torch.from_numpy(mask).to(self.device)}
        if types is not None:
            inputs["token_type_ids"] = torch.from_numpy(types).to(self.device)
        dtype = self.compute_dtype()
        autocast = (torch.autocast(device_type=self.device.split(":")[0], dtype=getattr(torch, dtype))
                    if dtype != "float32" else nullcontext())
        with torch.inference_mode():
            with autocast:
                hidden = self._model(**inputs, output_hidden_states=True).hidden_states
            # Pooling in float32, outside autocast (which would run bmm in bf16/fp16 again).
            last = hidden[-self.config.layers :]
            if self.config.pooling == "cls":
                h = sum(x[:, 0].float() for x in last) / len(last)
            else:
                weights = torch.from_numpy(pool).to(self.device)
                weights = weights / weights.sum(dim=1, keepdim=True)
                # Pool each layer first (B x H), then average: the same value as pooling the layer
                # average, without materialising a B x T x H float32 sum on top of the layers.
                h = sum(torch.bmm(weights[:, None, :], x.float()).squeeze(1) for x in last) / len(last)
        return h.float().cpu().numpy()


@functools.lru_cache(maxsize=1)
def _load_pretrained(source: str, device: str, stamp: tuple) -> tuple[Any, Any]:
    """Tokenizer and model in eval mode on ``device``. The last one stays cached, so repeated runs in one
    process (notebooks, tests, several shards) load it once; ``stamp`` (weight file sizes and times)
    makes a changed folder load again. The model is only ever used for inference, never modified."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar is the one that matters
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source)
    return tokenizer, model.to(device).eval()


def _make(ids: list[int], types: list[int] | None, sequence_ids: list[int | None], own: int, limit: int) -> _Encoded:
    """Cut a tokenised input to ``limit`` tokens: context (sequence 0 of a pair) from the left, then the
    utterance itself from the right; specials stay. ``own`` is the sequence index of the utterance."""
    keep = list(range(len(ids)))
    excess = len(ids) - limit
    if excess > 0:
        drop: set[int] = set()
        if own == 1:
            context = [p for p, s in enumerate(sequence_ids) if s == 0]
            drop.update(context[:excess])
            excess -= min(excess, len(context))
        if excess > 0:
            mine = [p for p, s in enumerate(sequence_ids) if s == own]
            drop.update(mine[len(mine) - excess :])
        keep = [p for p in keep if p not in drop]
    ids_arr = np.asarray(ids, dtype=np.int64)[keep]
    types_arr = np.asarray(types, dtype=np.int64)[keep] if types is not None else None
    pool = np.array([k for k, p in enumerate(keep) if sequence_ids[p] == own], dtype=np.int64)
    return _Encoded(ids_arr, types_arr, pool)


def _with_speaker(u: Utterance) -> str:
    return f"{u.speaker}: {u.text}" if u.speaker else u.text


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset and container CPU sets (Linux)
    except AttributeError:
        return os.cpu_count() or 1


def _model_max_length(tokenizer: Any, config: Any) -> int:
    """Longest input the model takes: the tokenizer's limit when it is set, else the position table."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    positions = getattr(config, "max_position_embeddings", None)
    return int(positions) if isinstance(positions, int) and positions > 0 else 512


def _weight_files(folder: Path) -> list[Path]:
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if name.endswith(".index.json"):
                shards = sorted(set(json.loads(path.read_text(encoding="utf-8"))["weight_map"].values()))
                return [folder / s for s in shards]
            return [path]
    return []


def _hub_snapshot_dir(model: str) -> Path:
    """The local snapshot folder of a hub model that from_pretrained has just loaded."""
    from transformers.utils import cached_file

    path = cached_file(model, "config.json")
    if path is None:
        raise FileNotFoundError(f"model {model!r}: config.json is not in the local Hugging Face cache")
    return Path(path).parent
