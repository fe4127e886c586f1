import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch

import hificodec
from hificodec.config import load_config
from hificodec.errors import ConfigError
from hificodec.train.discriminators import build_discriminator
from hificodec.train.recipe import Recipe, load_recipe
from tiny_codecs import TINY_RECIPES

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
ALL = sorted(
    p for p in [*RECIPES.rglob("*.yaml"), *TINY_RECIPES.glob("*.yaml")]
    if not p.name.startswith("_") and p.name != "chain.yaml"
)
IDS = [str(p.relative_to(p.parents[1])) for p in ALL]
# a chain's stages start from another stage's export (`stage:N`), which only the replay resolves
NO_INIT = ["train.init_from=null"]
EXPECTED = Path(__file__).with_name("recipe_settings.json")


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_every_recipe_parses_and_names_a_model(path):
    recipe = load_recipe(path, NO_INIT)
    assert recipe.model.get("family") in ("hificodec", "encodec", "soundstream")
    assert recipe.loss_weights  # something to optimise


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_every_recipe_builds_its_model_and_discriminator(path):
    """Parsing is not enough: the model (with its overrides) and the discriminators must build and run
    (one training forward on 0.25 s; ~25 s for all recipes, most of it initialising the paper-size models)."""
    recipe = load_recipe(path, NO_INIT)
    model = hificodec.build(recipe.model).train()
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(1, 1, max(12 * model.hop_length, model.sample_rate // 4), generator=g)
    out = model(wav)
    assert out.audio.shape == wav.shape and torch.isfinite(out.audio).all()
    assert out.codes.shape[1] == model.max_codebooks and all(torch.isfinite(v) for v in out.losses.values())
    disc = build_discriminator(recipe.discriminators)
    if disc is not None:
        logits = disc(torch.cat([wav, out.audio.detach()])).logits
        assert logits and all(x.shape[0] == 2 and torch.isfinite(x).all() for x in logits)


def test_paper_hificodec_recipe_matches_the_reference():
    r = load_recipe(RECIPES / "paper" / "hificodec-16k-320d.yaml")
    first = r.losses["mel"].resolutions[0]
    assert (first.n_fft, first.hop_length, first.win_length, first.n_mels, first.fmax, first.weight) == (
        1024, 200, 800, 80, 8000, 45.0)
    assert (r.generator_optim.name, r.generator_optim.lr, r.generator_optim.betas) == ("adam", 2e-4, (0.5, 0.9))
    assert (r.schedule.gamma, r.schedule.per, r.seed) == (0.98, "epoch", 1234)
    assert set(r.discriminators) == {"mpd", "msd", "msstft"} and r.losses["adversarial"].kind == "lsgan"
    assert r.loss_weights["feat"] == 2 and r.loss_weights["codebook"] == 10 and r.loss_weights["commitment"] == 2.5
    r24 = load_recipe(RECIPES / "paper" / "hificodec-24k-240d.yaml")
    assert r24.losses["mel"].resolutions[0].hop_length == 240 and r24.model["sample_rate"] == 24000


def test_encodec_and_soundstream_recipes():
    enc = load_recipe(RECIPES / "paper" / "encodec-24k-240d.yaml")
    assert enc.losses["adversarial"].kind == "hinge" and enc.losses["adversarial"].start_step == 500
    assert [m.n_fft for m in enc.losses["mel"].resolutions] == [2**i for i in range(6, 12)]
    assert enc.loss_weights["mse"] == 100 and enc.loss_weights["commitment"] == 1000
    ss = load_recipe(RECIPES / "paper" / "soundstream-24k-240d.yaml")
    assert ss.data.mix_prob == 0.3 and ss.loss_weights["logits"] == 1
    assert max(m.n_fft for m in ss.losses["mel"].resolutions) == 1024
    assert build_discriminator(ss.discriminators) is not None


def test_overrides_and_validation():
    r = load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["train.max_steps=3", "model_overrides.latent_dim=8"])
    assert r.train.max_steps == 3 and r.model["latent_dim"] == 8
    with pytest.raises(ConfigError, match="unknown loss weight"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["loss_weights.melody=1"])
    with pytest.raises(ConfigError, match="resolutions is empty"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["losses.mel.resolutions=[]"])


@pytest.mark.parametrize("override, message", [
    ("train.amp=fp32", "train.amp is 'fp32'; use one of bf16, fp16, none"),
    ("train.grad_accum_steps=0", "grad_accum_steps must be an integer >= 1"),
    ("train.ema_decay=1.0", "ema_decay must be between 0 and 1"),
    ("train.keep_optimizer_last=0", "keep_optimizer_last must be an integer >= 1"),
    ("train.optimizer_state_dtype=float16", "optimizer_state_dtype must be float32 or bfloat16"),
])
def test_training_options_refuse_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", [override])


def test_a_retired_setting_is_named_as_retired():
    with pytest.raises(ConfigError, match=r"losses.stft.log_offset was retired; .*docs/results.md"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["losses.stft.log_offset=0.1"])


def test_misspelt_loss_settings_are_refused_not_ignored():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['complx'\] in 'losses.stft'"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["losses.stft.complx=true"])
    with pytest.raises(ConfigError, match="in 'losses'"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["losses.pich.fmin=50"])
    with pytest.raises(ConfigError, match="losses.pitch"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["losses.pitch.f_min=50"])


def test_pitch_losses_need_a_pitch_head():
    with pytest.raises(ConfigError, match="pitch head"):
        load_recipe(TINY_RECIPES / "tiny-hificodec.yaml", ["loss_weights.f0=1"])
    r = load_recipe(
        TINY_RECIPES / "tiny-hificodec.yaml",
        ["loss_weights.f0=1", "model_overrides.pitch_head.channels=8", "losses.pitch.fmin=80"],
    )
    assert r.loss_weights["f0"] == 1.0 and r.losses["pitch"].fmin == 80.0 and r.losses["pitch"].fmax == 500.0


def test_a_chain_stage_run_on_its_own_asks_for_its_starting_point():
    with pytest.raises(ConfigError, match=r"'stage:5'.*train.init_from=DIR"):
        load_recipe(RECIPES / "hificodec-16k" / "6-anneal.yaml")
    assert load_recipe(RECIPES / "hificodec-16k" / "6-anneal.yaml", ["train.init_from=x"]).train.init_from == "x"


def test_no_recipe_names_a_machine_local_path():
    for path in [*RECIPES.rglob("*.yaml"), *TINY_RECIPES.glob("*.yaml")]:
        assert "/work/" not in path.read_text(), path
        init_from = str(load_config(path).get("train", {}).get("init_from"))
        assert not init_from.startswith(("runs/", "/")), (path, init_from)


def test_only_the_release_stages_carry_the_preset_name():
    """Stage 1 trains a plain iSTFT head without pitch modules: not the shipped `hificodec-16k`."""
    names = {p.stem: load_recipe(p, NO_INIT).model["name"] for p in (RECIPES / "hificodec-16k").glob("*.yaml")
             if p.name != "chain.yaml"}
    assert names["1-reconstruction"] == "hificodec-16k-istft"
    assert names["2-phase-advance"] == "hificodec-16k-phase-advance"
    assert names["4-pitch"] == "hificodec-16k-pitch"
    assert {names[s] for s in ("5-excitation", "6-anneal", "disc-warmup", "gan", "gpu-leg")} == {"hificodec-16k"}


def test_a_recipe_names_its_model_file_relative_to_itself(tmp_path, monkeypatch):
    recipe = load_recipe(TINY_RECIPES / "tiny-soundstream.yaml")  # extends tiny-encodec, which extends tiny-hificodec
    assert recipe.model["name"] == "tiny-soundstream" and Path(recipe.raw["model"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    assert load_recipe(TINY_RECIPES / "tiny-hificodec.yaml").model["name"] == "tiny-hificodec"


def test_the_leg_self_check_recipes_match_the_test_fixtures():
    from hificodec.train.tiny_recipes import tiny_recipes

    for family, raw in tiny_recipes().items():
        built, fixture = load_recipe(raw), load_recipe(TINY_RECIPES / f"tiny-{family}.yaml")
        for key in ("model", "data", "valid", "generator_optim", "discriminator_optim", "schedule", "losses",
                    "loss_weights", "discriminators", "train"):
            assert getattr(built, key) == getattr(fixture, key), (family, key)


def flat_settings(r: Recipe) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seed": r.seed, "data": asdict(r.data), "valid": asdict(r.valid), "train": asdict(r.train),
        "optim.generator": asdict(r.generator_optim), "optim.discriminator": asdict(r.discriminator_optim),
        "optim.schedule": asdict(r.schedule), "discriminators": r.discriminators, "loss_weights": r.loss_weights,
    }
    for name, settings in r.losses.items():
        out.update({f"losses.{name}.{key}": value for key, value in asdict(settings).items()})
    return json.loads(json.dumps(out))  # tuples as lists, as in the file


def test_every_recipe_file_is_in_the_expected_settings():
    """recipe_settings.json was dumped from the parser the loss registry replaced, in recipe-key space
    (`losses.mel.style`, ...), not from how settings are held in memory. After an intended change to a
    recipe, rewrite it: `PYTHONPATH=src:tests python tests/train/test_recipe.py` (from the repository root)."""
    assert sorted(IDS) == sorted(json.loads(EXPECTED.read_text()))


@pytest.mark.parametrize("path, name", list(zip(ALL, IDS)), ids=IDS)
def test_recipe_parses_to_the_same_settings(path, name):
    assert flat_settings(load_recipe(path, NO_INIT)) == json.loads(EXPECTED.read_text())[name]


if __name__ == "__main__":
    dumped = {name: flat_settings(load_recipe(path, NO_INIT)) for path, name in zip(ALL, IDS)}
    EXPECTED.write_text(json.dumps(dumped, indent=1, sort_keys=True))
