from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from hificodec.errors import ConfigError
from hificodec.train import Trainer, load_recipe
from hificodec.train.loss_specs import LOSSES, LossSpec, loss_table, register
from tiny_codecs import TINY_RECIPES

ROOT = Path(__file__).resolve().parents[2]
TINY = TINY_RECIPES / "tiny-hificodec.yaml"


@dataclass(frozen=True)
class DCSettings:
    scale: float = 1.0


def _dc(x, s: DCSettings) -> dict[str, torch.Tensor]:
    return {"dc": s.scale * (x.fake.mean() - x.real.mean()).abs()}


@pytest.fixture
def dc_loss():
    """A toy loss (DC-offset error) registered for one test, and nowhere else edited."""
    spec = register(LossSpec(name="dc", terms=("dc",), settings=DCSettings, compute=_dc, validated=lambda s: True,
                             doc="toy: |mean(fake) - mean(real)| x scale"))
    yield spec
    del LOSSES["dc"]


def test_a_registered_loss_is_parsed_trained_and_validated(dc_loss, clips, tmp_path):
    overrides = ["train.max_steps=1", "valid.every=100", "train.checkpoint_every=100"]
    recipe = load_recipe(TINY, [*overrides, "losses.dc.scale=3", "loss_weights.dc=0.5"])
    assert recipe.losses["dc"] == DCSettings(scale=3.0) and recipe.loss_weights["dc"] == 0.5
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['scal'\] in 'losses.dc'"):
        load_recipe(TINY, ["losses.dc.scal=3"])

    with_dc = Trainer(recipe, str(clips), tmp_path / "a").train_step({"audio": _batch()})
    without = Trainer(load_recipe(TINY, overrides), str(clips), tmp_path / "b").train_step({"audio": _batch()})
    dc = with_dc.losses["dc"]
    assert dc > 0 and "dc" not in without.losses
    # same seed, same first step: the only difference in the total is the new term, weighted
    assert with_dc.losses["total"] == pytest.approx(without.losses["total"] + 0.5 * dc, rel=1e-6)
    assert with_dc.losses["mel"] == without.losses["mel"]

    fns = Trainer(recipe, str(clips), tmp_path / "c").validation_loss_fns()
    real = 0.1 * torch.randn(1, 1, 1600, generator=torch.Generator().manual_seed(0))
    assert set(fns) == {"mel", "l1", "dc"}
    assert float(fns["dc"](real + 0.25, real)) == pytest.approx(3 * 0.25, rel=1e-5)


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(2, 1, 3200, generator=g)


def test_without_the_registration_the_weight_is_unknown():
    with pytest.raises(ConfigError, match=r"unknown loss weight\(s\) \['dc'\]"):
        load_recipe(TINY, ["loss_weights.dc=0.5"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dc'\] in 'losses'"):
        load_recipe(TINY, ["losses.dc.scale=3"])


def test_a_name_or_weight_key_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):
        register(LossSpec(name="mel", terms=("mel2",), compute=_dc, doc=""))
    with pytest.raises(ValueError, match=r"\['l1'\] taken"):
        register(LossSpec(name="other", terms=("l1",), compute=_dc, doc=""))
    assert "other" not in LOSSES


def test_the_docs_loss_table_is_the_registry():
    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    start = text.index("\n", text.index("<!-- loss table: generated")) + 1
    end = text.index("<!-- end of loss table -->")
    assert text[start:end] == loss_table(), "regenerate docs/training.md's loss table from loss_table()"
    assert all(f"`{t}`" in loss_table() for spec in LOSSES.values() for t in spec.terms)


def test_spectral_losses_share_one_stft_per_resolution(monkeypatch):
    """The shipped recipe's mel, STFT and phase losses read 8 resolutions, 4 of them distinct: one transform
    of [fake; real] each, with the values and gradients of a transform per loss, half and resolution."""
    import hificodec.dsp.mel as dsp_mel
    import hificodec.train.losses as L
    from hificodec.train.loss_specs import LossInputs, generator_terms

    recipe = load_recipe(ROOT / "recipes" / "hificodec-16k" / "2-phase-advance.yaml", ["train.init_from=null"])
    weights = {k: v for k, v in recipe.loss_weights.items() if k in ("mel", "stft", "phase")}
    g = torch.Generator().manual_seed(0)
    real = 0.1 * torch.randn(2, 1, 4000, generator=g)
    calls = []
    counted = L.stft

    def counting(wav, *args, **kw):
        calls.append((wav.shape[0], *args))
        return counted(wav, *args, **kw)

    monkeypatch.setattr(L, "stft", counting)
    monkeypatch.setattr(dsp_mel, "stft", counting)
    results = {}
    for shared in (True, False):
        fake = (real + 0.02 * torch.randn(real.shape, generator=g)).requires_grad_(True)
        calls.clear()
        x = LossInputs(real, fake, 16000, 320)
        if not shared:
            x.spectra = None  # each loss computes its own transforms
        terms = generator_terms(x, recipe.losses, weights)
        sum(terms.values()).backward()
        results[shared] = ({k: float(v.detach()) for k, v in terms.items()}, fake.grad, list(calls))
        g.manual_seed(0)
        real = 0.1 * torch.randn(2, 1, 4000, generator=g)
    (shared_terms, shared_grad, shared_calls), (own_terms, own_grad, own_calls) = results[True], results[False]
    assert sorted(c[1:] for c in shared_calls) == [(256, 64, 256), (512, 128, 512), (1024, 256, 1024),
                                                   (1280, 320, 1280)]
    assert all(c[0] == 4 for c in shared_calls)  # fake and real in one call
    assert len(own_calls) == 16 and set(shared_terms) == {"mel", "stft", "phase"}
    for k in shared_terms:
        assert shared_terms[k] == pytest.approx(own_terms[k], rel=1e-5), k
    assert torch.allclose(shared_grad, own_grad, rtol=1e-4, atol=1e-7)
