"""Per-modality z-normalisation with statistics of the training split only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmemolr.fileio import atomic_path
from mmemolr.store import FeatureFile


@dataclass
class ZNorm:
    """Mean and standard deviation per modality code (``"t"``, ``"a"``, ``"v"``)."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def fit(cls, files: Mapping[str, FeatureFile], train_ids: list[str]) -> ZNorm:
        """Statistics over the available rows of the training utterances (never dev or test)."""
        mean, std = {}, {}
        for code, ff in files.items():
            rows = ff.rows_for(train_ids)
            rows = rows[ff.available[rows]]
            if len(rows) == 0:
                raise ValueError(f"{ff.path}: no training utterance has a feature vector, so the "
                                 "normalisation statistics cannot be computed")
            x = ff.features[rows].astype(np.float64)
            m = x.mean(axis=0)
            s = x.std(axis=0)
            # A constant column would divide by zero; leave it centred but unscaled.
            s[s < 1e-8] = 1.0
            mean[code], std[code] = m.astype(np.float32), s.astype(np.float32)
        return cls(mean, std)

    def apply(self, code: str, features: np.ndarray, available: np.ndarray) -> np.ndarray:
        """Normalised copy; unavailable rows become exact zeros (the mask says they are missing)."""
        out = (features - self.mean[code]) / self.std[code]
        out[~available] = 0.0
        return out.astype(np.float32)

    def save(self, path: str | Path) -> None:
        arrays = {}
        for code in self.mean:
            arrays[f"{code}_mean"] = self.mean[code]
            arrays[f"{code}_std"] = self.std[code]
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ZNorm:
        with np.load(path, allow_pickle=False) as data:
            codes = sorted({k.rsplit("_", 1)[0] for k in data.files})
            return cls({c: data[f"{c}_mean"] for c in codes}, {c: data[f"{c}_std"] for c in codes})
