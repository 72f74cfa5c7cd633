"""``ssl`` audio extractor: a self-supervised speech encoder (wav2vec 2.0, HuBERT, WavLM) via transformers.

The utterance vector is the average of the encoder's last ``layers`` hidden layers, mean-pooled over
the utterance's frames (padding frames never enter the pool). ``model`` is a Hugging Face hub id
(downloaded once into the hub cache) or a local folder in Hugging Face layout (``config.json``,
``preprocessor_config.json``, ``model.safetensors`` or ``pytorch_model.bin``).

Long utterances are cut into ``ceil(length / max_seconds)`` near-equal chunks; each chunk is encoded
on its own (normalised as the model's feature extractor says) and the utterance vector is the
chunk vectors' average weighted by chunk length. Chunks are batched by length (longest first, at most
``batch_seconds`` of padded audio per batch) with an attention mask. Encoders whose convolutional front
end uses group normalisation (``feat_extract_norm: group``: wav2vec2-base, hubert-base, wavlm-base*)
normalise over the padded length, so for them only chunks of identical length share a batch: batched
results equal one-by-one results for every model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from extractors.audio_io import AudioInputConfig, load_utterance_audio, utterance_segment
from extractors.base import Extractor, ItemError, register_extractor
from mmemolr.corpus.model import Corpus, Utterance
from mmemolr.fileio import sha256_files

DTYPES = ("float32", "float16", "bfloat16")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass
class SslConfig(AudioInputConfig):
    model: str = "microsoft/wavlm-base-plus"
    layers: int = 4  # average of the last N hidden layers
    max_seconds: float = 20.0  # longer utterances are encoded in chunks of at most this length
    batch_seconds: float = 160.0  # padded audio per forward pass (batch size x longest chunk)
    batch_size: int = 64  # utterances per extract_batch call, planned by length (see plan_batches)
    dtype: str = "float32"  # float16 / bfloat16 halve GPU memory and time


def missing_model_message(model: str, reason: str) -> str:
    name = model.rstrip("/").rsplit("/", 1)[-1] or "model"
    return (
        f"ssl model {model!r} could not be loaded ({reason}). Give a hub id reachable from this machine, "
        f"or download it where the hub is reachable (huggingface-cli download {model} --local-dir "
        f"models/{name}) and pass that folder: mmemolr extract --extractor ssl --model models/{name}"
    )


def split_chunks(samples: np.ndarray, max_samples: int) -> list[np.ndarray]:
    """Near-equal consecutive chunks of at most ``max_samples`` (no tiny tail chunk)."""
    count = max(1, math.ceil(samples.size / max_samples))
    return np.array_split(samples, count)


@register_extractor
class SslExtractor(Extractor):
    """Self-supervised speech encoder features; batched, on the GPU when ``device`` is cuda."""

    name = "ssl"
    modality = "audio"
    config_class = SslConfig
    cpu_parallel = False
    weights_keys = ("model",)

    def __init__(self, config: SslConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        c = self.config
        if c.dtype not in DTYPES:
            raise ValueError(f"ssl extractor: dtype must be one of {', '.join(DTYPES)}, not {c.dtype!r}")
        if c.layers < 1 or c.max_seconds <= 0 or c.batch_seconds < c.max_seconds:
            raise ValueError("ssl extractor: need layers >= 1, max_seconds > 0 and batch_seconds >= max_seconds")
        self._model: Any = None
        self._feature_extractor: Any = None
        self._weights_sha256: str | None = None

    # -- loading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoFeatureExtractor, AutoModel

        c = self.config
        source = str(Path(c.model).expanduser()) if Path(c.model).expanduser().exists() else c.model
        if Path(source).is_file():
            raise ValueError(
                f"ssl model {c.model!r} is a file; give a folder in Hugging Face layout "
                "(config.json, preprocessor_config.json and the weights) or a hub id"
            )
        try:
            model = AutoModel.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(missing_model_message(c.model, _first_line(err))) from None
        try:
            feature_extractor = AutoFeatureExtractor.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"ssl model {c.model!r} has no usable feature extractor settings (preprocessor_config.json): "
                f"{_first_line(err)}. Save one next to the model with feature_extractor.save_pretrained(folder)"
            ) from None
        rate = getattr(feature_extractor, "sampling_rate", c.sample_rate)
        if rate != c.sample_rate:
            raise ValueError(f"ssl model {c.model!r} expects {rate} Hz audio; set sample_rate={rate} in the config")
        hidden = getattr(model.config, "num_hidden_layers", 0)
        if not hasattr(model, "_get_feat_extract_output_lengths") or not hidden:
            raise ValueError(f"ssl model {c.model!r} ({type(model).__name__}) is not a speech encoder of the wav2vec2 family")
        if c.layers > hidden:
            raise ValueError(f"ssl extractor: layers={c.layers} but {c.model!r} has {hidden} hidden layers")
        model.eval().to(self.device, dtype=getattr(torch, c.dtype))
        self._model, self._feature_extractor = model, feature_extractor
        self._source = source

    @property
    def model(self) -> Any:
        self._load()
        return self._model

    def feature_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def default_output_name(self) -> str:
        return f"audio-ssl-{self.config.model.rstrip('/').rsplit('/', 1)[-1]}"

    def weight_files(self) -> list[Path]:
        self._load()
        local = Path(self._source)
        if local.is_dir():
            return sorted(p for p in local.iterdir() if p.name.endswith((".safetensors", ".bin")))
        from huggingface_hub import try_to_load_from_cache

        found = []
        for name in WEIGHT_FILES:
            cached = try_to_load_from_cache(self.config.model, name)
            if isinstance(cached, str):
                found.append(Path(cached))
        return found[:1]

    def provenance(self) -> dict[str, Any]:
        from mmemolr.store import library_versions

        if self._weights_sha256 is None:
            files = self.weight_files()
            self._weights_sha256 = sha256_files(*files) if files else ""
        return {
            "model_id": self.config.model,
            "weights_sha256": self._weights_sha256,
            "model_class": type(self.model).__name__,
            "pooling": f"mean over valid frames of the average of the last {self.config.layers} layers",
            "versions": library_versions("torch", "transformers", "soxr", "soundfile", "av"),
        }

    # -- extraction ------------------------------------------------------------------------------
    def plan_batches(self, items: list[Utterance], corpus: Corpus, batch_size: int) -> list[list[Utterance]]:
        """Runs of similar length, so each call's forward passes need little padding.

        Length is known without decoding only for segments (end - start); whole files are ordered by
        file size, which tracks duration within one corpus.
        """
        def key(utt: Utterance) -> tuple[int, float]:
            start, end = utterance_segment(utt)
            if start is not None and end is not None:
                return 0, end - start
            try:
                return 1, float(Path(utt.audio_path).stat().st_size) if utt.audio_path else 0.0
            except OSError:
                return 1, 0.0  # missing files fail fast in extract_batch wherever they land

        ordered = sorted(items, key=key, reverse=True)
        size = max(1, int(batch_size))
        return [ordered[i : i + size] for i in range(0, len(ordered), size)]

    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        out: list[np.ndarray | ItemError | None] = [None] * len(items)
        chunks: list[tuple[int, np.ndarray]] = []
        for i, utt in enumerate(items):
            try:
                samples = load_utterance_audio(utt, self.config)
            except ItemError as err:
                out[i] = err
                continue
            if self._frames(samples.size) < 1:
                out[i] = ItemError(
                    "empty", f"utterance {utt.id}: {samples.size} samples are shorter than the encoder's receptive field"
                )
                continue
            chunks += [(i, chunk) for chunk in split_chunks(samples, self._max_samples())]
        vectors = self.encode([chunk for _, chunk in chunks])
        sums: dict[int, np.ndarray] = {}
        weights: dict[int, float] = {}
        for (i, chunk), vector in zip(chunks, vectors):
            sums[i] = sums.get(i, 0.0) + chunk.size * vector.astype(np.float64)
            weights[i] = weights.get(i, 0.0) + chunk.size
        for i, total in sums.items():
            out[i] = (total / weights[i]).astype(np.float32)
        assert all(o is not None for o in out), "every item gets a vector or an ItemError"
        return out  # type: ignore[return-value]

    def _max_samples(self) -> int:
        return max(1, int(self.config.max_seconds * self.config.sample_rate))

    def _frames(self, samples: int) -> int:
        import torch

        return int(self.model._get_feat_extract_output_lengths(torch.tensor([samples]))[0])

    def encode(self, signals: list[np.ndarray]) -> list[np.ndarray]:
        """Pooled vector of each signal (no chunking), computed in length-bucketed padded batches."""
        import torch

        self._load()
        if not signals:
            return []
        inputs = [self._normalise(s) for s in signals]
        result: list[np.ndarray | None] = [None] * len(inputs)
        for batch in self._batches([x.size for x in inputs]):
            longest = max(inputs[i].size for i in batch)
            values = np.zeros((len(batch), longest), dtype=np.float32)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, i in enumerate(batch):
                values[row, : inputs[i].size] = inputs[i]
                mask[row, : inputs[i].size] = 1
            pooled = self._forward(torch.from_numpy(values), torch.from_numpy(mask))
            for row, i in enumerate(batch):
                result[i] = pooled[row]
        assert all(r is not None for r in result), "every signal belongs to one batch"
        return result  # type: ignore[return-value]

    def _normalise(self, signal: np.ndarray) -> np.ndarray:
        fe = self._feature_extractor
        values = fe(signal, sampling_rate=self.config.sample_rate, return_tensors="np")["input_values"]
        return np.asarray(values, dtype=np.float32).reshape(-1)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Index groups: longest first, padded size within budget; equal lengths only for group norm."""
        exact = getattr(self.model.config, "feat_extract_norm", "layer") == "group"
        budget = max(self._max_samples(), int(self.config.batch_seconds * self.config.sample_rate))
        batches: list[list[int]] = []
        current: list[int] = []
        for i in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
            longest = lengths[current[0]] if current else lengths[i]
            fits = (len(current) + 1) * longest <= budget and (not exact or lengths[i] == longest)
            if current and not fits:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _forward(self, values: Any, mask: Any) -> np.ndarray:
        import torch

        model = self.model
        dtype = next(model.parameters()).dtype
        padded = bool((mask == 0).any())
        with torch.inference_mode():
            output = model(
                values.to(self.device, dtype=dtype),
                attention_mask=mask.to(self.device) if padded else None,
                output_hidden_states=True,
            )
            hidden = torch.stack(output.hidden_states[-self.config.layers :]).float().mean(0)  # (B, T, H)
            frames = model._get_feat_extract_output_lengths(mask.sum(1)).to(self.device)
            valid = (torch.arange(hidden.shape[1], device=self.device)[None, :] < frames[:, None]).float()
            pooled = (hidden * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        return pooled.cpu().numpy()


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
