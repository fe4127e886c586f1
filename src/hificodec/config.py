"""YAML configs with inheritance: presets (models) and recipes (training) share this loader.

A config may name a parent with `extends: NAME_OR_PATH` (a preset name, or a path relative to the
file); the child's keys are deep-merged over the parent's. `key.sub=value` overrides (from the
command line) are parsed as YAML scalars and applied last.
"""

from __future__ import annotations

import copy
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PRESET_SUFFIX = ".yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `3e-4` and `1e5` as floats (YAML 1.1 wants a dot: `3.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """yaml.safe_load with scientific-notation floats."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def preset_dir() -> Path:
    return Path(str(resources.files("hificodec") / "presets"))


def list_presets(include_hidden: bool = False) -> list[str]:
    """Names of the shipped presets (files starting with '_' are bases, hidden unless asked)."""
    names = sorted(p.stem for p in preset_dir().glob(f"*{PRESET_SUFFIX}"))
    return names if include_hidden else [n for n in names if not n.startswith("_")]


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _resolve(name_or_path: str | os.PathLike, relative_to: Path | None) -> Path:
    s = str(name_or_path)
    candidates = []
    if relative_to is not None:
        candidates.append(relative_to / s)
    candidates.append(Path(s))
    if not s.endswith((".yaml", ".yml")):
        candidates.append(preset_dir() / f"{s}{PRESET_SUFFIX}")
    for c in candidates:
        if c.is_file():
            return c
    known = ", ".join(list_presets())
    raise ConfigError(f"unknown preset or missing config file '{s}' (presets: {known})")


def load_config(
    name_or_path: str | os.PathLike, _seen: tuple[Path, ...] = (), file_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Load a preset/recipe by name or path, resolving `extends` chains.

    `file_keys`: top-level keys whose value, when a relative YAML path, names a file next to the config
    that sets it (a recipe's `model: ../presets/x.yaml`); it is made absolute so that it still holds
    once merged into a child in another folder.
    """
    path = _resolve(name_or_path, _seen[-1].parent if _seen else None).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    for key in file_keys:
        value = data.get(key)
        if isinstance(value, str) and value.endswith((".yaml", ".yml")) and not Path(value).is_absolute():
            data[key] = str((path.parent / value).resolve())
    parent = data.pop("extends", None)
    if parent is not None:
        data = deep_merge(load_config(parent, _seen + (path,), file_keys), data)
    return data


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings; values are parsed as YAML (numbers, lists, booleans)."""
    out = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            value = parse_yaml(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def dump_config(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)
