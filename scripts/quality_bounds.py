"""Oracle quality bounds: how far can a decoder get from *true* spectral information?

    python scripts/quality_bounds.py corpus/16k/test.jsonl [--clips 30] [--min-seconds 1]

Each variant rebuilds a clip from something computed on the clip itself and scores it with the
eval's PESQ-WB and STOI, so the figures say what information a codec must carry, not what any
trained model does:

- true |STFT| (640/160, the retired magnitude head's grid) + fast Griffin-Lim, 8 and 32 iterations
- a smooth envelope only: the log-|STFT| liftered to 20 or 40 cepstral coefficients, + Griffin-Lim
- that envelope plus a harmonic comb at the true f0 (needs `pip install praat-parselmouth`)
- WORLD analysis-synthesis, full and 24-coefficient envelopes (needs `pip install pyworld`)

The optional variants are skipped, with a note, when their package is missing.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from _pitch import pick_entries, praat_f0

from hificodec.audio import load_audio
from hificodec.eval.metrics import MetricError, pesq_wb, stoi

SR, N_FFT, HOP = 16000, 640, 160
WINDOW = torch.hann_window(N_FFT)


def fast_griffin_lim(
    magnitude: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor, length: int, iterations: int,
    momentum: float = 0.99,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al., 2013): a phase [bins, frames] for `magnitude`, from zero phase.

    Kept here for this oracle bound only (the package's magnitude-only head that used it is retired)."""
    spec = magnitude.to(torch.complex64)
    previous: torch.Tensor | None = None
    for _ in range(iterations):
        wav = torch.istft(spec, n_fft, hop_length, window=window, center=True, length=length)
        rebuilt = torch.stft(wav, n_fft, hop_length, window=window, center=True, return_complex=True)
        rebuilt = rebuilt[..., : magnitude.shape[-1]]
        accelerated = rebuilt if previous is None else rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        spec = magnitude * torch.exp(1j * torch.angle(accelerated))
    return torch.angle(spec)


def spectrum(x: np.ndarray) -> torch.Tensor:
    return torch.stft(torch.from_numpy(x), N_FFT, HOP, window=WINDOW, return_complex=True).abs()


def rebuild(log_mag: torch.Tensor, length: int, iterations: int = 32) -> np.ndarray:
    mag = log_mag.exp()
    phase = fast_griffin_lim(mag, N_FFT, HOP, WINDOW, length, iterations)
    return torch.istft(torch.polar(mag, phase), N_FFT, HOP, window=WINDOW, length=length).numpy()


def envelope(log_mag: torch.Tensor, coefficients: int) -> torch.Tensor:
    cepstrum = torch.fft.irfft(log_mag, dim=0)
    cepstrum[coefficients:-coefficients] = 0
    return torch.fft.rfft(cepstrum, dim=0).real


def harmonic_comb(x: np.ndarray, frames: int) -> torch.Tensor:
    """log gain [bins, frames]: peaks (~window main-lobe wide) at multiples of f0, 0 where unvoiced."""
    times = np.arange(frames) * HOP / SR  # centred STFT frames
    f0 = torch.tensor(praat_f0(x, SR, times, HOP / SR), dtype=torch.float32)
    freqs = torch.arange(N_FFT // 2 + 1) * SR / N_FFT
    nearest = torch.round(freqs[:, None] / f0.clamp(min=1)[None, :]) * f0[None, :]
    peaks = torch.exp(-0.5 * ((freqs[:, None] - nearest) / 18.0) ** 2)
    comb = torch.log(peaks + 0.1) - math.log(0.55)  # ~20 dB peak-to-valley, unit mean gain
    return torch.where(f0[None, :] > 0, comb, torch.zeros_like(comb))


def world(x: np.ndarray, coefficients: int | None) -> np.ndarray:
    import pyworld

    xd = x.astype(np.float64)
    f0, t = pyworld.harvest(xd, SR, frame_period=10.0)
    sp, ap = pyworld.cheaptrick(xd, f0, t, SR), pyworld.d4c(xd, f0, t, SR)
    if coefficients:
        fft_size = (sp.shape[1] - 1) * 2
        sp = pyworld.decode_spectral_envelope(pyworld.code_spectral_envelope(sp, SR, coefficients), SR, fft_size)
        ap = pyworld.decode_aperiodicity(pyworld.code_aperiodicity(ap, SR), SR, fft_size)
    y = pyworld.synthesize(f0, sp, ap, SR, 10.0)[: len(x)]
    return np.pad(y, (0, len(x) - len(y))).astype(np.float32)


def variants(x: np.ndarray, optional: set[str]) -> Iterator[tuple[str, Callable[[], np.ndarray]]]:
    log_mag = torch.log(spectrum(x) + 1e-5)
    n = len(x)
    for iterations in (8, 32):
        yield f"true |STFT| + Griffin-Lim {iterations}", lambda i=iterations: rebuild(log_mag, n, i)
    for c in (20, 40):
        yield f"envelope ({c} cepstral coefficients)", lambda c=c: rebuild(envelope(log_mag, c), n)
        if "parselmouth" in optional:
            yield (
                f"envelope ({c}) + comb at true f0",
                lambda c=c: rebuild(envelope(log_mag, c) + harmonic_comb(x, log_mag.shape[1]), n),
            )
    if "pyworld" in optional:
        yield "WORLD, full envelope", lambda: world(x, None)
        yield "WORLD, 24-coefficient envelope", lambda: world(x, 24)


def available(names: list[str]) -> set[str]:
    found = set()
    for name in names:
        try:
            __import__(name)
            found.add(name)
        except ImportError:
            print(f"note: `{name}` is not installed: its variants are skipped")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path, help="JSON-lines manifest with a 'path' per line")
    ap.add_argument("--clips", type=int, default=30)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    entries = pick_entries(args.manifest, args.clips, args.min_seconds)
    optional = available(["parselmouth", "pyworld"])
    scores: dict[str, list[tuple[float, float]]] = {}
    for entry in entries:
        x = load_audio(entry.path, SR, mono=True)[0][0].astype(np.float32)
        for name, make in variants(x, optional):
            y = make()
            try:
                scores.setdefault(name, []).append((pesq_wb(x, y, SR), stoi(x, y, SR)))
            except MetricError as e:  # too short or silent: reported, not scored (as `hificodec eval` does)
                print(f"note: {entry.path}: {name}: {e}")
    print(f"{len(entries)} clips of {args.manifest} (>= {args.min_seconds:g} s)")
    print(f"{'variant':42s} {'PESQ-WB':>8s} {'STOI':>6s}")
    for name, values in scores.items():
        a = np.array(values, dtype=np.float64)
        print(f"{name:42s} {np.nanmean(a[:, 0]):8.2f} {np.nanmean(a[:, 1]):6.3f}")


if __name__ == "__main__":
    main()
