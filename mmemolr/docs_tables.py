"""The tables of keys and defaults in README.md and docs/*.md, generated from the code so they cannot drift.

  python -m mmemolr.docs_tables            # check: exit 1 naming every table that differs from the code
  python -m mmemolr.docs_tables --write    # rewrite them

Every row comes from a dataclass field declared with :func:`mmemolr.config.option` (its default, the
allowed values from its type and ``range``, its ``doc`` and ``why``) or from a ``REMOVED_KEYS`` entry
(:class:`mmemolr.config.Removed`). A table sits between two markers in a Markdown file, e.g.

  <!-- generated: train-config (python -m mmemolr.docs_tables --write) -->
  | key | default | ... |
  <!-- end generated: train-config -->

tests/test_docs_tables.py fails when a table differs from what the code generates.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from mmemolr.config import Interval, Removed
from mmemolr.fileio import write_text_atomic
from mmemolr.paths import REPO_ROOT

BEGIN = "<!-- generated: {name} (python -m mmemolr.docs_tables --write) -->"
END = "<!-- end generated: {name} -->"
_BLOCK = re.compile(r"<!-- generated: (?P<name>[\w-]+) \(python -m mmemolr.docs_tables --write\) -->\n"
                    r"(?P<body>.*?)<!-- end generated: (?P=name) -->", re.S)


def _value(value: Any) -> str:
    """A default as YAML would write it, in backticks."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return f"`{text}`"


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _values(tp: Any, f: dataclasses.Field) -> str:
    """The allowed values of a field: its range, its choices, or nothing to say (str, dict, list)."""
    args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
    optional = type(None) in args
    args = tuple(a for a in args if a is not type(None))
    if "range" in f.metadata:
        text = Interval(f.metadata["range"]).describe()
    elif len(args) == 1 and get_origin(args[0]) is typing.Literal:
        text = "one of " + ", ".join(f"`{c}`" for c in get_args(args[0]))
    elif args == (bool,):
        text = "`true`, `false`"
    else:
        text = ""
    return f"{text}, or `null`" if optional and text else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fields(cls: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted key, field, type) of every leaf field of dataclass ``cls``, in declaration order."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, hints[f.name]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _backbone_options() -> list[tuple[str, type]]:
    from mmemolr.model.backbones import BACKBONES, load_builtin_backbones

    load_builtin_backbones()
    return [(name, cls.Options) for name, cls in BACKBONES.items() if dataclasses.fields(cls.Options)]


def train_config_table() -> str:
    from mmemolr.train.config import TrainConfig

    rows = [[f"`{key}`", _value(_default(f)), _values(tp, f), f.metadata["doc"], f.metadata["why"]]
            for key, f, tp in _fields(TrainConfig)]
    return _table(["key", "default", "values", "meaning", "why it is a key"], rows)


def backbone_options_table() -> str:
    rows = []
    for name, options in _backbone_options():
        rows += [[f"`{name}`", f"`{key}`", _value(_default(f)), _values(tp, f), f.metadata["doc"], f.metadata["why"]]
                 for key, f, tp in _fields(options)]
    return _table(["backbone", "option", "default", "values", "meaning", "why it is an option"], rows)


def removed_keys() -> list[tuple[str, Removed]]:
    """(full key, its record) of every removed key of the training config and the backbone options."""
    from mmemolr.train.config import ModelConfig, OptimConfig, TargetConfig

    sections = [("model.", ModelConfig), ("target.", TargetConfig), ("optim.", OptimConfig)]
    sections += [(f"model.backbone_options.{name}.", options) for name, options in _backbone_options()]
    return [(prefix + key, removed) for prefix, cls in sections
            for key, removed in getattr(cls, "REMOVED_KEYS", {}).items()]


def removed_keys_table() -> str:
    rows = [[f"`{key}`", _value(r.off), r.instead, r.figure] for key, r in removed_keys()]
    return _table(["removed key", "still read at", "now", "the measurement that removed it"], rows)


def extractor_options_table(cls: type) -> str:
    rows = [[f"`{key}`", _value(_default(f)), f.metadata["doc"]] for key, f, _ in _fields(cls)]
    return _table(["option", "default", "meaning"], rows)


def _transformers() -> str:
    from extractors.text_transformers import TransformersTextConfig

    return extractor_options_table(TransformersTextConfig)


def _faces() -> str:
    from extractors.faces import FaceConfig

    return extractor_options_table(FaceConfig)


TABLES: dict[str, Callable[[], str]] = {
    "train-config": train_config_table,
    "removed-keys": removed_keys_table,
    "backbone-options": backbone_options_table,
    "transformers-options": _transformers,
    "face-options": _faces,
}


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def regenerate(text: str) -> str:
    """``text`` with every generated table replaced by what the code generates now."""
    def body(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ValueError(f"unknown generated table {name!r}; known: {', '.join(TABLES)}")
        return f"{BEGIN.format(name=name)}\n{TABLES[name]()}{END.format(name=name)}"
    return _BLOCK.sub(body, text)


def placements(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Table name -> the files that hold it."""
    out: dict[str, list[str]] = {}
    for path in doc_files(root):
        for match in _BLOCK.finditer(path.read_text(encoding="utf-8")):
            out.setdefault(match["name"], []).append(str(path.relative_to(root)))
    return out


def stale(root: Path = REPO_ROOT) -> list[str]:
    """The files whose generated tables differ from the code (empty when every table is current)."""
    return [str(path.relative_to(root)) for path in doc_files(root)
            if regenerate(text := path.read_text(encoding="utf-8")) != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmemolr.docs_tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the generated tables in place")
    args = parser.parse_args(argv)
    if args.write:
        for path in doc_files():
            text = path.read_text(encoding="utf-8")
            new = regenerate(text)
            if new != text:
                write_text_atomic(path, new)
                print(f"updated {path.relative_to(REPO_ROOT)}")
        return 0
    changed = stale()
    for name in changed:
        print(f"{name}: a generated table differs from the code; run python -m mmemolr.docs_tables --write")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
