"""Model releases: each shipped model is a numbered release (`hificodec-16k@5`); the bare name means the
newest installed one.

A release is identified by its model hash, a digest of the model's config *and* weights, so two models
that decode the same codes differently never share an identity. The hash is computed from a folder's
files as stored (`content_hash`), which is what `.hfc` headers and token folders carry.

`pretrained/releases.json` lists every release of every shipped model, installed or not: its number,
date, hash, how it was made and its scores. Only the newest release of a model ships in the package
(a folder under `pretrained/` named after the model); earlier ones are listed so that a file made by
one of them fails with a message naming the release it needs, instead of decoding to noise.

Releases made before release ids existed wrote a weights-only digest (`legacy_hash`) into their files;
the index keeps it so those files are still recognised.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

INDEX_FILE = "releases.json"
SEPARATOR = "@"
#: config keys that describe how a folder was saved, not what the model computes
NON_MODEL_KEYS = ("format_version", "active_codebooks")


@dataclass(frozen=True)
class Release:
    """One entry of the release index."""

    model: str
    number: int
    date: str
    model_hash: str
    legacy_hash: str | None = None
    made_by: str = ""
    summary: str = ""
    #: scores by split, e.g. {"test": {"files": 1694, "pesq_wb": 1.28, ...}}
    scores: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.model}{SEPARATOR}{self.number}"

    def hashes(self) -> tuple[str, ...]:
        """Every digest a file made by this release can carry."""
        return (self.model_hash,) if self.legacy_hash is None else (self.model_hash, self.legacy_hash)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "release": self.number, "date": self.date, "model_hash": self.model_hash,
            "made_by": self.made_by, "summary": self.summary, "scores": self.scores,
        }  # fmt: skip
        if self.legacy_hash is not None:
            out["legacy_hash"] = self.legacy_hash
        return out


def pretrained_root() -> Path:
    return Path(str(resources.files("hificodec") / "pretrained"))


def split_id(name: str) -> tuple[str, int | None]:
    """'hificodec-16k@5' -> ('hificodec-16k', 5); 'hificodec-16k' -> ('hificodec-16k', None)."""
    base, sep, number = name.partition(SEPARATOR)
    if not sep:
        return name, None
    if not number.isdigit() or int(number) < 1:
        raise CheckpointError(f"'{name}': a release is written NAME@NUMBER with a positive number (e.g. {base}@1)")
    return base, int(number)


_INDEX_CACHE: dict[tuple[str, int, int], dict[str, list[Release]]] = {}


def read_index(path: str | os.PathLike | None = None) -> dict[str, list[Release]]:
    """Releases by model name, oldest first (parsed once per version of the file: every compress and
    decode asks it which release made a hash)."""
    p = Path(path) if path is not None else pretrained_root() / INDEX_FILE
    if not p.is_file():
        return {}
    stat = p.stat()
    key = (str(p.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = _parse_index(p)
    return {model: list(releases) for model, releases in _INDEX_CACHE[key].items()}  # callers may append


def _parse_index(p: Path) -> dict[str, list[Release]]:
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        index = {
            model: sorted(
                (
                    Release(
                        model=model, number=int(e["release"]), date=str(e["date"]), model_hash=str(e["model_hash"]),
                        legacy_hash=e.get("legacy_hash"), made_by=str(e.get("made_by", "")),
                        summary=str(e.get("summary", "")), scores=dict(e.get("scores", {})),
                    )  # fmt: skip
                    for e in entries
                ),
                key=lambda r: r.number,
            )
            for model, entries in raw.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{p}: unreadable release index ({e})") from None
    return index


def write_index(index: Mapping[str, list[Release]], path: str | os.PathLike) -> None:
    """Write the index atomically (a reader never sees half of it)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    data = {model: [r.to_json() for r in sorted(rels, key=lambda r: r.number)] for model, rels in sorted(index.items())}
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)


def add_release(
    index_path: str | os.PathLike, model: str, model_hash: str, *, summary: str, made_by: str,
    scores: dict[str, dict[str, float]], date: str | None = None,
) -> Release:
    """Append release N+1 of `model` to the index at `index_path` (N: its newest listed release)."""
    import datetime

    index = read_index(index_path)
    listed = index.setdefault(model, [])
    if any(model_hash in r.hashes() for r in listed):
        raise CheckpointError(f"{model}: a release with model hash {model_hash} is already listed")
    number = max((r.number for r in listed), default=0) + 1
    day = date or datetime.date.today().isoformat()
    release = Release(model, number, day, model_hash, made_by=made_by, summary=summary, scores=scores)
    listed.append(release)
    write_index(index, index_path)
    return release


def find(model_hash: str, index: Mapping[str, list[Release]] | None = None) -> Release | None:
    """The release whose files carry `model_hash` (its current or its legacy digest), if any."""
    for releases in (read_index() if index is None else index).values():
        for r in releases:
            if model_hash in r.hashes():
                return r
    return None


def canonical_config(config: Mapping[str, Any]) -> bytes:
    """The config as the model sees it, serialised the same way whatever YAML layout it was read from."""
    kept = {k: v for k, v in config.items() if k not in NON_MODEL_KEYS}
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _hash_tensors(h: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    for name, tensor in sorted(tensors.items()):
        t = tensor.detach().cpu()
        if t.is_floating_point():
            t = t.float()  # fp16 storage and fp32 memory of the same values hash alike
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """16 hex digits over names, shapes and float32 values (the digest files carried before releases)."""
    h = hashlib.sha256()
    _hash_tensors(h, tensors)
    return h.hexdigest()[:16]


def content_hash(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str:
    """16 hex digits over the canonical config and the weights: what `.hfc` headers carry."""
    h = hashlib.sha256(b"hificodec-model\0")
    h.update(canonical_config(config))
    h.update(b"\0")
    _hash_tensors(h, tensors)
    return h.hexdigest()[:16]


def describe_hash(model_hash: str, model_name: str) -> str:
    """How an error message names the model that made a file: its release if known, else name + digest."""
    release = find(model_hash)
    if release is not None:
        return f"release {release.id}"
    name = model_name if SEPARATOR in model_name else f"'{model_name}'"
    return f"{name} (model hash {model_hash[:12]})"
