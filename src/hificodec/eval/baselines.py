"""Classical codecs as baselines, run through ffmpeg on the same files: Opus, AMR-WB, Speex, Codec2.

A baseline is written `codec:value[,value...]`, e.g. `opus:6,8,12`, `amrwb:6.6,12.65`,
`speex:q4,16` (qN = CBR quality N, a number = bitrate in kbps), `codec2:3200,1200` (codec2 mode).
The bitrate reported is measured from the encoded file's size (container overhead included), not the
nominal one. A missing ffmpeg or encoder is not an error: the baseline is skipped with a reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from ..errors import HificodecError

_FFMPEG_ENV = "HIFICODEC_FFMPEG"


@dataclass(frozen=True)
class CodecRecipe:
    """How ffmpeg encodes one classical codec."""

    encoder: str
    muxer: str
    suffix: str
    #: rate the encoder runs at (None: the input's rate, ffmpeg picks a supported one)
    sample_rate: int | None
    description: str


CODECS: dict[str, CodecRecipe] = {
    "opus": CodecRecipe("libopus", "ogg", ".ogg", None, "Opus (libopus, -application voip, VBR)"),
    "amrwb": CodecRecipe("libvo_amrwbenc", "amr", ".amr", 16000, "AMR-WB (libvo-amrwbenc)"),
    "speex": CodecRecipe("libspeex", "ogg", ".spx", 16000, "Speex wide-band (libspeex, CBR)"),
    "codec2": CodecRecipe("libcodec2", "codec2", ".c2", 8000, "Codec2 (libcodec2, 8 kHz)"),
}


@dataclass(frozen=True)
class BaselineSpec:
    codec: str
    setting: str  # "6" (kbps), "q4" (speex quality), "3200" (codec2 mode)

    @property
    def name(self) -> str:
        unit = "" if self.codec == "codec2" or self.setting.startswith("q") else "k"
        return f"{self.codec}-{self.setting}{unit}"

    @property
    def recipe(self) -> CodecRecipe:
        return CODECS[self.codec]

    def encoder_args(self) -> list[str]:
        if self.codec == "opus":
            return ["-b:a", f"{self.setting}k", "-application", "voip"]
        if self.codec == "amrwb":
            return ["-b:a", f"{float(self.setting) * 1000:.0f}"]
        if self.codec == "speex":
            if self.setting.startswith("q"):
                return ["-cbr_quality", self.setting[1:]]
            return ["-b:a", f"{self.setting}k"]
        if self.codec == "codec2":
            return ["-mode", self.setting]
        raise AssertionError(self.codec)


def parse_baselines(items: list[str]) -> list[BaselineSpec]:
    """Parse `codec:v1,v2` strings (several may be given) into specs, validating values."""
    specs: list[BaselineSpec] = []
    for item in items:
        codec, sep, values = item.partition(":")
        codec = codec.strip().lower()
        if codec not in CODECS:
            raise HificodecError(f"unknown baseline codec '{codec}' (known: {', '.join(CODECS)})")
        if not sep or not values.strip():
            raise HificodecError(f"baseline '{item}': give settings after a colon, e.g. {codec}:{_example(codec)}")
        for v in values.split(","):
            v = v.strip()
            _validate(codec, v, item)
            specs.append(BaselineSpec(codec, v))
    return specs


def _example(codec: str) -> str:
    return {"opus": "6,8,12", "amrwb": "6.6,12.65", "speex": "q4", "codec2": "3200"}[codec]


_CODEC2_MODES = ("3200", "2400", "1600", "1400", "1300", "1200", "700", "700B", "700C")
_AMRWB_RATES = (6.6, 8.85, 12.65, 14.25, 15.85, 18.25, 19.85, 23.05, 23.85)


def _validate(codec: str, v: str, item: str) -> None:
    if codec == "codec2":
        if v.upper() not in _CODEC2_MODES:
            raise HificodecError(f"baseline '{item}': codec2 mode must be one of {', '.join(_CODEC2_MODES)}")
        return
    if codec == "speex" and v.startswith("q"):
        if not (v[1:].isdigit() and 0 <= int(v[1:]) <= 10):
            raise HificodecError(f"baseline '{item}': speex quality must be q0..q10")
        return
    try:
        kbps = float(v)
    except ValueError:
        raise HificodecError(f"baseline '{item}': '{v}' is not a bitrate in kbps") from None
    if codec == "amrwb" and kbps not in _AMRWB_RATES:
        raise HificodecError(f"baseline '{item}': AMR-WB modes are {', '.join(map(str, _AMRWB_RATES))} kbps")
    if not 0.5 <= kbps <= 512:
        raise HificodecError(f"baseline '{item}': {v} kbps is out of range")


def resolve_ffmpeg(ffmpeg: str | None = None) -> str | None:
    """Path of the ffmpeg binary to use (argument, $HIFICODEC_FFMPEG, or PATH), or None if absent."""
    name = ffmpeg or os.environ.get(_FFMPEG_ENV) or "ffmpeg"
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


@functools.lru_cache(maxsize=8)
def _ffmpeg_capabilities(ffmpeg: str) -> tuple[frozenset[str], frozenset[str]]:
    """(encoders, muxers) this ffmpeg build offers."""

    def names(flag: str) -> frozenset[str]:
        out = subprocess.run([ffmpeg, "-hide_banner", flag], capture_output=True, text=True, timeout=30).stdout
        found = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and not line.startswith(" --") and parts[0] != "=":
                found.add(parts[1])
        return frozenset(found)

    return names("-encoders"), names("-muxers")


def unavailable_reason(spec: BaselineSpec, ffmpeg: str | None = None) -> str | None:
    """Why this baseline cannot run here (missing ffmpeg / encoder / muxer), or None if it can."""
    path = resolve_ffmpeg(ffmpeg)
    if path is None:
        return f"ffmpeg not found ({ffmpeg or os.environ.get(_FFMPEG_ENV) or 'ffmpeg'}): skipped {spec.name}"
    try:
        encoders, muxers = _ffmpeg_capabilities(path)
    except (OSError, subprocess.SubprocessError) as e:
        return f"{path} did not run ({e}): skipped {spec.name}"
    if spec.recipe.encoder not in encoders:
        return f"this ffmpeg has no {spec.recipe.encoder} encoder: skipped {spec.name}"
    if spec.recipe.muxer not in muxers:
        return f"this ffmpeg has no {spec.recipe.muxer} muxer: skipped {spec.name}"
    return None


@dataclass
class CodedAudio:
    """A baseline's decoded output at the input's rate, with the measured size and timings."""

    audio: np.ndarray
    sample_rate: int
    encoded_bytes: int
    encode_seconds: float
    decode_seconds: float

    def bitrate(self, duration: float) -> float:
        """Bits per second measured from the encoded file."""
        return 8.0 * self.encoded_bytes / duration


def run_baseline(audio: np.ndarray, sample_rate: int, spec: BaselineSpec, ffmpeg: str | None = None) -> CodedAudio:
    """Encode then decode mono float audio with ffmpeg; raises HificodecError if ffmpeg fails."""
    reason = unavailable_reason(spec, ffmpeg)
    if reason is not None:
        raise HificodecError(reason)
    path = resolve_ffmpeg(ffmpeg)
    assert path is not None
    recipe = spec.recipe
    pcm = np.ascontiguousarray(np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1, 1)).tobytes()
    rate_args = ["-ar", str(recipe.sample_rate)] if recipe.sample_rate else []
    with tempfile.TemporaryDirectory(prefix="hificodec-baseline-") as tmp:
        encoded = os.path.join(tmp, "coded" + recipe.suffix)
        t0 = time.perf_counter()
        _ffmpeg(
            [
                path,
                "-v",
                "error",
                "-nostdin",
                "-f",
                "f32le",
                "-ar",
                str(sample_rate),
                "-ac",
                "1",
                "-i",
                "pipe:0",
                *rate_args,
                "-c:a",
                recipe.encoder,
                *spec.encoder_args(),
                "-f",
                recipe.muxer,
                "-y",
                encoded,
            ],
            pcm,
            spec,
        )
        t1 = time.perf_counter()
        raw = _ffmpeg(
            [
                path,
                "-v",
                "error",
                "-nostdin",
                "-i",
                encoded,
                "-ac",
                "1",
                "-ar",
                str(sample_rate),
                "-f",
                "f32le",
                "pipe:1",
            ],
            None,
            spec,
        )
        t2 = time.perf_counter()
        size = os.path.getsize(encoded)
    return CodedAudio(np.frombuffer(raw, dtype=np.float32).copy(), sample_rate, size, t1 - t0, t2 - t1)


def _ffmpeg(cmd: list[str], stdin: bytes | None, spec: BaselineSpec) -> bytes:
    proc = subprocess.run(cmd, input=stdin if stdin is not None else b"", capture_output=True, timeout=600)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise HificodecError(f"ffmpeg failed for {spec.name}: {msg[-1] if msg else f'exit {proc.returncode}'}")
    return proc.stdout
