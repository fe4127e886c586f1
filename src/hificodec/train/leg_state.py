"""Training state that outlives a GPU leg: the discriminator, Adam's moments (compressed) and the schedule's
position, in one small safetensors file (`leg-state.safetensors`) next to the exported generator.

What can travel decides what is kept. A leg returns at most 8 files and 64 MiB and the next one takes at
most 64 MiB with it, tree and data included. Adam's full moments of the 12.7 M-parameter generator are
48 MiB even in bf16 (exp_avg and exp_avg_sq, 2 bytes each), more than either direction leaves (the next
leg's data already shares 64 MiB with a tree holding the shipped models), so for every tensor of 2+
dimensions and at least `FACTOR_MIN` elements (smaller ones keep both moments whole, in float32):

- the second moment (`exp_avg_sq`, the per-weight gradient scale that sets each step's size) is kept
  *factored*, as Adafactor stores it (Shazeer & Stern 2018, "Adafactor: Adaptive Learning Rates with
  Sublinear Memory Cost", sec. 3): the row and column sums of the tensor viewed as [shape[0], rest], read
  back as their rank-1 product r c^T / sum(r), the I-divergence-optimal rank-1 fit of a non-negative
  matrix (with what stays whole, 0.34 MiB for the shipped generator);
- the first moment (`exp_avg`, the momentum) is kept as its signs (1 bit per weight)
  and each row's mean magnitude, as 1-bit Adam compresses it (Tang et al. 2021, "1-bit Adam:
  Communication Efficient Large-Scale Training with Adam's Convergence Speed", sec. 3): 1.5 MiB for the
  shipped generator. Starting it at zero instead costs the next leg its first steps (a spike in the loss
  while beta1 0.8 refills it; measured in docs/gpu.md);
- each parameter's Adam step count is kept (bias corrections stay those of a long run, so no warm-up);
- the schedule's position in steps at the recipe's own batch (`schedule_steps`): a leg at a larger batch
  converts it (`hificodec.train.leg.BatchScaling`), so successive legs follow one schedule.

The shipped generator's and discriminator's state, with the discriminator's float16 weights: 2.4 MiB.
docs/gpu.md compares, on a tiny model, two legs carrying this state with one uninterrupted run, two legs
carrying the exact moments and two legs starting Adam afresh (`bench/leg_resume.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..errors import CheckpointError
from ..files import read_safetensors

STATE_FILE = "leg-state.safetensors"
FORMAT = "hificodec-leg-state"
VERSION = 1
FACTOR_MIN = 1024  # tensors of 2+ dims with at least this many elements keep a factored second moment
DISC_PREFIX = "discriminator."
ADAM_PREFIX = "adam."


@dataclass
class LegCounters:
    """Where the training chain stands: carried from leg to leg with the moments."""

    schedule_steps: float = 0.0  # the learning-rate schedule's position, in steps at `base_batch`
    base_batch: int = 0  # the recipe's batch size, the schedule's unit
    clips: int = 0  # training clips seen by the legs that carried this state
    legs: list[int] = field(default_factory=list)  # the legs that trained it, in order


def adam_tensors(optimizer: torch.optim.Optimizer, module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The compact Adam state of `optimizer` over `module`'s parameters, named `prefix` + parameter name:
    `.step`, and `.v` (whole) or `.v_rows` and `.v_cols` (factored)."""
    names = {id(p): name for name, p in module.named_parameters()}
    out: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p)
            if not state or "exp_avg_sq" not in state or id(p) not in names:
                continue
            key = prefix + names[id(p)]
            v = state["exp_avg_sq"].detach().float().cpu()
            m = state["exp_avg"].detach().float().cpu()
            out[key + ".step"] = torch.tensor(float(state["step"]), dtype=torch.float32)
            if factored(v):
                matrix = v.reshape(v.shape[0], -1)
                out[key + ".v_rows"] = matrix.sum(1).contiguous()
                out[key + ".v_cols"] = matrix.sum(0).contiguous()
                rows = m.reshape(m.shape[0], -1)
                out[key + ".m_scale"] = rows.abs().mean(1).contiguous()
                out[key + ".m_signs"] = pack_bits(rows.reshape(-1) >= 0)
            else:
                out[key + ".v"] = v.contiguous()
                out[key + ".m"] = m.contiguous()
    return out


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8, 8 to a byte, the first in the highest bit (`numpy.packbits`)."""
    return torch.from_numpy(np.packbits(bits.reshape(-1).cpu().numpy()))


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(packed.cpu().numpy(), count=n).astype(bool))


def factored(t: torch.Tensor) -> bool:
    return t.dim() >= 2 and t.numel() >= FACTOR_MIN


def second_moment(tensors: dict[str, torch.Tensor], key: str, shape: torch.Size) -> torch.Tensor | None:
    """`exp_avg_sq` read back from what `adam_tensors` kept (None when the file holds none for `key`)."""
    if key + ".v" in tensors:
        v = tensors[key + ".v"]
    elif key + ".v_rows" in tensors and key + ".v_cols" in tensors:
        rows, cols = tensors[key + ".v_rows"].double(), tensors[key + ".v_cols"].double()
        v = (torch.outer(rows, cols) / rows.sum().clamp(min=1e-300)).float()
    else:
        return None
    return _shaped(v, key, "second moments", shape)


def first_moment(tensors: dict[str, torch.Tensor], key: str, shape: torch.Size) -> torch.Tensor | None:
    """`exp_avg` read back: whole, or its signs times its row's mean magnitude (None when not kept)."""
    if key + ".m" in tensors:
        m = tensors[key + ".m"]
    elif key + ".m_signs" in tensors and key + ".m_scale" in tensors:
        scale = tensors[key + ".m_scale"]
        signs = unpack_bits(tensors[key + ".m_signs"], shape.numel()).float().mul_(2).sub_(1)
        m = signs.reshape(scale.numel(), -1) * scale[:, None]
    else:
        return None
    return _shaped(m, key, "first moments", shape)


def _shaped(values: torch.Tensor, key: str, what: str, shape: torch.Size) -> torch.Tensor:
    """`values` read back for parameter `key`, reshaped to it; a clear error when their count differs."""
    if values.numel() != shape.numel():
        raise CheckpointError(f"leg state: '{key}' holds {values.numel()} {what} for a tensor of shape "
                              f"{tuple(shape)}")
    return values.reshape(shape)


def load_adam(
    optimizer: torch.optim.Optimizer, module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str,
    full: dict[str, dict[str, torch.Tensor]] | None = None, first_moments: bool = True,
) -> dict[str, int]:
    """Give `optimizer` the carried moments of `module`'s parameters (rebuilt where they were compressed) and
    step counts. `full` (parameter name -> Adam's own state) restores exact moments instead (the measurement
    in docs/gpu.md); `first_moments=False` starts the momentum at zero. Returns counts of restored and
    missing tensors."""
    names = {id(p): name for name, p in module.named_parameters()}
    saved = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    index, restored, missing = 0, 0, 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            name = names.get(id(p))
            key = prefix + (name or "")
            if full is not None and name in full:
                state[index] = {k: v.clone() for k, v in full[name].items()}
                restored += 1
            elif name is not None and key + ".step" in tensors:
                v = second_moment(tensors, key, p.shape)
                assert v is not None, key
                m = first_moment(tensors, key, p.shape) if first_moments else None
                state[index] = {"step": tensors[key + ".step"].clone().reshape(()),
                                "exp_avg": torch.zeros_like(p) if m is None else m.to(device=p.device, dtype=p.dtype),
                                "exp_avg_sq": v.to(device=p.device, dtype=p.dtype)}
                restored += 1
            else:
                missing += 1
            index += 1
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    return {"restored": restored, "missing": missing}


def full_adam(optimizer: torch.optim.Optimizer, module: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Adam's exact state by parameter name (copies): what `load_adam(full=...)` restores."""
    names = {id(p): name for name, p in module.named_parameters()}
    return {names[id(p)]: {k: v.detach().clone() for k, v in optimizer.state[p].items()}
            for group in optimizer.param_groups for p in group["params"]
            if optimizer.state.get(p) and id(p) in names}


def write_leg_state(
    path: Path, *, generator_digest: str, counters: LegCounters, optimizers: Iterable[tuple[str, Any, Any]],
    discriminator: torch.nn.Module | None = None, discriminators: dict[str, Any] | None = None,
) -> Path:
    """Write the state file: the discriminator's weights (float16), the compact Adam state of each
    (name, optimizer, module), the counters, and the digest of the generator weights it belongs to."""
    tensors: dict[str, torch.Tensor] = {}
    if discriminator is not None:
        for name, t in discriminator.state_dict().items():
            t = t.detach().cpu()
            tensors[DISC_PREFIX + name] = (t.half() if t.is_floating_point() else t).contiguous()
    for name, optimizer, module in optimizers:
        if optimizer is not None and module is not None:
            tensors.update(adam_tensors(optimizer, module, f"{ADAM_PREFIX}{name}."))
    metadata = {
        "format": FORMAT, "version": str(VERSION), "generator_weights": generator_digest,
        "counters": json.dumps(asdict(counters)), "discriminators": json.dumps(discriminators or {}),
    }
    save_file(tensors, str(path), metadata=metadata)
    return path


@dataclass
class LegState:
    path: Path
    tensors: dict[str, torch.Tensor]
    generator_digest: str
    counters: LegCounters
    discriminators: dict[str, Any]

    def discriminator_weights(self) -> dict[str, torch.Tensor]:
        return {k[len(DISC_PREFIX):]: v for k, v in self.tensors.items() if k.startswith(DISC_PREFIX)}

    def restore(self, name: str, optimizer: torch.optim.Optimizer | None, module: torch.nn.Module | None,
                first_moments: bool = True) -> dict[str, int]:
        if optimizer is None or module is None:
            return {"restored": 0, "missing": 0}
        return load_adam(optimizer, module, self.tensors, f"{ADAM_PREFIX}{name}.", first_moments=first_moments)


def read_leg_state(path: Path) -> LegState:
    try:
        meta, tensors = read_safetensors(path, framework="pt")
    except ValueError as e:
        raise CheckpointError(f"{path}: unreadable leg state ({e})") from None
    if meta.get("format") != FORMAT or meta.get("version") != str(VERSION):
        raise CheckpointError(f"{path}: not a leg state of version {VERSION} (format {meta.get('format')!r}, "
                              f"version {meta.get('version')!r})")
    counters = LegCounters(**json.loads(meta.get("counters", "{}")))
    return LegState(Path(path), tensors, meta.get("generator_weights", ""), counters,
                    json.loads(meta.get("discriminators", "{}")))


def fp16_weights_digest(module: torch.nn.Module) -> str:
    """The `hificodec.weights_hash` of `module` once written in float16 and read back: what a model
    loaded from the leg's export reports, so the state can be matched with the weights it belongs to."""
    from ..releases import weights_digest

    state = {k: (v.detach().cpu().half().float() if v.is_floating_point() else v.detach().cpu())
             for k, v in module.state_dict().items()}
    return weights_digest(state)
