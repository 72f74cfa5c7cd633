"""``timm``: an embedding per face crop from any timm image backbone, pooled over the utterance's crops.

The backbone is created with ``num_classes=0`` so it returns its pooled pre-logits features. Weights come
from a local ``checkpoint`` (a .safetensors file, a .pth/.pt/.bin file read with
``torch.load(weights_only=True)``, or a folder holding model.safetensors / pytorch_model.bin as
downloaded from the hub) or, without one, from the Hugging Face hub (``pretrained: true``). Random weights
give meaningless features, so they are refused unless ``allow_random_weights: true`` (tests, benchmarks).

Face crops (RGB) are resized straight to the model's input size (no centre crop: the face box with its
margin is already the region of interest) and normalised with the mean/std of the model's
``pretrained_cfg``. Crops of a whole batch of utterances go through the network together,
``forward_batch`` at a time, on ``device``. Frame decoding and face detection run in ``io_threads`` threads (OpenCV releases
the GIL). A batched network already uses every core, hence ``cpu_parallel = False``.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from extractors.base import Extractor, ItemError, register_extractor
from extractors.faces import FaceConfig, FaceCrops, FaceDetector, face_crops, pool
from mmemolr.corpus.model import Corpus, Utterance
from mmemolr.fileio import sha256_files

if TYPE_CHECKING:  # torch and timm are imported on first use: importing the extractors stays fast
    import torch

log = logging.getLogger(__name__)

CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


@dataclass
class TimmConfig(FaceConfig):
    model: str = "resnet50"  # any timm model name, optionally with a pretrained tag: resnet50.a1_in1k
    checkpoint: str | None = None  # local weights: .safetensors, .pth/.pt/.bin, or a folder holding one
    pretrained: bool = True  # without a checkpoint, load the model's pretrained weights from the hub
    allow_random_weights: bool = False  # only for tests and benchmarks: features are meaningless
    crop_size: int | None = None  # input side in pixels; None: the model's pretrained input size
    forward_batch: int = 64  # face crops per forward pass (the runner's --batch-size counts utterances)
    io_threads: int = 4  # threads decoding video and detecting faces while the batch is assembled
    seed: int = 0  # seeds random initialisation (allow_random_weights) so runs are repeatable

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model.strip():
            raise ValueError("model must name a timm model, e.g. resnet50 or vit_base_patch16_224.augreg_in21k")
        if self.crop_size is not None and self.crop_size < 16:
            raise ValueError(f"crop_size must be >= 16 pixels, got {self.crop_size}")
        if self.forward_batch < 1:
            raise ValueError(f"forward_batch must be >= 1, got {self.forward_batch}")
        if self.io_threads < 1:
            raise ValueError(f"io_threads must be >= 1, got {self.io_threads}")


def resolve_checkpoint(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        for name in CHECKPOINT_FILES:
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"checkpoint folder {p} holds none of {', '.join(CHECKPOINT_FILES)}")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    return p


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or a torch file (read with weights_only=True: no arbitrary pickles)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as err:
            raise ValueError(f"checkpoint {path} is not a readable safetensors file ({err})") from None
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError by case
            raise ValueError(
                f"checkpoint {path} cannot be loaded with torch.load(weights_only=True) ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}). It must hold only tensors: save "
                "model.state_dict() with torch.save, or convert it to .safetensors"
            ) from None
    # training scripts often wrap the weights: {"state_dict": ...}, {"model": ...}, {"state_dict_ema": ...}
    if isinstance(state, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"checkpoint {path} does not hold a state dict of tensors")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def state_dict_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the model's tensors (names, dtypes, shapes, values) in name order."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _classifier_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    names = model.pretrained_cfg.get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def _unknown_model_error(name: str) -> ValueError:
    import timm

    architecture = name.split(".", 1)[0]
    close = difflib.get_close_matches(architecture, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    return ValueError(f"timm has no model {name!r}{hint}")


def load_timm_model(config: TimmConfig) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The backbone (eval mode, num_classes=0) and where its weights came from."""
    import timm
    import torch

    if config.checkpoint is None and not config.pretrained and not config.allow_random_weights:
        raise ValueError(
            f"timm extractor: no weights for {config.model!r}. Give a local checkpoint (checkpoint=PATH to a "
            ".safetensors/.pth file or a downloaded hub folder) or pretrained=true to load them from the "
            "Hugging Face hub; random weights give meaningless features (allow_random_weights=true is for tests only)"
        )
    source: dict[str, Any] = {}
    if config.checkpoint is not None:
        path = resolve_checkpoint(config.checkpoint)
        with torch.random.fork_rng(devices=[]):  # the throw-away init must not move the caller's RNG
            model = _create(timm, config.model, pretrained=False)
        state = load_state_dict_file(path)
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as err:  # shape mismatches
            details = "; ".join(line.strip() for line in str(err).splitlines()[1:4])
            raise ValueError(f"checkpoint {path} does not fit timm model {config.model!r}: {details}") from None
        prefixes = _classifier_prefixes(model)
        unexpected = [k for k in result.unexpected_keys if not k.startswith(prefixes)]
        if result.missing_keys or unexpected:
            problems = []
            if result.missing_keys:
                problems.append(f"{len(result.missing_keys)} missing ({', '.join(result.missing_keys[:3])}, ...)")
            if unexpected:
                problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}, ...)")
            raise ValueError(
                f"checkpoint {path} does not fit timm model {config.model!r}: parameters {'; '.join(problems)}. "
                "Is it a checkpoint of this architecture?"
            )
        source = {"weights": "checkpoint", "checkpoint": str(path), "weights_sha256": sha256_files(path),
                  "weights_sha256_of": "file"}
    elif config.pretrained:
        try:
            model = _create(timm, config.model, pretrained=True)
        except ValueError:
            raise
        except Exception as err:  # hub errors: LocalEntryNotFoundError, HTTP errors, no weights for the tag
            first = str(err).splitlines()[0] if str(err) else ""
            raise ValueError(
                f"cannot load pretrained weights of timm model {config.model!r} ({type(err).__name__}: {first}). "
                "Offline or no hub access? Download them once where the hub is reachable (e.g. "
                f"`hf download {_hub_id(config.model)} --local-dir DIR`) and set checkpoint=DIR "
                "(or a .safetensors/.pth file)"
            ) from None
        source = {"weights": "hub", "weights_sha256_of": "state_dict"}
    else:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(config.seed)
            model = _create(timm, config.model, pretrained=False)
        source = {"weights": "random", "weights_sha256_of": "state_dict"}
        log.warning("timm extractor: %s has RANDOM weights (allow_random_weights=true); features are meaningless",
                    config.model)
    if "weights_sha256" not in source:
        source["weights_sha256"] = state_dict_sha256(model)
    return model.eval(), source


def _hub_id(name: str) -> str:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except Exception:  # an unknown tag: fall back to the name as given
        cfg = None
    return (cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None) or f"timm/{name}"


def _create(timm: Any, name: str, pretrained: bool) -> torch.nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except RuntimeError as err:
        if str(err).startswith("Unknown model"):
            raise _unknown_model_error(name) from None
        if str(err).startswith("Invalid pretrained tag"):
            architecture = name.split(".", 1)[0]
            tags = timm.list_pretrained(f"{architecture}.*")
            raise ValueError(
                f"timm model {name!r}: unknown pretrained tag; {architecture} has "
                f"{', '.join(tags[:8]) + (' ...' if len(tags) > 8 else '') if tags else 'no pretrained weights'}"
            ) from None
        raise


@register_extractor
class TimmExtractor(Extractor):
    name = "timm"
    modality = "visual"
    config_class = TimmConfig
    cpu_parallel = False
    weights_keys = ("checkpoint",)  # the architecture (model) stays part of the identity

    def __init__(self, config: TimmConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        self.config: TimmConfig
        self.detector = FaceDetector(self.config)
        self._model: torch.nn.Module | None = None
        self._source: dict[str, Any] = {}
        self._dim: int | None = None

    def _load(self) -> torch.nn.Module:
        if self._model is None:
            import torch

            if self.device.startswith("cuda") and not torch.cuda.is_available():
                raise RuntimeError(f"device {self.device!r} was asked for but CUDA is not available here")
            model, self._source = load_timm_model(self.config)
            data = model.pretrained_cfg
            size = self.config.crop_size
            native = tuple(data.get("input_size", (3, 224, 224)))[1:]
            if size is not None and data.get("fixed_input_size") and (size, size) != native:
                raise ValueError(f"timm model {self.config.model!r} only takes {native[0]}x{native[1]} inputs; "
                                 f"remove crop_size={size} (or set it to {native[0]})")
            self.input_hw: tuple[int, int] = (size, size) if size is not None else (int(native[0]), int(native[1]))
            self.mean = torch.tensor(data.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32).view(1, 3, 1, 1)
            self.std = torch.tensor(data.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32).view(1, 3, 1, 1)
            model = model.to(self.device)
            self.mean, self.std = self.mean.to(self.device), self.std.to(self.device)
            # the output size after num_classes=0 (num_features, or a pre-logits head's size) from one pass
            with torch.inference_mode():
                probe = model(torch.zeros(1, 3, *self.input_hw, device=self.device))
            self._dim = int(probe.shape[-1])
            self._model = model
        return self._model

    def embed_dim(self) -> int:
        """Size of the embedding of one face crop (the backbone's pooled features)."""
        self._load()
        assert self._dim is not None
        return self._dim

    def feature_dim(self) -> int:
        return self.embed_dim() * len(self.config.pooling)

    def default_output_name(self) -> str:
        return f"visual-timm-{re.sub(r'[^A-Za-z0-9_.-]+', '-', self.config.model)}"

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, embed_dim) embeddings of RGB uint8 crops of size input_hw, forward_batch at a time."""
        import torch

        model = self._load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), self.config.forward_batch):
                batch = torch.from_numpy(np.stack(crops[i:i + self.config.forward_batch])).to(self.device)
                x = batch.permute(0, 3, 1, 2).float().div_(255.0).sub_(self.mean).div_(self.std)
                out.append(model(x).float().cpu().numpy())
        return np.concatenate(out)

    def _crops(self, utt: Utterance) -> FaceCrops | ItemError:
        try:
            return face_crops(utt, self.config, self.detector, self.input_hw)
        except ItemError as err:
            return err

    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        self._load()
        if self.config.io_threads > 1 and len(items) > 1:
            with ThreadPoolExecutor(min(self.config.io_threads, len(items))) as pool_:
                results = list(pool_.map(self._crops, items))
        else:
            results = [self._crops(u) for u in items]
        flat = [c for r in results if isinstance(r, FaceCrops) for c in r.crops]
        vectors = self.embed(flat) if flat else np.zeros((0, self.embed_dim()), dtype=np.float32)
        out: list[np.ndarray | ItemError] = []
        at = 0
        for r in results:
            if isinstance(r, ItemError):
                out.append(r)
                continue
            n = len(r.crops)
            out.append(pool(vectors[at:at + n], self.config.pooling))
            at += n
        return out

    def provenance(self) -> dict[str, Any]:
        import timm

        from mmemolr.store.h5 import library_versions

        model = self._load()
        return {
            "model_id": self.config.model,
            "pretrained_tag": model.pretrained_cfg.get("tag") if self._source["weights"] != "random" else "random-init",
            "hf_hub_id": model.pretrained_cfg.get("hf_hub_id"),
            "input_size": list(self.input_hw),
            "mean": list(model.pretrained_cfg.get("mean", ())),
            "std": list(model.pretrained_cfg.get("std", ())),
            "timm_version": timm.__version__,
            "versions": {**library_versions("timm", "torch", "opencv-python", "safetensors"), "opencv": cv2.__version__},
            "cascade": self.detector.path.name,
            **self._source,
        }
