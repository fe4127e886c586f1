"""Codebooks stay identical across ranks: EMA statistics, k-means init and dead-code restarts are
reduced/broadcast (the original's EMA diverged per rank)."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hificodec.quantization import GroupResidualVQ


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(1234 + rank)  # different RNG per rank: restarts would pick different samples
        q = GroupResidualVQ(
            8, 2, 2, 32, ema=True, kmeans_init=True, kmeans_iters=5, dead_code_steps=2, quantizer_dropout=0.5
        ).train()
        # same initial weights everywhere, as DDP would broadcast them
        for t in q.state_dict().values():
            dist.broadcast(t, 0)
        for step in range(6):
            x = torch.randn(4, 8, 25) * (1 + rank) + step  # each rank sees different data
            q(x)
        torch.save({k: v.clone() for k, v in q.state_dict().items()}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ema_kmeans_and_restarts_stay_identical_across_two_gloo_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    s0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert s0.keys() == s1.keys()
    for name in s0:
        assert torch.equal(s0[name], s1[name]), f"{name} differs between ranks"
    # the test is meaningful only if codebooks actually changed from their initial values
    assert bool(s0["rvqs.0.layers.0.initialized"])
    assert float(s0["rvqs.0.layers.0.cluster_size"].sum()) > 0
