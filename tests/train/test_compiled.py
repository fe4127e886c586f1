"""The compiled training step (hificodec.train.compiled) on the CPU: inductor's code against the eager step,
and the way back to eager when compiling fails or computes something else."""

import time

import numpy as np
import pytest
import torch

from hificodec.data.device_pack import PackAudio
from hificodec.data.device_pool import DevicePool
from hificodec.train import Trainer, load_recipe
from hificodec.train.compiled import CompiledStep, step_difference, try_compiled
from hificodec.train.tiny_recipes import tiny_recipes


def _pool() -> DevicePool:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000 * 3) * 3000).astype(np.int16)
    return DevicePool(PackAudio(audio, np.array([0, 16000, 32000]), np.array([16000] * 3), ["a", "b", "c"], 16000),
                      "cpu")


def _small_trainer(tmp_path) -> Trainer:
    """The tiny HiFi-Codec recipe with one mel resolution and one STFT discriminator: the least code to compile."""
    raw = tiny_recipes()["hificodec"]
    raw["discriminators"] = {"msstft": {"n_ffts": [128], "filters": 4}}
    raw["losses"]["mel"]["resolutions"] = raw["losses"]["mel"]["resolutions"][1:]
    return Trainer(load_recipe(raw, ["train.device=cpu"]), _pool(), tmp_path)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_inductor_step_matches_the_eager_step(tmp_path):
    """Inductor (C++ on the CPU) compiles the loss terms; the compiled step's losses and gradient norm
    equal the eager step's from the same state (measured: <= 3e-6 relative), and a model keeps its names."""
    torch._dynamo.reset()
    trainer = _small_trainer(tmp_path)
    batches = trainer._batches()
    trainer.train_step(next(batches))
    names = list(trainer.model.state_dict())
    t = time.perf_counter()
    compiled, report = try_compiled(trainer, batches, device=torch.device("cpu"), steps=2, eager_steps_per_s=None,
                                    parts=("losses",))
    seconds = time.perf_counter() - t
    try:
        assert compiled is not None and report["used"], report
        assert report["difference"] <= 1e-4 and report["compile_s"] > 0 and report["precision"] == "float32"
        assert list(trainer.model.state_dict()) == names  # no _orig_mod prefixes: exports are unchanged
        assert trainer.loss_terms is compiled._compiled["loss_terms"]
        result = trainer.train_step(next(batches))
        assert np.isfinite(result.losses["total"])
        print(f"inductor compile of the tiny losses: {report['compile_s']} s, {seconds:.1f} s in all, difference "
              f"{report['difference']:.2e} in '{report['worst']}'")
    finally:
        if compiled is not None:
            compiled.disable()
    from hificodec.train.loss_specs import generator_terms

    assert trainer.loss_terms is generator_terms  # the eager functions are back


def test_a_failing_compile_leaves_the_trainer_eager_and_its_state_as_it_was(tmp_path):
    torch._dynamo.reset()
    trainer = Trainer(load_recipe(tiny_recipes()["hificodec"], ["train.device=cpu"]), _pool(), tmp_path)
    batches = trainer._batches()
    trainer.train_step(next(batches))
    before, step = _weights(trainer), trainer.state.step

    def broken(gm, example_inputs):
        raise RuntimeError("no compiler here")

    compiled, report = try_compiled(trainer, batches, device=torch.device("cpu"), steps=2, eager_steps_per_s=None,
                                    backend=broken)
    assert compiled is None and not report["used"] and "no compiler here" in report["reason"]
    assert trainer.state.step == step and all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert "forward" not in vars(trainer.model) and "forward" not in vars(trainer.disc)  # eager modules again
    assert np.isfinite(trainer.train_step(next(batches)).losses["total"]) and trainer.state.step == step + 1


def test_a_compiled_step_that_computes_something_else_is_not_used(tmp_path):
    """A difference over the tolerance (here any: a negative tolerance) is a failure like any other."""
    torch._dynamo.reset()
    trainer = _small_trainer(tmp_path)
    batches = trainer._batches()
    before = _weights(trainer)
    compiled, report = try_compiled(trainer, batches, device=torch.device("cpu"), steps=1, eager_steps_per_s=None,
                                    backend="eager", parts=("losses",), tolerance=-1.0)
    assert compiled is None and "CompiledStepMismatch" in report["reason"] and report["difference"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_a_compiled_step_that_is_not_faster_is_not_used(tmp_path):
    torch._dynamo.reset()
    trainer = _small_trainer(tmp_path)
    compiled, report = try_compiled(trainer, trainer._batches(), device=torch.device("cpu"), steps=1,
                                    eager_steps_per_s=1e9, backend="eager", parts=("losses",))
    assert compiled is None and report["reason"] == "not faster than the eager step" and report["speedup"] < 1
    assert trainer.state.step == 5  # compiling, checked, 2 warm-up and 1 timed steps: they trained, none undone


def test_no_part_starts_compiling_after_the_deadline(tmp_path):
    """Parts compile cheapest first; once the compile would no longer pay back, the step goes on with what
    is compiled."""
    torch._dynamo.reset()
    trainer = _small_trainer(tmp_path)

    def slow(gm, example_inputs):  # a backend that takes its time and compiles nothing
        time.sleep(0.5)
        return gm.forward

    compiled, report = try_compiled(trainer, trainer._batches(), device=torch.device("cpu"), steps=1,
                                    eager_steps_per_s=None, backend=slow, parts=("losses", "discriminator"),
                                    deadline_s=0.25)
    try:
        assert compiled is not None and report["used"] and report["parts"] == ["losses"]
        assert report["not_compiled"] == ["discriminator"] and report["compile_s_by_part"]["losses"] >= 0.5
        assert "forward" not in vars(trainer.disc) and trainer.loss_terms is compiled._compiled["loss_terms"]
    finally:
        if compiled is not None:
            compiled.disable()


def test_compiled_step_swaps_and_restores_the_forward_passes(tmp_path):
    trainer = _small_trainer(tmp_path)
    eager_terms = trainer.loss_terms
    step = CompiledStep(trainer, backend="eager").enable()
    assert "forward" in vars(trainer.model) and "forward" in vars(trainer.disc)
    compiled_terms = trainer.loss_terms
    assert compiled_terms is not eager_terms
    step.disable(reset=False)
    assert "forward" not in vars(trainer.model) and "forward" not in vars(trainer.disc)
    assert trainer.loss_terms is eager_terms
    step.enable(("losses",))  # the same compiled function again: nothing is compiled twice
    assert trainer.loss_terms is compiled_terms and "forward" not in vars(trainer.model)
    step.disable()
    assert trainer.loss_terms is eager_terms
    with pytest.raises(ValueError, match="unknown compiled part"):
        CompiledStep(trainer, parts=("optimizer",))


def test_step_difference():
    assert step_difference({"a": 1.0, "b": 0.0}, {"a": 1.001, "b": 0.0}) == (pytest.approx(1e-3, rel=1e-2), "a")
    assert step_difference({"a": 1.0}, {"b": 1.0})[0] == float("inf")
    assert step_difference({"a": float("nan")}, {"a": 1.0})[0] == float("inf")


def test_a_leg_compiles_only_when_the_time_left_can_pay_for_it(tmp_path):
    from hificodec.train.leg import _compile_phase

    trainer = _small_trainer(tmp_path)
    leg = {"compile": {"policy": "auto", "estimate_s": 150.0}}
    best = {"steps_per_s": 10.0}
    report = _compile_phase(trainer, torch.device("cpu"), leg, None, best, 2, left_s=240.0)
    assert not report["used"] and report["reason"].startswith("not tried: would save ~120 s of the 240 s left")
    assert _compile_phase(trainer, torch.device("cpu"), leg, "off", best, 2, left_s=1e6)["reason"] == "not tried: off"
    assert trainer.state.step == 0  # nothing ran


def test_the_way_back_restores_the_moving_average_too(tmp_path):
    """With a generator EMA, a failed attempt leaves the average as it was before the attempt."""
    torch._dynamo.reset()
    raw = tiny_recipes()["hificodec"]
    trainer = Trainer(load_recipe(raw, ["train.device=cpu", "train.ema_decay=0.9"]), _pool(), tmp_path)
    assert trainer.ema_model is not None
    batches = trainer._batches()
    trainer.train_step(next(batches))
    before = {k: v.clone() for k, v in trainer.ema_model.state_dict().items()}
    compiled, report = try_compiled(trainer, batches, device=torch.device("cpu"), steps=1, eager_steps_per_s=None,
                                    backend="eager", parts=("losses",), tolerance=-1.0)
    assert compiled is None and "CompiledStepMismatch" in report["reason"]
    assert all(torch.equal(before[k], v) for k, v in trainer.ema_model.state_dict().items())
