"""Neural codec systems under evaluation: a loaded (or untrained preset) model at one bandwidth."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..bitstream import DEFAULT_GROUP_FRAMES
from ..entropy import EntropyTables
from ..errors import HificodecError
from ..identity import resolve
from ..models import CodecModel
from .codestats import CodeStats


def coded_payload_bytes(codes: np.ndarray, tables: EntropyTables, group_frames: int = DEFAULT_GROUP_FRAMES) -> int:
    """Bytes codes [channels, n_q, frames] take entropy-coded in .hfc groups of `group_frames` frames (what
    `hificodec info` calls the payload: no header, group lengths or checksums)."""
    return sum(len(tables.encode(codes[:, :, i : i + group_frames])) for i in range(0, codes.shape[-1], group_frames))


@dataclass
class ModelRun:
    audio: np.ndarray  # decoded, at the model's rate, same length as the input
    bits: int  # bits the codes take at the model's fixed rate
    encode_seconds: float
    decode_seconds: float
    #: bits the codes take entropy-coded as a .hfc file stores them (None: the model has no tables)
    coded_bits: int | None = None


@dataclass
class ModelSystem:
    """One model at one bandwidth (models are shared between bandwidths; the rate is set per call)."""

    name: str
    model: CodecModel
    source: str  # shipped name, checkpoint dir, or "preset NAME (untrained)"
    num_codebooks: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    stats: CodeStats = field(init=False)
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    audio_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.stats = CodeStats(self.model.codebook_size)
        # the model's own entropy tables, as `hificodec encode` codes with them by default (none: packed)
        self.tables = resolve(self.model).tables

    @property
    def sample_rate(self) -> int:
        return int(self.model.sample_rate)

    @property
    def nominal_kbps(self) -> float:
        return self.model.frame_rate * self.num_codebooks * self.model.bits_per_code / 1000

    def warm_up(self) -> None:
        """One untimed pass so that first-call allocation does not count in the real-time factor."""
        self.model.set_num_codebooks(self.num_codebooks)
        with torch.inference_mode():
            wav = torch.zeros(1, 1, self.sample_rate // 2, device=self.device)
            self.model.decode(self.model.encode(wav), length=wav.shape[-1])

    def run(self, audio: np.ndarray) -> ModelRun:
        """Encode and decode mono audio at the model's rate; updates code statistics and timings."""
        self.model.set_num_codebooks(self.num_codebooks)
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).reshape(1, 1, -1).to(self.device)
        with torch.inference_mode():
            t0 = _now(self.device)
            codes = self.model.encode(wav)
            t1 = _now(self.device)
            out = self.model.decode(codes, length=wav.shape[-1])
            t2 = _now(self.device)
        self.stats.update(codes)
        self.encode_seconds += t1 - t0
        self.decode_seconds += t2 - t1
        self.audio_seconds += wav.shape[-1] / self.sample_rate
        bits = int(codes.shape[1] * codes.shape[2] * self.model.bits_per_code)
        coded = None if self.tables is None else 8 * coded_payload_bytes(codes.cpu().numpy(), self.tables)
        return ModelRun(out.reshape(-1).float().cpu().numpy(), bits, t1 - t0, t2 - t1, coded)

    def summary(self) -> dict:
        s = self.stats
        total = self.encode_seconds + self.decode_seconds
        return {
            "source": self.source,
            "model_name": self.model.name,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "sample_rate": self.sample_rate,
            "frame_rate": self.model.frame_rate,
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.model.codebook_size,
            "nominal_kbps": self.nominal_kbps,
            "entropy_tables": None if self.tables is None else self.tables.id,
            "codebook_usage": s.usage,
            "codebook_entropy_bits": s.entropy_bits,
            "entropy_kbps": s.entropy_kbps(self.model.frame_rate),
            "rtf_encode": _ratio(self.audio_seconds, self.encode_seconds),
            "rtf_decode": _ratio(self.audio_seconds, self.decode_seconds),
            "rtf": _ratio(self.audio_seconds, total),
            "device": str(self.device),
            "threads": torch.get_num_threads(),
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _now(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def load_systems(
    models: list[str],
    presets: list[str],
    bandwidths: list[float],
    device: str | torch.device = "cpu",
) -> list[ModelSystem]:
    """Systems for every (model, bandwidth); no bandwidths = each model's current codebook count."""
    import hificodec

    dev = torch.device(device)
    loaded: list[tuple[str, str, CodecModel]] = []
    for m in models:
        model = hificodec.load(m, device=dev)
        label = Path(m).name if os.path.isdir(m) else str(m)
        loaded.append((label, str(m), model))
    for p in presets:
        model = hificodec.build(p).to(dev).eval()
        loaded.append((f"{Path(p).stem}-untrained", f"preset {p} (untrained)", model))
    systems: list[ModelSystem] = []
    for label, source, model in loaded:
        for n_q, suffix in _codebook_choices(model, bandwidths):
            systems.append(ModelSystem(label + suffix, model, source, n_q, device=dev))
    return _unique_names(systems)


def _codebook_choices(model: CodecModel, bandwidths: list[float]) -> list[tuple[int, str]]:
    if not bandwidths:
        return [(model.num_codebooks, "")]
    out = []
    for kbps in bandwidths:
        try:
            model.set_target_bandwidth(kbps)
        except ValueError as e:
            raise HificodecError(str(e)) from None
        out.append((model.num_codebooks, f"@{model.bitrate / 1000:g}k"))
    return list(dict.fromkeys(out))  # two bandwidths mapping to the same codebook count: once


def _unique_names(systems: list[ModelSystem]) -> list[ModelSystem]:
    seen: dict[str, int] = {}
    for s in systems:
        if s.name in seen:
            seen[s.name] += 1
            s.name = f"{s.name}#{seen[s.name]}"
        else:
            seen[s.name] = 1
    return systems
