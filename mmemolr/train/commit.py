"""One epoch of a batched group, committed as one unit across its runs' folders (docs/batched.md).

After an epoch every run of a group (mmemolr.train.batched) has a new state (weights, optimiser, generators,
history) and maybe a new best.pt. Written one run after another, a kill between two runs' writes would
leave the runs at different epochs. So a group writes an epoch in two phases:

1. every run writes ``next.pt``: its new last.pt, with the new best weights if the epoch improved and the
   commit record (a token naming this epoch of this group, and the folders of all its runs);
2. once every run's next.pt is on disk (the commit point), every run applies its own: best.pt, metrics,
   then next.pt renamed to last.pt (atomic; last.pt keeps the token).

:func:`settle` runs before a run folder is resumed, by a group or alone (``mmemolr train``), and
finishes or undoes the epoch a kill interrupted: when every member holds the token (in next.pt, or in
last.pt once applied) phase 1 was complete and the members' next.pt are applied; otherwise the kill came
during phase 1 and they are deleted. Either way every run of the group is at the same epoch again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from mmemolr.fileio import remove_stale_temporaries
from mmemolr.train import rundir
from mmemolr.train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


def write_next(run_dir: Path, last: dict[str, Any], best: dict[str, torch.Tensor] | None, token: str,
               members: list[str]) -> None:
    """Phase 1 for one run: its next.pt (``last`` as last.pt holds it, ``best`` the weights of a new best epoch)."""
    save_checkpoint({**last, "commit": {"token": token, "members": members, "best": best}}, run_dir / rundir.NEXT)


def apply_next(run_dir: Path, best: dict[str, torch.Tensor] | None, history: list[dict[str, Any]]) -> None:
    """Phase 2 for one run: best.pt (when the epoch improved), metrics, next.pt -> last.pt."""
    if best is not None:
        save_checkpoint(best, run_dir / rundir.BEST)
    rundir.write_metrics(run_dir, history)
    os.replace(run_dir / rundir.NEXT, run_dir / rundir.LAST)


def settle(run_dir: Path) -> None:
    """Finish (every member holds the token) or undo (not all do) the commit that left ``run_dir/next.pt``."""
    path = Path(run_dir) / rundir.NEXT
    if not path.exists():
        return
    token, members = _record(path)
    folders = [Path(m) for m in members]
    committed = all(_holds(folder, token) for folder in folders)
    if Path(run_dir).resolve() not in [f.resolve() for f in folders]:
        committed = False  # moved since: the others cannot be checked
        folders.append(Path(run_dir))
    for folder in folders:
        pending = folder / rundir.NEXT
        if not pending.exists() or _record(pending)[0] != token:
            continue
        remove_stale_temporaries(folder)
        if committed:
            saved = load_checkpoint(pending)
            apply_next(folder, saved["commit"]["best"], saved["state"]["history"])
        else:
            pending.unlink()
    log.info("%s: %s the group epoch a kill interrupted (%d runs)", run_dir,
             "finished" if committed else "undid", len(members))


def _record(path: Path) -> tuple[str, list[str]]:
    commit = load_checkpoint(path).get("commit") or {}
    return commit.get("token", ""), list(commit.get("members", []))


def _holds(folder: Path, token: str) -> bool:
    for name in (rundir.NEXT, rundir.LAST):
        if (folder / name).exists() and _record(folder / name)[0] == token:
            return True
    return False
