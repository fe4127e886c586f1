import random

import numpy as np
import pytest
import torch

from hificodec.errors import CheckpointError
from hificodec.train.checkpoints import (
    capture_rng,
    flatten_optimizer,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    unflatten_optimizer,
)


def _model_and_opt():
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def test_optimizer_state_round_trips_through_tensors_and_json():
    _, opt = _model_and_opt()
    tensors, meta = flatten_optimizer("g", opt)
    assert set(tensors) == {f"g.state.{i}.{k}" for i in (0, 1) for k in ("step", "exp_avg", "exp_avg_sq")}
    back = unflatten_optimizer("g", tensors, meta)
    ref = opt.state_dict()
    for pid, state in ref["state"].items():
        for k, v in state.items():
            assert torch.equal(back["state"][pid][k], v)
    assert back["param_groups"] == ref["param_groups"]


def test_rng_states_round_trip():
    tensors, meta = capture_rng()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    restore_rng(tensors, meta)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_save_load_checkpoint_and_errors(tmp_path):
    model, opt = _model_and_opt()
    path = save_checkpoint(tmp_path, 7, model, None, {"generator": opt}, {"epoch": 1}, {"seed": 1})
    assert path.name == "step-00000007" and not list(path.parent.glob(".*"))  # no temp folders left
    listed = (path / "checksums.sha256").read_text().split()[1::2]
    assert sorted(listed) == sorted(p.name for p in path.iterdir() if p.name != "checksums.sha256")
    fresh = torch.nn.Linear(4, 3)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    state = load_checkpoint(path, fresh, None, {"generator": fresh_opt})
    assert state["step"] == 7 and state["epoch"] == 1
    assert torch.equal(fresh.weight, model.weight)
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    (path / "generator.safetensors").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="generator.safetensors does not match its SHA-256"):
        load_checkpoint(path, fresh, None, {"generator": fresh_opt})
    (path / "checksums.sha256").unlink()  # as checkpoints were written before they had digests
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path, fresh, None, {"generator": fresh_opt})
    with pytest.raises(CheckpointError, match="shape"):
        model2 = torch.nn.Linear(5, 3)
        save_checkpoint(tmp_path, 8, model2, None, {}, {}, {})
        load_checkpoint(tmp_path / "checkpoints" / "step-00000008", fresh, None, {})
