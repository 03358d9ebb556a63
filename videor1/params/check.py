"""Building a config dataclass from a params mapping, refusing what it cannot hold in one line each.

``build(cls, mapping, key)`` checks what a dataclass's fields say of themselves: unknown keys (with the nearest
known name), missing required knobs, and each value's type from the field's annotation, recursing into nested
dataclasses, lists and mappings. What only the dataclass knows (ranges, choices, rules between knobs) its own
``__post_init__`` checks with the helpers below; a ``ConfigError`` raised there names the field, and ``build``
puts the path in front of it.

Types: ``bool`` is true or false only (never 0/1 or "yes"); ``int`` a whole number (never a bool); ``float``
any number, or a string in exponent notation such as ``1e-4``: YAML 1.1 (PyYAML's dialect) reads an exponent
without a dot or without a sign as a string, so that one form is read as the number it spells. Any other string
is refused where a number is expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A knob that cannot be used: ``key`` its dotted path, ``reason`` why, ``source`` where it was read."""

    def __init__(self, key: str, reason: str, source: str = ""):
        self.key, self.reason, self.source = key, " ".join(str(reason).split()), source
        super().__init__(": ".join(part for part in (source, key, self.reason) if part))

    def under(self, prefix: str) -> ConfigError:
        return ConfigError(join(prefix, self.key), self.reason, self.source)

    def read_from(self, source: str) -> ConfigError:
        return ConfigError(self.key, self.reason, source)


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix and key and not key.startswith("[") else f"{prefix}{key}"


def close_match(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(str(name), sorted(str(k) for k in known), n=1, cutoff=0.6)
    return close[0] if close else None


def nearest(name: str, known: Iterable[str]) -> str:
    """``did you mean `x`?`` for the closest known name, else the list of known names."""
    known = sorted(str(k) for k in known)
    match = close_match(name, known)
    return f"did you mean `{match}`?" if match else f"known: {', '.join(known)}"


def unknown_knob(name: str, cls, fields: Iterable[str]) -> str:
    """Why ``name`` is refused in ``cls``, with the nearest knob: of ``cls`` itself, else one level down (a nested
    section's knob, or a mapping's known keys in ``cls.NESTED_KNOBS``), named by its path from here."""
    fields = sorted(fields)
    candidates = {f: f for f in fields}
    hints = typing.get_type_hints(cls)
    nested = {f: knobs(inner) for f in fields if (inner := section_type(hints[f])) is not None}
    nested |= getattr(cls, "NESTED_KNOBS", {})
    for section, names in nested.items():
        for sub in names:
            candidates.setdefault(sub, f"{section}.{sub}")
    match = close_match(name, candidates)
    return (
        f"unknown knob; did you mean `{candidates[match]}`?" if match else f"unknown knob; known: {', '.join(fields)}"
    )


def section_type(hint):
    """The dataclass a field holds (``X`` or ``X | None``), else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    inner = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
    return inner[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and inner else None


def knobs(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def build(cls, data, key: str = "", exclude: Iterable[str] = ()):
    """``cls(**data)`` with every value checked and converted; ``exclude``: fields that are not params knobs."""
    if not isinstance(data, Mapping):
        raise ConfigError(key, f"must be a mapping of knobs, got {data!r}")
    fields = {name: f for name, f in knobs(cls).items() if name not in set(exclude)}
    for name in data:
        if name not in fields:
            raise ConfigError(join(key, str(name)), unknown_knob(name, cls, fields))
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(join(key, name), "missing (this knob has no default)")
    hints = typing.get_type_hints(cls)
    values = {
        name: convert(hints[name], value, join(key, name), fields[name].metadata.get("exclude", ()))
        for name, value in data.items()
    }
    try:
        return cls(**values)
    except ConfigError as err:
        raise err.under(key) from None
    except ValueError as err:  # a check of a core class that does not name its field
        raise ConfigError(key, str(err)) from None


def convert(hint, value, key: str, exclude: Iterable[str] = ()):
    """``value`` as the annotation ``hint`` describes it, or ConfigError naming ``key``."""
    if hint is Any:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(arg, value, key, exclude)
            except ConfigError as err:
                errors.append(err)
        nested = [err for err in errors if err.key != key]  # a nested section's own complaint says more
        if len(errors) == 1 and nested:
            raise errors[0]
        raise ConfigError(key, f"must be {describe(hint)}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key, exclude)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"must be a list, got {value!r}")
        item = args[0] if args else Any
        return origin(convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"must be a mapping, got {value!r}")
        k_hint, v_hint = args or (Any, Any)
        return {convert(k_hint, k, key): convert(v_hint, v, join(key, str(k))) for k, v in value.items()}
    return scalar(hint, value, key)


def scalar(hint, value, key: str):
    wrong = ConfigError(key, f"must be {describe(hint)}, got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if hint is float:
        if isinstance(value, str) and EXPONENT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise wrong
        return value
    raise TypeError(f"{key}: no conversion to {hint!r}")  # a field type this module was never taught: a bug here


def describe(hint) -> str:
    if hint is type(None):
        return "null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


# ----- the checks a dataclass's __post_init__ makes -----------------------------------------------------------


def at_least(obj, bound, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value < bound:
            raise ConfigError(name, f"must be >= {bound} (got {value!r})")


def above(obj, bound, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not value > bound:
            raise ConfigError(name, f"must be > {bound} (got {value!r})")


def between(obj, low, high, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not low <= value <= high:
            raise ConfigError(name, f"must be in [{low}, {high}] (got {value!r})")


def one_of(obj, name: str, choices: Iterable) -> None:
    value, choices = getattr(obj, name), list(choices)
    if value not in choices:
        match = close_match(value, map(str, choices)) if isinstance(value, str) else None
        hint = f"; did you mean `{match}`?" if match else ""
        raise ConfigError(name, f"must be one of {', '.join(map(str, choices))} (got {value!r}){hint}")


def require(condition: bool, name: str, reason: str) -> None:
    if not condition:
        raise ConfigError(name, reason)


DTYPES = ("float32", "bfloat16", "float16")
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def device(obj, name: str = "device") -> None:
    value = getattr(obj, name)
    require(bool(DEVICE.fullmatch(value)), name, f"must be cpu, cuda or cuda:N (got {value!r})")


class Section:
    """What a section's class answers at stage start, beyond its own checks: the upstream model it reads, rules
    against that model's positions, rules that depend on this machine. Nothing, unless a section says otherwise."""

    def model_dir(self) -> str | None:
        return None

    def check_model(self, positions: int) -> None:
        """``positions``: the model's max_position_embeddings (its config.json)."""

    def check_machine(self) -> None:
        """What only this machine can tell (a GPU, a package): not part of validating the file itself."""


def attention(obj, name: str = "attn_implementation") -> None:
    """A transformers attention kernel (videor1.models.check_attention): one of the known names, and importable."""
    from ..models.loading import ATTENTION, check_attention  # transformers' model classes: only where a model runs

    one_of(obj, name, ATTENTION)
    try:
        check_attention(getattr(obj, name))
    except ValueError as err:
        raise ConfigError(name, str(err).removeprefix(f"{name}: ")) from None
