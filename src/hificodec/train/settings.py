"""Recipe sections read into settings dataclasses: the fields are the keys, a typo or a retired key is an
error (never a silently applied default)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from ..errors import ConfigError

# settings that existed once, with why they are gone: a recipe naming one fails with this reason
RETIRED = {
    "losses.stft.log_offset": "the log-magnitude term compares log |S| (the log(|S| + c) "
    "experiment and its results are in docs/results.md)",
}


def parse_settings(cls: type, raw: Any, where: str) -> Any:
    """A settings dataclass from a recipe mapping: unknown (or retired) keys are errors, a list of
    dataclasses is parsed item by item, lists become tuples where the field is a tuple."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe: '{where}' must be a mapping")
    for key in raw:
        if f"{where}.{key}" in RETIRED:
            raise ConfigError(f"recipe: {where}.{key} was retired; {RETIRED[f'{where}.{key}']}; remove the key")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(raw) - set(names)
    if unknown:
        raise ConfigError(f"recipe: unknown key(s) {sorted(unknown)} in '{where}' (known: {', '.join(sorted(names))})")
    kw = {}
    for key, value in raw.items():
        container, item = typing.get_origin(hints[key]), (typing.get_args(hints[key]) or (None,))[0]
        if container in (list, tuple) and isinstance(value, list):
            if isinstance(item, type) and dataclasses.is_dataclass(item):
                value = [parse_settings(item, v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
            value = container(value)
        kw[key] = value
    try:
        return cls(**kw)
    except TypeError as e:
        raise ConfigError(f"recipe: bad '{where}' settings ({e})") from None
