"""Report figures (matplotlib, Agg backend): rate-quality curves and spectrogram comparisons."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..files import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _family(system: dict) -> str:
    """Systems on one curve: a codec's bitrates (opus-6k, opus-8k) or a model's bandwidths (m@2k, m@4k)."""
    name = system["system"]
    return name.split("-")[0] if system["kind"] == "baseline" else name.split("@")[0]


def plot_rate_quality(summary: dict, path: str | os.PathLike) -> Path:
    """PESQ-WB and STOI against measured kbps, one curve per codec family."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    families: dict[str, list[dict]] = {}
    for s in summary["systems"]:
        if s["kbps"] is not None:
            families.setdefault(_family(s), []).append(s)
    for ax, metric, label in ((axes[0], "pesq_wb", "PESQ-WB"), (axes[1], "stoi", "STOI")):
        for fam, members in families.items():
            pts = sorted(
                (s["kbps"], s["metrics"][metric]["mean"]) for s in members if s["metrics"][metric]["mean"] is not None
            )
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            style = "--o" if members[0]["kind"] == "baseline" else "-s"
            ax.plot(xs, ys, style, label=fam)
        ax.set_xlabel("measured bitrate (kbps)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"rate vs quality — {summary['n_files']} files")
    fig.tight_layout()
    return _save(fig, path)


def _log_spectrogram(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    n_fft = 512 * max(1, sample_rate // 16000)
    hop = n_fft // 4
    x = np.pad(np.asarray(audio, dtype=np.float64), (n_fft // 2, n_fft // 2))
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    return 20 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)).T + 1e-6)


def plot_spectrograms(
    file: str, audios: dict[str, tuple[np.ndarray, int]], path: str | os.PathLike, max_seconds: float = 4.0
) -> Path:
    """Reference first, then each system, on the same time and frequency axes (first `max_seconds`)."""
    plt = _pyplot()
    n = len(audios)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.9 * n + 0.6), sharex=True, squeeze=False)
    top_hz = max(sr for _, sr in audios.values()) / 2
    for ax, (name, (audio, sr)) in zip(axes[:, 0], audios.items(), strict=True):
        clip = audio[: int(max_seconds * sr)]
        spec = _log_spectrogram(clip, sr)
        vmax = spec.max()
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=vmax - 80,
            vmax=vmax,
            extent=(0, len(clip) / sr, 0, sr / 2000),
        )
        ax.set_ylim(0, top_hz / 1000)
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(Path(file).name, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    p = Path(path)
    with atomic_output(p) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return p


def spectrogram_thumbnail(
    audio: np.ndarray,
    sample_rate: int,
    path: str | os.PathLike,
    top_hz: float | None = None,
    vmax: float | None = None,
    height: int = 96,
    px_per_second: int = 120,
) -> Path:
    """A small axis-less spectrogram PNG (0..`top_hz` bottom to top, 80 dB range below `vmax`) for
    the report's listening section; a 64-colour palette keeps it a few kB. Bands above the clip's
    Nyquist (a 16 kHz model next to a 24 kHz reference) are drawn as silence on the shared axis."""
    import matplotlib
    from PIL import Image

    spec = _log_spectrogram(audio, sample_rate)  # [bins, frames], bins up to sample_rate / 2
    top = top_hz or sample_rate / 2
    vmax = float(spec.max()) if vmax is None else vmax
    # Rows: `height` frequencies from top to bottom; columns: time, pooled to the wanted width.
    freqs = np.linspace(top, 0, height)
    bin_hz = (sample_rate / 2) / (spec.shape[0] - 1)
    rows = np.clip(np.round(freqs / bin_hz).astype(int), 0, spec.shape[0] - 1)
    img = np.where((freqs <= sample_rate / 2)[:, None], spec[rows], vmax - 80)
    width = max(1, int(round(len(audio) / sample_rate * px_per_second)))
    edges = np.linspace(0, img.shape[1], width + 1).astype(int)
    img = np.stack([img[:, a : max(b, a + 1)].max(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], 1)
    level = np.clip((img - (vmax - 80)) / 80, 0, 1)
    rgb = (matplotlib.colormaps["magma"](level)[..., :3] * 255).astype(np.uint8)
    p = Path(path)
    with atomic_output(p) as tmp:
        Image.fromarray(rgb).quantize(64).save(tmp, format="PNG", optimize=True)
    return p
