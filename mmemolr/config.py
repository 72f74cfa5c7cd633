"""YAML configs validated into dataclasses, with ``key=value`` overrides (torchtune style).

An unknown or mistyped key is an error naming the key and the file; values are type-checked against
the dataclass annotations (int, float, str, bool, Optional, Literal, list, dict, nested dataclasses).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def option(default: Any = dataclasses.MISSING, *, doc: str, why: str = "", range: str | None = None,
           factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its documentation: ``doc`` what it does, ``why`` the measurement (or the
    experiment) that keeps it a key, ``range`` the allowed values of a number in interval notation
    (:class:`Interval`; checked by :func:`check_ranges` through :func:`field_ranges`). The tables of keys
    and defaults in the docs are generated from these (``python -m mmemolr.docs_tables --write``)."""
    metadata = {"doc": doc, "why": why, **({"range": range} if range is not None else {})}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Removed:
    """A key of earlier versions (in a dataclass's ``REMOVED_KEYS``): ``off`` the value that meant "off"
    (a stored config holding it still loads), ``instead`` what replaced it, ``figure`` the measurement
    that removed it."""

    off: Any
    instead: str
    figure: str


def field_ranges(cls: type, prefix: str = "") -> dict[str, str]:
    """Dotted key -> interval of every field of dataclass ``cls`` (recursively) declared with a range."""
    hints = get_type_hints(cls)
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(field_ranges(hints[f.name], f"{prefix}{f.name}."))
        elif "range" in f.metadata:
            out[f"{prefix}{f.name}"] = f.metadata["range"]
    return out


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (YAML would keep only the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.hidden=200"]`` -> nested dict; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=0.001)")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, checking every key and value type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    data = _drop_removed(cls, data, where)
    unknown = [k for k in data if k not in fields]
    if unknown:
        import difflib

        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean {_join(where, close[0])!r}?)" if close else f"; valid keys: {', '.join(fields)}"
        raise ConfigError(f"{where}: unknown key {_join(where, key)!r}{hint}")
    kwargs = {name: _coerce(hints[name], value, _join(where, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _drop_removed(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Keys a class lists in ``REMOVED_KEYS`` (name -> :class:`Removed`): dropped when a stored config
    holds them at their "off" value (older run folders still load), an error naming the key and what
    replaced it otherwise."""
    removed: dict[str, Removed] = getattr(cls, "REMOVED_KEYS", {})
    kept = {}
    for key, value in data.items():
        if key not in removed:
            kept[key] = value
        elif value != removed[key].off:
            raise ConfigError(f"{where}: {_join(where, key)}={value!r} was removed ({removed[key].figure}); "
                              f"{removed[key].instead}; drop the key")
    return kept


def _join(where: str, key: str) -> str:
    """The full key path (``optim.lr``); ``where`` names a file or a thing ("extractor x") at the top."""
    top = where in ("config", "") or where.endswith((".yaml", ".yml")) or " " in where
    return key if top else f"{where}.{key}"


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if isinstance(value, str):  # "t,a,v" on the command line
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        items = [_coerce(args[0], v, f"{where}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


@dataclass(frozen=True)
class Interval:
    """Allowed values of a numeric key in interval notation: ``"[0, 1)"``, ``"(0, inf)"``, ``"[1, inf)"``."""

    spec: str

    def bounds(self) -> tuple[bool, float, float, bool]:
        """(low is included, low, high, high is included)."""
        match = _INTERVAL.fullmatch(self.spec)
        if not match:
            raise ValueError(f"bad interval {self.spec!r}; write e.g. [0, 1) or (0, inf)")
        return match.group(1) == "[", float(match.group(2)), float(match.group(3)), match.group(4) == "]"

    def __contains__(self, value: float) -> bool:
        closed_low, low, high, closed_high = self.bounds()
        return (value >= low if closed_low else value > low) and (value <= high if closed_high else value < high)

    def describe(self) -> str:
        closed_low, low, high, _ = self.bounds()
        if math.isinf(high) and not math.isinf(low):
            return f"{'at least' if closed_low else 'greater than'} {_num(low)}"
        return f"in {self.spec}"


_INTERVAL = re.compile(r"\s*([\[(])\s*([-+]?(?:inf|[0-9.e+-]+))\s*,\s*([-+]?(?:inf|[0-9.e+-]+))\s*([\])])\s*")


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def check_ranges(obj: Any, ranges: dict[str, str], prefix: str = "") -> list[str]:
    """Problems with the numeric values of dataclass ``obj`` (recursively): every int or float must be
    finite, and inside its interval when ``ranges`` (dotted key -> interval) names it. ``None`` (an
    optional key switched off) is always allowed. Each problem names the key."""
    problems = []
    for f in dataclasses.fields(obj):
        key, value = f"{prefix}{f.name}", getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            problems += check_ranges(value, ranges, f"{key}.")
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        interval = Interval(ranges[key]) if key in ranges else None
        if not math.isfinite(value):
            problems.append(f"{key} must be a finite number, got {value}")
        elif interval is not None and value not in interval:
            problems.append(f"{key} must be {interval.describe()}, got {value}")
    return problems


def numeric_keys(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the int and float fields of dataclass ``cls`` (recursively; Optional included)."""
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += numeric_keys(tp, f"{prefix}{f.name}.")
            continue
        args = get_args(tp) if get_origin(tp) in (Union, types.UnionType) else (tp,)
        if any(a in (int, float) for a in args):
            out.append(f"{prefix}{f.name}")
    return out


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> T:
    """``base`` <- YAML file <- ``key=value`` overrides, validated into ``cls``."""
    data: dict[str, Any] = dict(base or {})
    where = "config"
    if path is not None:
        data = deep_merge(data, load_yaml(path))
        where = str(path)
    if overrides:
        try:
            data = deep_merge(data, parse_overrides(overrides))
        except ConfigError:
            raise
    return from_dict(cls, data, where)


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
