"""Checkpoints: atomic torch.save, loaded with ``weights_only=True`` (no pickled code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mmemolr.fileio import atomic_path


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """Write through a temporary file and rename, so a kill never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged or unsafe files
        raise ValueError(f"{path}: cannot be loaded as a weights-only checkpoint ({err}); delete it to start "
                         "over") from None


# last.pt's "format": 2 since each run draws its batches by the epoch schedule and its dropout masks from its
# own generator (docs/batched.md); a last.pt of another format is refused (check_last_format).
LAST_FORMAT = 2


def check_last_format(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume a last.pt written by a version of mmemolr that drew batches or dropout masks otherwise."""
    found = checkpoint.get("format", 1)
    if found != LAST_FORMAT:
        raise ValueError(f"{path} is a checkpoint of format {found}, written by a version of mmemolr that drew "
                         f"training batches and dropout masks another way than this one (format {LAST_FORMAT}); "
                         "resuming it would mix the two in one run. Delete it to train this run again from the "
                         "start, or finish it with the version that wrote it")


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state_dict (what checkpoints hold)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
