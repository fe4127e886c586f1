"""Model checkpoints: `model.safetensors` + `config.yaml`. No pickle anywhere.

A checkpoint directory holds the generator's weights (safetensors; fp16 storage allowed) and the
full model config with a format version. Loading checks every tensor's name and shape against the
model the config builds, and names the first mismatch.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .audio import atomic_directory
from .config import dump_config, load_config, parse_yaml
from .errors import CheckpointError, HificodecError
from .models import Codec, CodecModel

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"


def build(preset: str | os.PathLike | dict[str, Any]) -> CodecModel:
    """An untrained model from a preset name, a YAML path, or a config dict."""
    config = dict(preset) if isinstance(preset, dict) else load_config(preset)
    config.pop("format_version", None)
    return Codec(config)


def pretrained_dir() -> Path:
    return Path(str(resources.files("hificodec") / "pretrained"))


def list_models() -> list[str]:
    """Names of the trained models shipped inside the package."""
    root = pretrained_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / WEIGHTS_FILE).is_file())


def save(model: CodecModel, directory: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
    """Write `model.safetensors` + `config.yaml` into `directory` atomically (temp dir, then rename).

    `dtype=torch.float16` stores floating-point weights at half size (they load back as float32).
    """
    out = Path(directory)
    state = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[name] = t.contiguous()
    config = {"format_version": FORMAT_VERSION, **model.config}
    with atomic_directory(out) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        (tmp / CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")
    return out


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = pretrained_dir() / str(name_or_path)
    if (shipped / WEIGHTS_FILE).is_file():
        return shipped
    names = ", ".join(list_models()) or "none installed"
    raise CheckpointError(f"'{name_or_path}' is neither a checkpoint directory nor a shipped model ({names})")


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
    try:
        config = parse_yaml(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise CheckpointError(f"{config_path}: invalid YAML ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a mapping")
    version = config.pop("format_version", None)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: checkpoint format version {version}, this hificodec reads {FORMAT_VERSION}"
        )
    try:
        model = Codec(config)
    except HificodecError as e:
        raise CheckpointError(f"{config_path}: {e}") from None
    load_state_into(model, load_state(directory / WEIGHTS_FILE), str(directory))
    model.eval()
    setattr(model, "_weights_hash", weights_hash(model))  # noqa: B010 - nn.Module attribute, not a field
    return model.to(device)


def weights_hash(model: torch.nn.Module) -> str:
    """A stable 16-hex-digit digest of the weights (names, shapes, float32 values).

    Stored in bitstreams to tell which model made a file. Cached by `load` for shipped models.
    """
    cached = getattr(model, "_weights_hash", None)
    if cached is not None:
        return str(cached)
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu()
        if t.is_floating_point():
            t = t.float()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
