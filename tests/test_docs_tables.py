"""The tables of keys and defaults in README.md and docs/*.md are the ones the code generates
(``python -m mmemolr.docs_tables --write``), and removed keys are named only in their own table."""

from __future__ import annotations

import dataclasses
import re

from mmemolr.docs_tables import TABLES, doc_files, main, placements, regenerate, removed_keys, stale
from mmemolr.paths import REPO_ROOT


def test_every_generated_table_equals_what_the_code_generates():
    assert stale() == [], "run: python -m mmemolr.docs_tables --write"
    assert main([]) == 0


def test_every_table_is_in_the_docs_once():
    assert {name: len(files) for name, files in placements().items()} == {name: 1 for name in TABLES}


def test_a_changed_default_or_a_hand_edit_is_caught(tmp_path):
    """The check is not vacuous: a table that differs from the code is reported, and --write repairs it."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n")
    good = regenerate("<!-- generated: train-config (python -m mmemolr.docs_tables --write) -->\n"
                      "<!-- end generated: train-config -->\n")
    assert "| `optim.lr` | `0.0001` | greater than 0 |" in good
    (tmp_path / "docs" / "training.md").write_text(good.replace("`0.0001`", "`0.001`"))
    assert stale(tmp_path) == ["docs/training.md"]
    (tmp_path / "docs" / "training.md").write_text(good)
    assert stale(tmp_path) == []


def _outside_removed_table(text: str) -> str:
    return re.sub(r"<!-- generated: removed-keys .*?<!-- end generated: removed-keys -->", "", text, flags=re.S)


def test_removed_keys_are_named_only_in_the_removed_keys_table():
    """README and docs describe only the keys that exist; a removed one appears in its table, with the figure."""
    from mmemolr.model.backbones import BACKBONES, load_builtin_backbones
    from mmemolr.train.config import TrainConfig

    load_builtin_backbones()
    current = {f.name for cls in (TrainConfig, *(type(getattr(TrainConfig(), s)) for s in ("model", "target", "optim")))
               for f in dataclasses.fields(cls)}
    current |= {f.name for b in BACKBONES.values() for f in dataclasses.fields(b.Options)}
    names = []
    for key, _ in removed_keys():
        parts = key.split(".")
        names += [key, ".".join(parts[-2:])]  # model.skip; model.backbone_options.dialoguernn.listener, dialoguernn.listener
        if parts[-1] not in current:
            names.append(f"`{parts[-1]}`")  # `listener`, unless another key has the name
    found = []
    for path in doc_files():
        text = _outside_removed_table(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(REPO_ROOT)}: {name}" for name in names if name in text]
    assert found == []
