"""``hoglbp``: classical face descriptors that need no downloads (the default visual extractor).

Per face crop (grey, ``crop_size`` x ``crop_size``, default 64):

* HOG (OpenCV ``cv2.HOGDescriptor``): gradient-orientation histograms of ``hog_bins`` unsigned bins in
  ``hog_cell``-pixel cells, L2-Hys normalised over 2x2-cell blocks with a one-cell stride. It captures the
  shape of the face: the outline of brows, eyes, mouth and wrinkles, which move with expressions.
  Dimension ``(crop_size / hog_cell - 1)^2 * 4 * hog_bins`` (64 px, 8 px cells, 9 bins: 1764).
* Uniform LBP (numpy): each pixel's 8 neighbours at radius 1 thresholded against it give an 8-bit code; the
  58 "uniform" codes (at most two 0/1 transitions round the circle: edges, corners, spots, flat areas) keep
  their own bin and the rest share one, so 59 bins, counted in a ``lbp_grid`` x ``lbp_grid`` grid of cells
  and normalised to sum to 1 per cell. It captures local texture (skin creases, teeth, closed eyes) and is
  unchanged by monotonic lighting changes. Dimension ``lbp_grid^2 * 59`` (4x4 grid: 944).

Per-crop vectors (default 1764 + 944 = 2708) are pooled over the face crops of the utterance (``pooling``:
mean by default, optionally std and max concatenated), so ``feature_dim = per-crop dim * len(pooling)``.
Per-item OpenCV/numpy work parallelises across processes, hence ``cpu_parallel = True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from extractors.base import Extractor, ItemError, register_extractor
from extractors.faces import FaceConfig, FaceDetector, face_crops, pool
from mmemolr.corpus.model import Corpus, Utterance
from mmemolr.fileio import sha256_files

DESCRIPTORS = ("hog", "lbp")
LBP_BINS = 59


def _uniform_lbp_table() -> np.ndarray:
    """Map the 256 8-bit LBP codes to 59 labels: one per uniform pattern (58), one shared by the rest."""
    table = np.full(256, LBP_BINS - 1, dtype=np.int64)
    label = 0
    for code in range(256):
        bits = [(code >> k) & 1 for k in range(8)]
        if sum(bits[k] != bits[(k + 1) % 8] for k in range(8)) <= 2:
            table[code] = label
            label += 1
    assert label == LBP_BINS - 1
    return table


UNIFORM_LBP = _uniform_lbp_table()
# neighbours in circular order (dy, dx): the order matters for the uniformity of a code
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def lbp_codes(grey: np.ndarray) -> np.ndarray:
    """8-neighbour, radius-1 LBP codes (uint8) of the interior pixels of a grey image."""
    grey = np.asarray(grey)
    h, w = grey.shape
    centre = grey[1:-1, 1:-1]
    codes = np.zeros((h - 2, w - 2), dtype=np.uint8)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        codes |= (grey[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] >= centre).astype(np.uint8) << bit
    return codes


def lbp_histograms(grey: np.ndarray, grid: int) -> np.ndarray:
    """Uniform LBP histograms of a ``grid`` x ``grid`` partition, each summing to 1: (grid * grid * 59,)."""
    labels = UNIFORM_LBP[lbp_codes(grey)]
    h, w = labels.shape
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)
    cell = rows[:, None] * grid + cols[None, :]
    counts = np.bincount((cell * LBP_BINS + labels).ravel(), minlength=grid * grid * LBP_BINS)
    counts = counts.reshape(grid * grid, LBP_BINS).astype(np.float64)
    return (counts / counts.sum(axis=1, keepdims=True)).ravel().astype(np.float32)


@dataclass
class HogLbpConfig(FaceConfig):
    crop_size: int = 64  # face crops are resized to crop_size x crop_size grey images
    descriptors: list[str] = field(default_factory=lambda: ["hog", "lbp"])
    hog_cell: int = 8  # pixels per HOG cell side; crop_size must be a multiple, with at least 2 cells
    hog_bins: int = 9  # unsigned orientation bins over 0-180 degrees
    lbp_grid: int = 4  # LBP histograms in a grid x grid partition of the crop

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [d for d in self.descriptors if d not in DESCRIPTORS]
        if not self.descriptors or unknown or len(set(self.descriptors)) != len(self.descriptors):
            raise ValueError(f"descriptors must be a non-empty list of distinct {', '.join(DESCRIPTORS)}; got {self.descriptors}")
        if self.crop_size < 16:
            raise ValueError(f"crop_size must be >= 16 pixels, got {self.crop_size}")
        if "hog" in self.descriptors:
            if self.hog_cell < 2 or self.crop_size % self.hog_cell or self.crop_size // self.hog_cell < 2:
                raise ValueError(
                    f"hog_cell {self.hog_cell} must divide crop_size {self.crop_size} into at least 2 cells "
                    "(e.g. crop_size 64 with hog_cell 8)"
                )
            if self.hog_bins < 2:
                raise ValueError(f"hog_bins must be >= 2, got {self.hog_bins}")
        if "lbp" in self.descriptors and not 1 <= self.lbp_grid <= (self.crop_size - 2) // 2:
            raise ValueError(f"lbp_grid must be between 1 and {(self.crop_size - 2) // 2} for crop_size {self.crop_size}")


@register_extractor
class HogLbpExtractor(Extractor):
    name = "hoglbp"
    modality = "visual"
    config_class = HogLbpConfig
    cpu_parallel = True

    def __init__(self, config: HogLbpConfig | None = None, device: str = "cpu") -> None:
        super().__init__(config, device)
        self.config: HogLbpConfig
        self.detector = FaceDetector(self.config)
        self._hog: cv2.HOGDescriptor | None = None

    def __getstate__(self) -> dict[str, Any]:
        # OpenCV objects do not pickle; worker processes rebuild them on first use
        return {**self.__dict__, "_hog": None}

    @property
    def hog(self) -> cv2.HOGDescriptor:
        if self._hog is None:
            c = self.config.hog_cell
            s = self.config.crop_size
            self._hog = cv2.HOGDescriptor((s, s), (2 * c, 2 * c), (c, c), (c, c), self.config.hog_bins)
        return self._hog

    def hog_dim(self) -> int:
        cells = self.config.crop_size // self.config.hog_cell
        return (cells - 1) ** 2 * 4 * self.config.hog_bins if "hog" in self.config.descriptors else 0

    def lbp_dim(self) -> int:
        return self.config.lbp_grid ** 2 * LBP_BINS if "lbp" in self.config.descriptors else 0

    def crop_dim(self) -> int:
        """Length of the descriptor of one face crop, before pooling."""
        return self.hog_dim() + self.lbp_dim()

    def feature_dim(self) -> int:
        return self.crop_dim() * len(self.config.pooling)

    def describe(self, crop_rgb: np.ndarray) -> np.ndarray:
        """Descriptor of one RGB face crop of size crop_size: HOG then LBP, as configured."""
        grey = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
        parts = []
        for name in self.config.descriptors:
            if name == "hog":
                parts.append(self.hog.compute(grey).ravel())
            else:
                parts.append(lbp_histograms(grey, self.config.lbp_grid))
        return np.concatenate(parts).astype(np.float32)

    def extract_one(self, utt: Utterance) -> np.ndarray:
        faces = face_crops(utt, self.config, self.detector, self.config.crop_size)
        return pool(np.stack([self.describe(c) for c in faces.crops]), self.config.pooling)

    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        out: list[np.ndarray | ItemError] = []
        for utt in items:
            try:
                out.append(self.extract_one(utt))
            except ItemError as err:
                out.append(err)
        return out

    def provenance(self) -> dict[str, Any]:
        from mmemolr.store.h5 import library_versions

        return {
            "model_id": "hoglbp",
            "crop_dim": self.crop_dim(),
            "cascade": self.detector.path.name,
            "cascade_sha256": sha256_files(self.detector.path),
            "versions": {**library_versions("opencv-python"), "opencv": cv2.__version__},
        }
