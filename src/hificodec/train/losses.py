"""Training losses, one small named function each.

Reconstruction losses take (fake, real) waveforms [B, 1, T]; adversarial losses take lists of
discriminator logits (one per sub-discriminator); feature matching takes lists of feature lists.
Everything returns an unweighted scalar: weights live in the recipe (`loss_weights`, keyed by name).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..dsp.mel import MelResolution, mel_from_spectrum, mel_spectrogram
from ..dsp.pitch import REFERENCE_HZ, PitchTrack
from ..dsp.stft import stft

#: (n_fft, hop_length, win_length) -> (STFT of fake, STFT of real): what the spectral losses read, so that
#: losses at the same resolution share one transform (`SharedSTFT`); None computes each where it is needed
SpectrumPairs = Callable[[int, int, int], tuple[torch.Tensor, torch.Tensor]]


class SharedSTFT:
    """The complex STFTs of (fake, real) at each resolution, computed once per step for every loss that
    reads them: both halves in one transform (one launch instead of two), cached by resolution.

    The mel, multi-resolution STFT and phase losses of the shipped recipe ask for 8 resolutions, 4 of them
    distinct: 16 transforms become 4."""

    def __init__(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        self.fake, self.real = fake, real
        self._cache: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, n_fft: int, hop_length: int, win_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (int(n_fft), int(hop_length), int(win_length))
        pair = self._cache.get(key)
        if pair is None:
            if self.fake.shape[1:] != self.real.shape[1:]:  # lengths differ: a transform each
                pair = self._cache[key] = (stft(self.fake, *key), stft(self.real, *key).detach())
                return pair
            both = stft(torch.cat([self.fake.float(), self.real.float()]), *key)
            s_fake, s_real = both.split(self.fake.shape[0])
            # the real half is a target: without the detach, autograd would differentiate every op on it
            pair = self._cache[key] = (s_fake, s_real.detach())
        return pair


def _separate(fake: torch.Tensor, real: torch.Tensor) -> SpectrumPairs:
    return lambda n_fft, hop, win: (stft(fake, n_fft, hop, win), stft(real, n_fft, hop, win))

# ---- waveform --------------------------------------------------------------------------------


def waveform_l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(fake.float(), real.float())


def waveform_mse(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(fake.float(), real.float())


# ---- spectral --------------------------------------------------------------------------------

MEL_STYLES = ("log_l1", "l1_log_rms")


def multi_resolution_mel_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    sample_rate: int,
    resolutions: Sequence[MelResolution],
    style: str = "log_l1",
    spectra: SpectrumPairs | None = None,
) -> torch.Tensor:
    """Sum over resolutions of `weight` x a mel distance.

    style "log_l1": L1 between log-mels (HiFi-GAN / HiFi-Codec).
    style "l1_log_rms": L1 between linear mels + sqrt(n_fft / 2) x RMS of the log-mel difference
    (Encodec / SoundStream as AcademiCodec trains them).
    `spectra` supplies the STFTs (a `SharedSTFT` shares them with the other spectral losses).
    """
    total = fake.new_zeros((), dtype=torch.float32)
    for res in resolutions:
        if spectra is None:
            m_fake = mel_spectrogram(fake, sample_rate, res)
            m_real = mel_spectrogram(real, sample_rate, res)
        else:
            s_fake, s_real = spectra(res.n_fft, res.hop_length, res.win_length)
            m_fake, m_real = mel_from_spectrum(s_fake, sample_rate, res), mel_from_spectrum(s_real, sample_rate, res)
        if style == "log_l1":
            term = F.l1_loss(torch.log(m_fake.clamp(min=1e-5)), torch.log(m_real.clamp(min=1e-5)))
        elif style == "l1_log_rms":
            log_diff = torch.log(m_fake + 1e-5) - torch.log(m_real + 1e-5)
            rms = log_diff.square().mean(dim=1).add(1e-8).sqrt().mean()
            term = F.l1_loss(m_fake, m_real) + (res.n_fft / 2) ** 0.5 * rms
        else:
            raise ValueError(f"unknown mel loss style '{style}' (use {' or '.join(MEL_STYLES)})")
        total = total + res.weight * term
    return total


@dataclass(frozen=True)
class STFTResolution:
    n_fft: int
    hop_length: int
    win_length: int
    weight: float = 1.0


def spectral_convergence(mag_fake: torch.Tensor, mag_real: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(mag_real - mag_fake) / torch.linalg.vector_norm(mag_real).clamp(min=1e-7)


def log_magnitude_l1(mag_fake: torch.Tensor, mag_real: torch.Tensor) -> torch.Tensor:
    """L1 between log-magnitudes."""
    return F.l1_loss(torch.log(mag_fake.clamp(min=1e-7)), torch.log(mag_real.clamp(min=1e-7)))


def complex_stft_l1(spec_fake: torch.Tensor, spec_real: torch.Tensor, compress: float = 0.3) -> torch.Tensor:
    """Phase-aware: L1 between power-law compressed complex spectra (|S|^c e^{i angle S})."""

    def squash(s: torch.Tensor) -> torch.Tensor:
        mag = s.abs().clamp(min=1e-7)
        return torch.view_as_real(s * (mag.pow(compress) / mag))

    return F.l1_loss(squash(spec_fake), squash(spec_real))


def multi_resolution_stft_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    resolutions: Sequence[STFTResolution],
    use_complex: bool = False,
    spectra: SpectrumPairs | None = None,
) -> torch.Tensor:
    """Sum over resolutions of spectral convergence + log-magnitude L1 (+ complex L1 when asked)."""
    spectra = spectra or _separate(fake, real)
    total = fake.new_zeros((), dtype=torch.float32)
    for res in resolutions:
        s_fake, s_real = spectra(res.n_fft, res.hop_length, res.win_length)
        m_fake = s_fake.abs().clamp(min=1e-7)
        m_real = s_real.abs().clamp(min=1e-7)
        term = spectral_convergence(m_fake, m_real) + log_magnitude_l1(m_fake, m_real)
        if use_complex:
            term = term + complex_stft_l1(s_fake, s_real)
        total = total + res.weight * term
    return total


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x| after wrapping into [-pi, pi]: the distance between two angles."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


PHASE_TERMS = ("ip", "gd", "iaf")


def phase_loss(
    spec_fake: torch.Tensor, spec_real: torch.Tensor, weighted: bool = True, terms: Sequence[str] = PHASE_TERMS
) -> torch.Tensor:
    """APNet's anti-wrapping phase losses: instantaneous phase + group delay + instantaneous frequency.

    Group delay (phase difference along frequency) and instantaneous frequency (along time) are what
    make harmonics coherent across frames; an iSTFT decoder trained on magnitudes alone never learns
    them. `weighted` scales each bin by the real magnitude (mean 1 per clip), so that the phase of
    silent bins, which is noise, does not dominate. `terms` picks among "ip", "gd" and "iaf" (the
    absolute phase "ip" is not recoverable from a low-rate code; the differences are).
    """
    unknown = set(terms) - set(PHASE_TERMS)
    if unknown or not terms:
        raise ValueError(f"phase loss terms must be among {PHASE_TERMS}, got {list(terms)}")
    p_fake, p_real = torch.angle(spec_fake), torch.angle(spec_real)
    if weighted:
        mag = spec_real.abs().detach()
        w = mag / mag.mean(dim=(-2, -1), keepdim=True).clamp(min=1e-7)
    else:
        w = torch.ones_like(p_real)

    def mean(err: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return (err * weight).sum() / weight.sum().clamp(min=1e-7)

    total = p_fake.new_zeros(())
    if "ip" in terms:
        total = total + mean(anti_wrap(p_fake - p_real), w)
    if "gd" in terms:
        gd = anti_wrap(p_fake.diff(dim=-2) - p_real.diff(dim=-2))
        total = total + mean(gd, (w[..., 1:, :] * w[..., :-1, :]).sqrt())
    if "iaf" in terms:
        iaf = anti_wrap(p_fake.diff(dim=-1) - p_real.diff(dim=-1))
        total = total + mean(iaf, (w[..., 1:] * w[..., :-1]).sqrt())
    return total


def multi_resolution_phase_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    resolutions: Sequence[STFTResolution],
    weighted: bool = True,
    terms: Sequence[str] = PHASE_TERMS,
    spectra: SpectrumPairs | None = None,
) -> torch.Tensor:
    """Sum over resolutions of `weight` x `phase_loss`."""
    spectra = spectra or _separate(fake, real)
    total = fake.new_zeros((), dtype=torch.float32)
    for res in resolutions:
        s_fake, s_real = spectra(res.n_fft, res.hop_length, res.win_length)
        total = total + res.weight * phase_loss(s_fake, s_real, weighted, terms)
    return total


# ---- pitch -----------------------------------------------------------------------------------


def pitch_losses(prediction: torch.Tensor, target: PitchTrack) -> dict[str, torch.Tensor]:
    """Pitch-head output [B, 2, F] against tracked pitch: "f0" is the L1 distance in octaves over
    frames voiced in the target (0 when none are), "voicing" the binary cross-entropy of the voicing logit."""
    prediction = prediction.float()
    frames = min(prediction.shape[-1], target.f0.shape[-1])
    log_f0, logit = prediction[:, 0, :frames], prediction[:, 1, :frames]
    voiced = target.voiced[:, :frames]
    octaves = torch.log2(target.f0[:, :frames].clamp(min=1.0) / REFERENCE_HZ)
    distance = (log_f0 - octaves).abs()
    f0 = (distance * voiced).sum() / voiced.sum().clamp(min=1)
    voicing = F.binary_cross_entropy_with_logits(logit, voiced.float())
    return {"f0": f0, "voicing": voicing}


# ---- adversarial -----------------------------------------------------------------------------


def lsgan_generator_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((torch.mean((1 - d.float()) ** 2) for d in fake_logits), torch.zeros(()))


def lsgan_discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
) -> torch.Tensor:
    terms = (torch.mean((1 - r.float()) ** 2) + torch.mean(f.float() ** 2) for r, f in zip(real_logits, fake_logits))
    return sum(terms, torch.zeros(()))


def hinge_generator_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((F.relu(1 - d.float()).mean() for d in fake_logits), torch.zeros(()))


def hinge_discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
) -> torch.Tensor:
    terms = (F.relu(1 - r.float()).mean() + F.relu(1 + f.float()).mean() for r, f in zip(real_logits, fake_logits))
    return sum(terms, torch.zeros(()))


ADVERSARIAL_LOSSES = {
    "lsgan": (lsgan_generator_loss, lsgan_discriminator_loss),
    "hinge": (hinge_generator_loss, hinge_discriminator_loss),
}


def adversarial_losses(kind: str):
    """(generator_loss, discriminator_loss) functions for 'lsgan' or 'hinge'."""
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss '{kind}' (use {', '.join(ADVERSARIAL_LOSSES)})")
    return ADVERSARIAL_LOSSES[kind]


# ---- feature matching ------------------------------------------------------------------------


def feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]], fake_features: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """HiFi-GAN: sum over discriminators and layers of mean |real - fake| (real features are targets)."""
    total = torch.zeros(())
    for r_layers, f_layers in zip(real_features, fake_features):
        for r, f in zip(r_layers, f_layers):
            total = total + torch.mean(torch.abs(r.detach().float() - f.float()))
    return total


def relative_feature_matching_loss(
    real_features: Sequence[Sequence[torch.Tensor]], fake_features: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """Encodec: mean over discriminators and layers of mean|real - fake| / mean|real|."""
    total, count = torch.zeros(()), 0
    for r_layers, f_layers in zip(real_features, fake_features):
        for r, f in zip(r_layers, f_layers):
            r = r.detach().float()
            total = total + torch.mean(torch.abs(r - f.float())) / r.abs().mean().clamp(min=1e-5)
            count += 1
    return total / max(count, 1)


def logit_matching_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """SoundStream's extra term: MSE between discriminator logits on real and fake audio."""
    terms = (F.mse_loss(f.float(), r.detach().float()) for r, f in zip(real_logits, fake_logits))
    return sum(terms, torch.zeros(()))


# ---- quantizer -------------------------------------------------------------------------------


def quantizer_losses(losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's own quantizer losses ("commitment", "codebook"), as float32 scalars."""
    return {name: value.float() for name, value in losses.items()}
