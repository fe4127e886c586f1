import json
import logging
import os
import socket
import subprocess
import sys

from hificodec.train import Trainer, load_recipe
from tiny_codecs import TINY_RECIPES


def test_two_process_gloo_ddp_keeps_ranks_identical(clips, tmp_path):
    """torchrun with 2 CPU processes: the run completes and every rank holds the same weights/codebooks."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "hificodec", "train", str(TINY_RECIPES / "tiny-encodec.yaml"), "--data", str(clips),
        "--valid", str(clips), "--out", str(run),
        "train.max_steps=4", "train.checkpoint_every=2", "valid.every=2", "valid.metric_clips=0",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained to step 4" in done.stdout
    states = [json.loads((p / "state.json").read_text()) for p in sorted((run / "checkpoints").glob("step-*"))]
    assert [s["step"] for s in states] == [2, 4]
    assert all(s["world_size"] == 2 and s["ranks_in_sync"] for s in states)
    # only rank 0 wrote the log: one line per logged step, not two
    kinds = [json.loads(line)["kind"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert kinds.count("train") == 2 and kinds.count("valid") == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_in_step_and_a_one_process_resume_warns(clips, tmp_path, caplog):
    """The multi-node launch of docs/training.md, rehearsed on one machine: two torchrun "nodes" (one
    process each, gloo) meet at 127.0.0.1 and train with gradient accumulation (DDP no_sync on the first
    micro-step) and a generator EMA; both checkpoints say world size 2, global batch 2 x 2 x 2, ranks in
    sync. Resuming with one process warns that the world size and so the global batch changed."""
    run, port = tmp_path / "run", _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    settings = ["train.max_steps=4", "train.checkpoint_every=2", "train.grad_accum_steps=2", "train.ema_decay=0.9",
                "valid.every=100"]

    def node(rank: int) -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
            "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
            "-m", "hificodec", "train", str(TINY_RECIPES / "tiny-encodec.yaml"), "--data", str(clips),
            "--out", str(run), *settings,
        ]

    nodes = [subprocess.Popen(node(rank), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    try:
        outputs = [p.communicate(timeout=300) for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(nodes, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "trained to step 4" in outputs[0][0]  # rank 0 (node 0) reports; node 1's rank stays quiet
    states = [json.loads((p / "state.json").read_text()) for p in sorted((run / "checkpoints").glob("step-*"))]
    assert [s["step"] for s in states] == [2, 4]
    assert all(s["world_size"] == 2 and s["global_batch"] == 8 and s["ranks_in_sync"] for s in states)
    assert all((p / "generator_ema.safetensors").is_file() for p in (run / "checkpoints").glob("step-*"))
    train = [e for e in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if e["kind"] == "train"]
    assert [e["step"] for e in train] == [2, 4]

    with caplog.at_level(logging.WARNING, logger="hificodec.train.trainer"):
        resumed = Trainer(load_recipe(TINY_RECIPES / "tiny-encodec.yaml", [*settings, "train.max_steps=5"]),
                          str(clips), run, resume=True)
    assert resumed.state.step == 4 and resumed.global_batch == 4
    said = "written by 2 process(es) with 1: the global batch changes from 8 to 4"
    assert said in resumed.resume_warning and said in caplog.text
