"""Model checkpoints: `model.safetensors` + `config.yaml`. No pickle anywhere.

A checkpoint directory holds the generator's weights (safetensors; fp16 storage allowed), the full
model config with a format version, and `checksums.sha256`: the SHA-256 of each of those files
(`sha256sum -c checksums.sha256` reads it too). Loading verifies the digest, refuses NaN or infinite
weights (naming the tensor), and checks every tensor's name and shape against the model the config
builds, naming the first mismatch.

A folder without `checksums.sha256` (saved before digests existed, or assembled by hand) still
loads, unverified; `hificodec.save(hificodec.load(DIR), DIR)` adds one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import releases
from .config import dump_config, load_config, parse_yaml
from .errors import CheckpointError, HificodecError
from .files import atomic_directory
from .models import Codec, CodecModel

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
ACTIVE_CODEBOOKS = "active_codebooks"  # config key: the codebooks in use when saved, if not all
INDEX_SUFFIX = ".index.json"  # `model.safetensors.index.json`: which shard holds which tensor
DIGEST_FILE = "checksums.sha256"


def build(preset: str | os.PathLike | dict[str, Any]) -> CodecModel:
    """An untrained model from a preset name, a YAML path, or a config dict."""
    config = dict(preset) if isinstance(preset, dict) else load_config(preset)
    config.pop("format_version", None)
    config.pop(ACTIVE_CODEBOOKS, None)  # a saved folder's bitrate choice: `build` gives the whole architecture
    return Codec(config)


def pretrained_dir() -> Path:
    return releases.pretrained_root()


def list_models() -> list[str]:
    """Names of the trained models shipped inside the package."""
    root = pretrained_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if has_weights(p / WEIGHTS_FILE))


def save(
    model: CodecModel, directory: str | os.PathLike, dtype: torch.dtype | None = None,
    shard_mib: float | None = None,
) -> Path:
    """Write the weights + `config.yaml` into `directory` atomically (temp dir, then rename).

    `dtype=torch.float16` stores floating-point weights at half size (they load back as float32).
    `shard_mib` splits the weights into safetensors shards of at most that size, listed in
    `model.safetensors.index.json` (for transports with a per-file limit); `load` reads either form.
    """
    out = Path(directory)
    with atomic_directory(out) as tmp:
        write_model_files(model, tmp, dtype, shard_mib)
        _keep_other_files(out, tmp)
    return out


def _keep_other_files(old: Path, new: Path) -> None:
    """Carry what else a model folder holds (entropy tables, a discriminator, notes) into its new version:
    re-saving a model must not delete them. Only the old weights, config and digest are replaced."""
    if not old.is_dir():
        return
    replaced = {CONFIG_FILE, DIGEST_FILE, WEIGHTS_FILE, WEIGHTS_FILE + INDEX_SUFFIX}
    if has_weights(old / WEIGHTS_FILE):
        replaced |= {p.name for p in weight_files(old / WEIGHTS_FILE)}
    kept = []
    for entry in sorted(old.iterdir()):
        if entry.name in replaced or (new / entry.name).exists():
            continue
        if entry.is_dir():
            shutil.copytree(entry, new / entry.name)
        else:
            shutil.copy2(entry, new / entry.name)
            kept.append(new / entry.name)
    if kept:  # the digest covers every file the folder holds
        listed = read_digest(new) or {}
        write_digest(new, [new / name for name in listed] + kept)


def write_model_files(
    model: CodecModel, folder: Path, dtype: torch.dtype | None = None, shard_mib: float | None = None
) -> None:
    """The files of a model folder (weights + config + their digest), written into an existing `folder`
    as they are: callers make the folder atomic (`save`, `train.export.write_export`)."""
    files = save_weights(model, folder / WEIGHTS_FILE, dtype, shard_mib)
    config = {"format_version": FORMAT_VERSION, **model.config}
    if model.num_codebooks != model.max_codebooks:  # a chosen bitrate is part of what was saved
        config[ACTIVE_CODEBOOKS] = model.num_codebooks
    (folder / CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")
    write_digest(folder, [*files, folder / CONFIG_FILE])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_digest(folder: Path, files: Sequence[Path]) -> Path:
    """Record the SHA-256 of `files` (all directly in `folder`) in `folder/checksums.sha256`, in the
    format of `sha256sum`; computed from the files as they are on disk now."""
    lines = []
    for f in sorted(files, key=lambda p: p.name):
        if f.parent != folder:
            raise ValueError(f"{f} is not directly in {folder}")
        lines.append(f"{_sha256(f)}  {f.name}\n")
    out = folder / DIGEST_FILE
    out.write_text("".join(lines), encoding="utf-8")
    return out


def read_digest(folder: Path) -> dict[str, str] | None:
    """{file name: sha256} from `folder/checksums.sha256`, or None when the folder has none."""
    path = folder / DIGEST_FILE
    if not path.is_file():
        return None
    digest: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{folder}: unreadable {DIGEST_FILE} ({e})") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        value, _, name = line.partition("  ")
        name = name.removeprefix("*")
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value) or not name or Path(name).name != name:
            raise CheckpointError(f"{folder}: malformed line in {DIGEST_FILE}: {line[:100]!r}")
        digest[name] = value
    return digest


def verify_digest(folder: Path, needed: Sequence[Path]) -> bool:
    """Check the files `folder/checksums.sha256` lists, and that it lists every file in `needed`.

    Returns False (nothing checked) when the folder has no digest; raises CheckpointError naming the
    folder and the file when a needed one is missing or unlisted, or one is changed since the digest
    was written. A listed file that is not needed may be missing (a model folder without its entropy
    tables still loads; whoever needs the tables says they are missing).
    """
    digest = read_digest(folder)
    if digest is None:
        return False
    needed_names = {path.name for path in needed}
    for name, value in digest.items():
        path = folder / name
        if not path.is_file():
            if name not in needed_names:
                continue
            raise CheckpointError(f"{folder}: {name} is listed in {DIGEST_FILE} but missing")
        if _sha256(path) != value:
            raise CheckpointError(
                f"{folder}: {name} does not match its SHA-256 in {DIGEST_FILE}: the file is corrupt or was "
                "changed after the model was saved; download or export the model again (if you changed it "
                f"on purpose, delete {DIGEST_FILE})"
            )
    for path in needed:
        if path.name not in digest:
            raise CheckpointError(f"{folder}: {path.name} is not listed in {DIGEST_FILE} (added after the save?)")
    return True


def verify_model_files(folder: Path) -> bool:
    """`verify_digest` for what `write_model_files` writes: the config and every weights file."""
    return verify_digest(folder, [folder / CONFIG_FILE, *weight_files(folder / WEIGHTS_FILE)])


def save_weights(
    module: torch.nn.Module, path: Path, dtype: torch.dtype | None = None, shard_mib: float | None = None
) -> list[Path]:
    """A module's state as `path` (one safetensors file) or as shards `STEM-00001-of-0000N.safetensors`
    plus `path.index.json`; returns the files written."""
    state = {}
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    metadata = {"format_version": str(FORMAT_VERSION)}
    limit = None if shard_mib is None else int(shard_mib * 2**20)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if limit is not None and shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        if limit is not None and nbytes > limit:
            raise CheckpointError(f"tensor '{name}' ({nbytes / 2**20:.1f} MiB) is larger than a {shard_mib} MiB shard")
        shards[-1][name] = t
        size += nbytes
    if len(shards) == 1:  # fits one shard: one plain file
        save_file(state, str(path), metadata=metadata)
        return [path]
    stem = path.name.removesuffix(".safetensors")
    files = [path.with_name(f"{stem}-{i + 1:05d}-of-{len(shards):05d}.safetensors") for i in range(len(shards))]
    weight_map = {}
    for shard, file in zip(shards, files):
        save_file(shard, str(file), metadata=metadata)
        weight_map.update({name: file.name for name in shard})
    index = path.with_name(path.name + INDEX_SUFFIX)
    total = sum(t.numel() * t.element_size() for t in state.values())
    index.write_text(json.dumps({"metadata": {"total_size": total, **metadata}, "weight_map": weight_map}, indent=1))
    return files + [index]


def has_weights(path: Path) -> bool:
    """Whether `path` (a `.safetensors` name) exists as one file or as an index of shards."""
    return path.is_file() or path.with_name(path.name + INDEX_SUFFIX).is_file()


def weight_files(path: Path) -> list[Path]:
    """The files `load_weights(path)` reads: `path` itself, or its index and the shards it lists."""
    if path.is_file():
        return [path]
    index = path.with_name(path.name + INDEX_SUFFIX)
    return [index, *(path.parent / shard for shard in sorted(set(_weight_map(path).values())))]


def _weight_map(path: Path) -> dict[str, str]:
    index = path.with_name(path.name + INDEX_SUFFIX)
    if not index.is_file():
        raise CheckpointError(f"{path}: missing weights file (nor an index of shards, {index.name})")
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: unreadable shard index ({e})") from None
    for shard in weight_map.values():
        if not isinstance(shard, str) or Path(shard).name != shard:
            raise CheckpointError(f"{index}: shard name '{shard}' must be a file in the same folder")
    return weight_map


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read what `save_weights` wrote: `path` itself, or the shards its index lists."""
    if path.is_file():
        return load_state(path)
    index = path.with_name(path.name + INDEX_SUFFIX)
    weight_map = _weight_map(path)
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        part = load_state(path.parent / shard)
        listed = {name for name, file in weight_map.items() if file == shard}
        if set(part) != listed:
            raise CheckpointError(f"{path.parent / shard}: holds other tensors than {index.name} lists")
        state.update(part)
    return state


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint directory, a shipped model's name (its installed release) or `NAME@N` (that release,
    which must be the installed one)."""
    p = Path(name_or_path)
    if p.is_dir():
        return p
    name, number = releases.split_id(str(name_or_path))
    shipped = pretrained_dir() / name
    if has_weights(shipped / WEIGHTS_FILE):
        if number is not None:
            installed = installed_release(name)
            if installed is None or installed.number != number:
                raise CheckpointError(_not_installed(name, number, installed))
        return shipped
    names = ", ".join(list_models()) or "none installed"
    raise CheckpointError(f"'{name_or_path}' is neither a checkpoint directory nor a shipped model ({names})")


def installed_release(name: str) -> releases.Release | None:
    """The release of shipped model `name` that is installed: the index entry whose hash its files have."""
    folder = pretrained_dir() / name
    if not has_weights(folder / WEIGHTS_FILE):
        return None
    wanted = stored_model_hash(folder)
    return next((r for r in releases.read_index().get(name, []) if wanted in r.hashes()), None)


def _not_installed(name: str, number: int, installed: releases.Release | None) -> str:
    listed = {r.number: r for r in releases.read_index().get(name, [])}
    have = installed.id if installed is not None else f"'{name}' (not a listed release)"
    if number not in listed:
        known = ", ".join(f"@{n}" for n in sorted(listed)) or "none"
        return f"release {name}@{number} does not exist (releases of {name}: {known}; this hificodec ships {have})"
    r = listed[number]
    return (
        f"release {r.id} ({r.date}: {r.summary}) is not installed: this hificodec ships {have}; "
        "pass that release's model folder instead (--model DIR)"
    )


def _read_config(directory: Path) -> dict[str, Any]:
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: missing {CONFIG_FILE}")
    try:
        config = parse_yaml(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise CheckpointError(f"{config_path}: invalid YAML ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a mapping")
    return config


def stored_model_hash(directory: Path) -> str:
    """The model hash of a folder's files as stored (config + weights): a release's identity. Hashing
    the weights takes a while, so a hash is kept for as long as the files it was computed from
    (`load` records the one it computes)."""
    key = _files_key(directory)
    if key not in _STORED_HASHES:
        _STORED_HASHES[key] = releases.content_hash(_read_config(directory), load_weights(directory / WEIGHTS_FILE))
    return _STORED_HASHES[key]


_STORED_HASHES: dict[tuple, str] = {}


def _files_key(directory: Path) -> tuple:
    """The identity of a model folder's config and weight files as they are on disk now."""
    files = [directory / CONFIG_FILE, *weight_files(directory / WEIGHTS_FILE)]
    # a missing file is in the key too: reading the folder then fails with its own clear error
    return tuple((str(f.resolve()), *((f.stat().st_mtime_ns, f.stat().st_size) if f.is_file() else ())) for f in files)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file with a clear error for missing, truncated or corrupt files."""
    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({e})") from None


def load_state_into(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: str, skip: Sequence[str] = ()
) -> None:
    """Copy `state` into `module`, failing on the first missing, unexpected or mis-shaped tensor.

    skip: name prefixes (e.g. "decoder.head.") left as they are in `module` and ignored in `state`.
    """
    def kept(name: str) -> bool:
        return not any(name.startswith(prefix) for prefix in skip)

    expected = {k: v for k, v in module.state_dict().items() if kept(k)}
    state = {k: v for k, v in state.items() if kept(k)}
    for name, tensor in state.items():
        # corrupt bytes often decode as NaN or inf, which would silently turn every output into noise
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{source}: tensor '{name}' holds {bad} NaN or infinite values (corrupt weights)")
    for name, target in expected.items():
        if name not in state:
            raise CheckpointError(f"{source}: tensor '{name}' is missing from the checkpoint")
        if tuple(state[name].shape) != tuple(target.shape):
            raise CheckpointError(
                f"{source}: tensor '{name}' has shape {tuple(state[name].shape)} in the checkpoint, "
                f"the model expects {tuple(target.shape)}"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{source}: unexpected tensor '{unexpected[0]}' (config and weights do not match)")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=not skip)


def load(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> CodecModel:
    """Load a shipped model by name or a checkpoint directory by path; returns it in eval mode."""
    directory = resolve_model_dir(name_or_path)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: missing {CONFIG_FILE}")
    verify_model_files(directory)
    key = _files_key(directory)
    config = _read_config(directory)
    tensors = load_weights(directory / WEIGHTS_FILE)
    if key not in _STORED_HASHES:
        _STORED_HASHES[key] = releases.content_hash(config, tensors)
    stored_hash = _STORED_HASHES[key]
    version = config.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: checkpoint format version {version}, this hificodec reads {FORMAT_VERSION}"
        )
    active = config.pop(ACTIVE_CODEBOOKS, None)
    try:
        model = Codec(config)
        if active is not None:
            model.set_num_codebooks(int(active))
    except (HificodecError, ValueError, TypeError) as e:
        raise CheckpointError(f"{config_path}: {e}") from None
    load_state_into(model, tensors, str(directory))
    model.eval()
    setattr(model, "_model_hash", stored_hash)  # noqa: B010 - nn.Module attribute, not a field
    setattr(model, "_model_dir", directory)  # noqa: B010 - where its own files (entropy tables) are
    release = releases.find(stored_hash)
    # a folder is a release when its files are, wherever it lives (a copy of the shipped folder included)
    model.release = release.id if release is not None and release.model == model.name else None
    model.model_dir = str(directory.resolve())  # what records of its output (tokens.json) point back to
    return model.to(device)


def model_hash(model: torch.nn.Module) -> str:
    """16 hex digits over the model's config and weights: the identity `.hfc` headers and token folders
    carry. A model from `load` keeps the hash of the files it was read from."""
    cached = getattr(model, "_model_hash", None)
    if cached is not None:
        return str(cached)
    return releases.content_hash(getattr(model, "config", {}), model.state_dict())


def model_dir(model: torch.nn.Module) -> Path | None:
    """The folder a model from `load` was read from (None for one built or trained in memory)."""
    folder = getattr(model, "_model_dir", None)
    return Path(folder) if folder is not None else None


def weights_hash(model: torch.nn.Module) -> str:
    """A stable 16-hex-digit digest of the weights alone (names, shapes, float32 values): tells whether two
    models hold the same weights. Files carry `model_hash`, which covers the config too."""
    cached = getattr(model, "_weights_hash", None)
    if cached is not None:
        return str(cached)
    return releases.weights_digest(model.state_dict())
