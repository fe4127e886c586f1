"""The generator's losses as registered specs: one `LossSpec` per loss says which `loss_weights` keys it
answers to, its settings (`losses.<name>`: a dataclass whose fields are the keys, whose defaults are the
recipe defaults and which refuses bad values), what it needs besides the two waveforms, and how it is
computed (from `hificodec.train.losses`).

The recipe parser, the trainer, validation and the loss table in docs/training.md all read `LOSSES`:
adding a loss is one `register(LossSpec(...))` (plus its function, and the regenerated table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..dsp.mel import MelResolution
from ..dsp.pitch import TrackerSettings, estimate_f0
from ..errors import ConfigError
from . import losses as L
from .discriminators import DiscriminatorOutput
from .settings import parse_settings

# ---- what a loss may read ---------------------------------------------------------------------


@dataclass
class LossInputs:
    """One step's material for the generator losses (waveforms are [B, 1, T] float32)."""

    real: torch.Tensor
    fake: torch.Tensor
    sample_rate: int
    hop_length: int  # the model's frame hop (pitch targets are tracked at it)
    quantizer: dict[str, torch.Tensor] = field(default_factory=dict)  # the model's own losses
    pitch: torch.Tensor | None = None  # the pitch head's output [B, 2, F], when the model has one
    d_real: DiscriminatorOutput | None = None  # discriminator on real / fake, once adversarial training runs
    d_fake: DiscriminatorOutput | None = None
    # the STFTs of (fake, real) by resolution, computed once for every spectral loss that reads them
    spectra: L.SharedSTFT | None = None

    def __post_init__(self) -> None:
        if self.spectra is None:
            self.spectra = L.SharedSTFT(self.fake, self.real)


#: what a spec may need beyond the waveforms; without it the spec is not computed this step
NEEDS = {
    "discriminator": lambda x: x.d_real is not None and x.d_fake is not None,
    "pitch": lambda x: x.pitch is not None,
}


@dataclass(frozen=True)
class LossSpec:
    name: str  # its settings section, `losses.<name>`
    terms: tuple[str, ...]  # the `loss_weights` keys (and logged names) of what `compute` returns
    compute: Callable[[LossInputs, Any], dict[str, torch.Tensor]]  # (inputs, settings) -> unweighted terms
    doc: str  # what it is, for the table in docs/training.md
    settings: type | None = None  # a dataclass (None: the loss has no settings)
    needs: tuple[str, ...] = ()  # keys of NEEDS
    always: bool = False  # computed and logged at weight 0 too (the model's and the GAN's own terms)
    # refuses weighted use that cannot work: (settings, model config) -> None or ConfigError
    check: Callable[[Any, dict[str, Any]], None] | None = None
    # whether validation scores held-out clips with it, given the recipe's settings (None: never)
    validated: Callable[[Any], bool] | None = None
    # the settings validation uses, from the recipe's (None: the recipe's as they are)
    validation_settings: Callable[[Any], Any] | None = None


LOSSES: dict[str, LossSpec] = {}


def register(spec: LossSpec) -> LossSpec:
    """Add a loss; it is computed after those registered before it (the order of the weighted sum)."""
    if spec.name in LOSSES:
        raise ValueError(f"a loss named '{spec.name}' is already registered")
    taken = {t for s in LOSSES.values() for t in s.terms} & set(spec.terms)
    if taken or set(spec.needs) - set(NEEDS):
        raise ValueError(f"loss '{spec.name}': weight key(s) {sorted(taken)} taken or needs {spec.needs} unknown")
    if spec.validated is not None and len(spec.terms) != 1:
        raise ValueError(f"loss '{spec.name}': only a single-term loss can be validated")
    LOSSES[spec.name] = spec
    return spec


def weight_keys() -> list[str]:
    return [t for spec in LOSSES.values() for t in spec.terms]


# ---- parsing ---------------------------------------------------------------------------------


def parse_losses(
    sections: Any, weights_raw: Any, model_config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, float]]:
    """(`losses` settings by spec name, `loss_weights`) from a recipe's two sections."""
    sections = {} if sections is None else sections
    with_settings = [name for name, spec in LOSSES.items() if spec.settings is not None]
    if not isinstance(sections, dict):
        raise ConfigError("recipe: 'losses' must be a mapping")
    unknown = set(sections) - set(with_settings)
    if unknown:
        raise ConfigError(
            f"recipe: unknown key(s) {sorted(unknown)} in 'losses' (known: {', '.join(sorted(with_settings))})"
        )
    settings = {
        spec.name: parse_settings(spec.settings, sections.get(spec.name), f"losses.{spec.name}")
        for spec in LOSSES.values() if spec.settings is not None
    }
    weights = {k: float(v) for k, v in (weights_raw or {}).items()}
    bad = set(weights) - set(weight_keys())
    if bad:
        raise ConfigError(f"recipe: unknown loss weight(s) {sorted(bad)} (known: {', '.join(weight_keys())})")
    for spec in LOSSES.values():
        if spec.check is not None and any(weights.get(t) for t in spec.terms):
            spec.check(settings.get(spec.name), model_config)
    return settings, weights


# ---- computing -------------------------------------------------------------------------------


def generator_terms(
    inputs: LossInputs, settings: dict[str, Any], weights: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Every registered loss that is weighted (or `always` computed) and has what it needs, unweighted,
    in registration order."""
    terms: dict[str, torch.Tensor] = {}
    for spec in LOSSES.values():
        if not (spec.always or any(weights.get(t) for t in spec.terms)):
            continue
        if all(NEEDS[need](inputs) for need in spec.needs):
            terms.update(spec.compute(inputs, settings.get(spec.name)))
    return terms


def validation_losses(
    settings: dict[str, Any], sample_rate: int, hop_length: int
) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """name -> (fake, real) -> loss, for the losses validation reports (`LossSpec.validated`)."""
    fns: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
    for spec in LOSSES.values():
        chosen = settings.get(spec.name)
        if spec.validated is None or not spec.validated(chosen):
            continue
        if spec.validation_settings is not None:
            chosen = spec.validation_settings(chosen)

        def fn(fake: torch.Tensor, real: torch.Tensor, spec: LossSpec = spec, chosen: Any = chosen) -> torch.Tensor:
            return spec.compute(LossInputs(real, fake, sample_rate, hop_length), chosen)[spec.terms[0]]

        fns[spec.terms[0]] = fn
    return fns


# ---- docs ------------------------------------------------------------------------------------


def loss_table() -> str:
    """The loss table of docs/training.md (a test keeps the two equal)."""
    rows = ["| weights | settings | what |", "|---|---|---|"]
    for spec in LOSSES.values():
        weights = ", ".join(f"`{t}`" for t in spec.terms)
        if spec.settings is None:
            keys = "-"
        else:
            keys = f"`losses.{spec.name}`: " + ", ".join(f.name for f in dataclasses.fields(spec.settings))
        rows.append(f"| {weights} | {keys} | {spec.doc}{'; computed at any weight' if spec.always else ''} |")
    return "\n".join(rows) + "\n"


# ---- the losses ------------------------------------------------------------------------------


def _requires_resolutions(name: str) -> Callable[[Any, dict[str, Any]], None]:
    def check(settings: Any, model_config: dict[str, Any]) -> None:
        if not settings.resolutions:
            raise ConfigError(f"recipe: loss_weights.{name} is set but losses.{name}.resolutions is empty")

    return check


@dataclass(frozen=True)
class MelLossSettings:
    style: str = "log_l1"  # log_l1 (HiFi-GAN) or l1_log_rms (Encodec/SoundStream)
    resolutions: tuple[MelResolution, ...] = ()

    def __post_init__(self) -> None:
        if self.style not in L.MEL_STYLES:
            raise ConfigError(f"recipe: losses.mel.style must be one of {', '.join(L.MEL_STYLES)} (got {self.style!r})")


# validation (and "best" selection) scores a mel loss even when a recipe trains without one
DEFAULT_VALID_MEL = MelResolution(n_fft=1024, hop_length=256, win_length=1024, n_mels=80)

register(LossSpec(
    name="mel", terms=("mel",), settings=MelLossSettings, check=_requires_resolutions("mel"),
    compute=lambda x, s: {"mel": L.multi_resolution_mel_loss(x.fake, x.real, x.sample_rate, s.resolutions, s.style,
                                                              spectra=x.spectra)},
    validated=lambda s: True,
    validation_settings=lambda s: s if s.resolutions else dataclasses.replace(s, resolutions=(DEFAULT_VALID_MEL,)),
    doc="`multi_resolution_mel_loss`: per resolution `weight` x (L1 of log-mels, style `log_l1`; or L1 of mels "
    "+ sqrt(n_fft/2) x RMS of log-mel difference, style `l1_log_rms`)",
))


@dataclass(frozen=True)
class STFTLossSettings:
    complex: bool = False  # add the phase-aware compressed complex-spectrum L1
    resolutions: tuple[L.STFTResolution, ...] = ()


register(LossSpec(
    name="stft", terms=("stft",), settings=STFTLossSettings, check=_requires_resolutions("stft"),
    compute=lambda x, s: {"stft": L.multi_resolution_stft_loss(x.fake, x.real, s.resolutions, s.complex,
                                                                spectra=x.spectra)},
    validated=lambda s: bool(s.resolutions),
    doc="`multi_resolution_stft_loss`: spectral convergence + log-magnitude L1 (+ compressed complex L1 with "
    "`complex: true`, a phase-aware term)",
))


@dataclass(frozen=True)
class PhaseLossSettings:
    weighted: bool = True  # weight bins by the real magnitude
    terms: tuple[str, ...] = L.PHASE_TERMS  # instantaneous phase, group delay, instantaneous frequency
    resolutions: tuple[L.STFTResolution, ...] = ()

    def __post_init__(self) -> None:
        if set(self.terms) - set(L.PHASE_TERMS) or not self.terms:
            raise ConfigError(
                f"recipe: losses.phase.terms must be among {', '.join(L.PHASE_TERMS)} (got {list(self.terms)})"
            )


register(LossSpec(
    name="phase", terms=("phase",), settings=PhaseLossSettings, check=_requires_resolutions("phase"),
    compute=lambda x, s: {"phase": L.multi_resolution_phase_loss(x.fake, x.real, s.resolutions, s.weighted, s.terms,
                                                                  spectra=x.spectra)},
    doc="`multi_resolution_phase_loss`: APNet's anti-wrapping losses on instantaneous phase, group delay and "
    "instantaneous frequency (`weighted: true` weights bins by the real magnitude)",
))
register(LossSpec(
    name="l1", terms=("l1",), compute=lambda x, s: {"l1": L.waveform_l1(x.fake, x.real)}, validated=lambda s: True,
    doc="waveform L1",
))
register(LossSpec(name="mse", terms=("mse",), compute=lambda x, s: {"mse": L.waveform_mse(x.fake, x.real)},
                  doc="waveform MSE"))
register(LossSpec(
    name="quantizer", terms=("commitment", "codebook"), always=True,
    compute=lambda x, s: L.quantizer_losses(x.quantizer),
    doc="the quantizer's own losses (unweighted in the model)",
))


@dataclass(frozen=True)
class AdversarialSettings:
    kind: str = "lsgan"  # lsgan or hinge (the discriminator's loss too)
    start_step: int = 0  # no adversarial terms (and no discriminator updates) before this step

    def __post_init__(self) -> None:
        if self.kind not in L.ADVERSARIAL_LOSSES:
            raise ConfigError(
                f"recipe: losses.adversarial.kind must be one of {', '.join(L.ADVERSARIAL_LOSSES)} (got {self.kind!r})"
            )


def _adversarial(x: LossInputs, s: AdversarialSettings) -> dict[str, torch.Tensor]:
    assert x.d_fake is not None
    return {"adv": L.adversarial_losses(s.kind)[0](x.d_fake.logits)}


register(LossSpec(
    name="adversarial", terms=("adv",), settings=AdversarialSettings, needs=("discriminator",), always=True,
    compute=_adversarial,
    doc="least-squares (`lsgan`) or `hinge` generator loss over every sub-discriminator, from `start_step` on",
))


@dataclass(frozen=True)
class FeatureMatchingSettings:
    relative: bool = False  # Encodec's normalised feature matching


def _feature_matching(x: LossInputs, s: FeatureMatchingSettings) -> dict[str, torch.Tensor]:
    assert x.d_real is not None and x.d_fake is not None
    fn = L.relative_feature_matching_loss if s.relative else L.feature_matching_loss
    return {"feat": fn(x.d_real.features, x.d_fake.features)}


register(LossSpec(
    name="feature_matching", terms=("feat",), settings=FeatureMatchingSettings, needs=("discriminator",),
    always=True, compute=_feature_matching, doc="feature matching: plain (HiFi-GAN) or `relative` (Encodec)",
))
def _logits(x: LossInputs, s: None) -> dict[str, torch.Tensor]:
    assert x.d_real is not None and x.d_fake is not None
    return {"logits": L.logit_matching_loss(x.d_real.logits, x.d_fake.logits)}


register(LossSpec(
    name="logits", terms=("logits",), needs=("discriminator",), compute=_logits,
    doc="SoundStream's logit-MSE term",
))


def _pitch(x: LossInputs, s: TrackerSettings) -> dict[str, torch.Tensor]:
    assert x.pitch is not None
    return L.pitch_losses(x.pitch, estimate_f0(x.real, x.sample_rate, x.hop_length, **asdict(s)))


def _check_pitch_head(settings: Any, model_config: dict[str, Any]) -> None:
    if not model_config.get("pitch_head"):
        raise ConfigError(
            "recipe: loss_weights.f0/voicing need a model with a pitch head "
            "(model_overrides: {pitch_head: {channels: 256}})"
        )


register(LossSpec(
    name="pitch", terms=("f0", "voicing"), settings=TrackerSettings, needs=("pitch",), check=_check_pitch_head,
    compute=_pitch,
    doc="`pitch_losses`: the model's pitch head (`pitch_head` in the model config) against YIN f0 of the input "
    "(`hificodec.dsp.pitch.estimate_f0` with these settings): L1 in octaves over voiced frames, and voicing "
    "cross-entropy. Makes the codes carry pitch; `Codec.predict_pitch(codes)` reads it back",
))
