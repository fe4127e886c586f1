import json
import os
import subprocess
import sys

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
