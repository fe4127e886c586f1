"""Single-process behaviour of hificodec.distributed (tests/quantization/test_distributed.py and
tests/train/test_distributed.py run real two-rank gloo groups)."""

import torch

from hificodec.distributed import (
    all_reduce_sum,
    any_across_ranks,
    barrier,
    broadcast,
    init_distributed,
    is_distributed,
    states_match,
)


def test_without_torchrun_one_process_and_no_op_collectives(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled, ctx.device) == (0, 1, True, False, torch.device("cpu"))
    assert not is_distributed()
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_sum(t) is t and broadcast(t) is t and torch.equal(t, torch.tensor([1.0, 2.0]))
    assert torch.equal(any_across_ranks(torch.tensor([0.0, 1.0]), ctx), torch.tensor([0.0, 1.0]))
    assert states_match([t], ctx)
    barrier(ctx)  # returns at once


def test_torchrun_environment_names_the_rank(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no group to join, but the variables are read
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert init_distributed("cpu").local_rank == 3
