"""The GPU leg rehearsed on the CPU: prepare -> run -> shards in a fake $OUT -> finish -> a loadable model."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import hificodec
from hificodec.checkpoint import stored_model_hash
from hificodec.releases import read_index
from tiny_codecs import TINY_RECIPES, tiny_preset

REPO = Path(__file__).resolve().parents[2]
TINY_RECIPE = str(TINY_RECIPES / "tiny-hificodec.yaml")


def _script():
    spec = importlib.util.spec_from_file_location("gpu_leg", REPO / "scripts" / "gpu_leg.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_corpus(root: Path, speakers: int = 3, per_speaker: int = 4, seed: int = 0) -> Path:
    """Voiced tones per 'speaker' (own f0), with a manifest as `hificodec data build-corpus` writes one."""
    rng = np.random.default_rng(seed)
    audio = root / "audio"
    audio.mkdir(parents=True)
    lines = []
    for s in range(speakers):
        for i in range(per_speaker):
            sr = 16000
            t = np.arange(int(sr * (0.6 + 0.1 * i))) / sr
            f0 = 110 + 50 * s + 5 * i
            x = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in (1, 2, 3)) + 0.01 * rng.standard_normal(t.size)
            path = audio / f"s{s}-{i}.flac"
            sf.write(path, x.astype(np.float32), sr)
            lines.append({"path": f"audio/{path.name}", "duration": t.size / sr, "split": "train",
                          "speaker": f"spk{s}", "sample_rate": sr, "channels": 1})
    for name in ("train.jsonl", "valid.jsonl"):
        (root / name).write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return root


def _tiny_line(tmp_path) -> list[str]:
    """A model line other than hificodec-16k: the leg starts from an installed tiny-hificodec."""
    start = tmp_path / "installed-tiny"
    if not start.exists():
        hificodec.save(hificodec.build(tiny_preset("tiny-hificodec")), start)
    return ["--model", "tiny-hificodec", "--model-dir", str(start)]


def _run(dest: Path, out: Path, run_dir: Path, minutes: str, *extra: str) -> subprocess.CompletedProcess:
    """The device half, on the CPU, as its own process (what the printed command runs)."""
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_leg.py"), "run", "--leg-dir", str(dest), "--out", str(out),
         "--minutes", minutes, "--device", "cpu", "--smoke-steps", "2", "--margin-minutes", "0.02",
         "--run-dir", str(run_dir), *extra],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_rehearsal_two_legs_and_finish(tmp_path):
    """prepare -> run (a compiled step, checked against the eager one) -> prepare from what came back (the
    leg state carried) -> run (Adam's moments and the schedule resumed) -> finish on a tiny model line."""
    leg_script = _script()
    corpus = write_corpus(tmp_path / "corpus")
    dest, out = tmp_path / "leg", tmp_path / "out"
    assert leg_script.main([
        "prepare", *_tiny_line(tmp_path), "--corpus", str(corpus), "--leg", "2", "--slices", "2",
        "--recipe", TINY_RECIPE,
        "--minutes", "1", "--dest", str(dest), "--no-wheels", "--device", "cpu", "--batches", "2,4",
        "--compile", "on", "--compile-backend", "eager", "--compile-parts", "losses",
        "train.log_every=2",
    ]) == 0
    index = json.loads((dest / "pack" / "index.json").read_text())
    # slice 0 of 2: half of each speaker's files, every speaker present
    assert len(index["clips"]) == 6 and {c[3] for c in index["clips"]} == {"spk0", "spk1", "spk2"}
    leg = json.loads((dest / "leg.json").read_text())
    start = tmp_path / "installed-tiny"
    assert leg["slice"] == 0 and leg["overrides"] == [f"train.init_from={start}", "train.log_every=2"]
    assert leg["model"] == str(tmp_path / "installed-tiny") and leg["state"] is None  # nothing to carry yet
    assert leg["compile"] == {"policy": "on", "parts": ["losses"], "estimate_s": 150.0, "backend": "eager"}

    done = _run(dest, out, tmp_path / "run", "0.5")
    assert '"status": "FAIL"' not in done.stdout  # every self-check passed on the CPU
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["export/checksums.sha256", "export/config.yaml", "export/leg-state.safetensors",
                     "export/model.safetensors", "log.jsonl"]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    summary = log[-1]
    assert summary["kind"] == "leg" and summary["train"]["steps"] > summary["smoke"]["steps"]
    assert summary["smoke"]["gflop_per_step"] > 0 and any(x.get("kind") == "train" for x in log)
    trials = summary["smoke"]["trials"]
    assert [t["batch"] for t in trials][0] == 2  # timed from the smallest; stops once a size moves less audio
    best = max(trials, key=lambda t: t["clips_per_s"])["batch"]
    assert summary["smoke"]["batch"] == summary["train"]["batch"] == best
    if len(trials) == 2:
        assert trials[1]["gflop_per_step"] == pytest.approx(2 * trials[0]["gflop_per_step"], rel=0.02)
    rule = summary["smoke"]["lr_rule"]
    assert rule["recipe_batch"] == 2 and rule["lr"] == pytest.approx(1e-3 * (best / 2) ** 0.5)
    compiled = summary["compile"]
    assert compiled["backend"] == "eager" and compiled["difference"] <= compiled["tolerance"], compiled
    assert compiled["compile_s"] > 0 and compiled["steps_per_s"] > 0
    assert compiled["used"] == summary["train"]["compiled"]  # kept only when faster than the eager step
    assert summary["train"]["audio_s_per_s"] > 0

    # the next leg starts from what came back: the leg state travels with it
    dest2, out2 = tmp_path / "leg2", tmp_path / "out2"
    assert leg_script.main([
        "prepare", "--model", "tiny-hificodec", "--model-dir", str(out / "export"), "--corpus", str(corpus),
        "--leg", "3", "--slices", "2", "--recipe", TINY_RECIPE, "--dest", str(dest2), "--no-wheels",
        "--device", "cpu", "--batches", "2", "train.log_every=2",
        # a compiled step that fails its check (any difference is over a negative tolerance): the leg goes on
        "--compile", "on", "--compile-backend", "eager", "--compile-parts", "losses", "--compile-tolerance", "-1",
    ]) == 0
    assert json.loads((dest2 / "leg.json").read_text())["state"] == "leg-state.safetensors"
    _run(dest2, out2, tmp_path / "run2", "0.3", "--no-selfcheck")
    summary2 = json.loads((out2 / "log.jsonl").read_text().splitlines()[-1])
    resumed = summary2["resumed"]
    assert resumed["legs"] == [2] and resumed["generator"]["missing"] == 0 and resumed["generator"]["restored"] > 0
    assert resumed["discriminator"]["restored"] > 0
    assert resumed["schedule_steps"] == pytest.approx(summary["train"]["schedule_steps"], abs=0.1)
    assert summary2["train"]["schedule_steps"] > resumed["schedule_steps"]  # one schedule across the legs
    assert not summary2["compile"]["used"] and "CompiledStepMismatch" in summary2["compile"]["reason"]
    assert not summary2["train"]["compiled"] and summary2["train"]["steps_this_stretch"] > 0

    # finish: scored against a "shipped" model (the leg's own starting point: a fresh tiny export)
    shipped = tmp_path / "shipped"
    hificodec.save(hificodec.build(tiny_preset("tiny-hificodec")), shipped)
    results = tmp_path / "results.md"
    results.write_text("# Results\n\nearlier text\n")
    install = tmp_path / "installed"
    assert leg_script.main([
        "finish", str(out2), "--model", "tiny-hificodec", "--leg", "3", "--corpus", str(corpus), "--clips", "3",
        "--shipped", str(shipped),
        "--install", str(install), "--releases", str(tmp_path / "releases.json"), "--results", str(results),
        "--gpu-minutes", "0.5", "--workers", "0",
    ]) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\nearlier text\n") and "| 3 | 0.5 |" in text
    assert "| audio s/s |" in text
    row = [line for line in text.splitlines() if line.startswith("| 3 |")][0]
    if row.rstrip().endswith("| yes |"):  # a trained model beats an untrained one, but the rule decides
        returned = hificodec.load(out2 / "export")
        assert hificodec.weights_hash(hificodec.load(install)) == hificodec.weights_hash(returned)
        (release,) = read_index(tmp_path / "releases.json")["tiny-hificodec"]  # the new release, numbered 1
        assert release.number == 1 and release.model_hash == stored_model_hash(install)
        assert release.scores["valid"]["files"] == 3 and "GPU leg 3" in release.summary
        # installed with its discriminator and the state the next leg carries on from
        assert (install / "discriminator" / "discriminator.safetensors").is_file()
        assert (install / "leg-state.safetensors").is_file()
        dest3 = tmp_path / "leg3"
        assert leg_script.main([
            "prepare", "--model", "tiny-hificodec", "--model-dir", str(install), "--corpus", str(corpus), "--leg",
            "4", "--recipe", TINY_RECIPE, "--dest", str(dest3), "--no-wheels", "--device", "cpu",
        ]) == 0
        assert json.loads((dest3 / "leg.json").read_text())["state"] == "leg-state.safetensors"
    else:
        assert not install.exists() and not (tmp_path / "releases.json").exists()


def test_a_killed_leg_still_returns_its_last_export(tmp_path):
    """The lease can end mid-leg: exports replace each other atomically, so what is in OUT always loads."""
    leg_script = _script()
    corpus = write_corpus(tmp_path / "corpus", speakers=2)
    dest, out = tmp_path / "leg", tmp_path / "out"
    assert leg_script.main([
        "prepare", *_tiny_line(tmp_path), "--corpus", str(corpus), "--leg", "0", "--slices", "1", "--recipe",
        TINY_RECIPE, "--dest", str(dest), "--no-wheels", "--device", "cpu", "--batches", "2",
        "train.export_every_minutes=0.02",
    ]) == 0
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "gpu_leg.py"), "run", "--leg-dir", str(dest), "--out", str(out),
         "--minutes", "5", "--device", "cpu", "--no-selfcheck", "--smoke-steps", "2", "--run-dir",
         str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )
    def exports() -> int:  # OUT's log is rewritten after every export
        log = out / "log.jsonl"
        return log.read_text().count('"kind": "export"') if log.is_file() else 0

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and exports() < 3:
            time.sleep(0.2)
        proc.kill()  # no signal handler runs: what a lease ending looks like
    finally:
        proc.wait(timeout=30)
    assert exports() >= 3 and proc.returncode != 0
    model = hificodec.load(out / "export")
    assert model.name == "tiny-hificodec"
    assert (out / "export" / "leg-state.safetensors").is_file()
    leftovers = [p.name for p in out.iterdir() if p.name not in ("export", "log.jsonl")]
    assert all(name.startswith(".") for name in leftovers), leftovers  # at most an interrupted temp folder


def test_prepare_refuses_what_cannot_travel(tmp_path, capsys):
    leg_script = _script()
    corpus = write_corpus(tmp_path / "corpus", speakers=1)
    code = leg_script.main([
        "prepare", *_tiny_line(tmp_path), "--corpus", str(corpus), "--leg", "0", "--slices", "1", "--recipe",
        TINY_RECIPE, "--dest", str(tmp_path / "leg"), "--no-wheels", "--travel-limit-mib", "1",
    ])
    assert code == 2 and "would travel" in capsys.readouterr().err


def test_prepare_cuts_the_pack_to_what_the_tree_leaves(tmp_path, capsys):
    """A tree that grows (a second shipped model) leaves less of the 64 MiB for the pack: prepare packs
    fewer clips, every speaker kept, and says how many hours it packed."""
    leg_script = _script()
    corpus = write_corpus(tmp_path / "corpus")  # 12 clips, 9 s, ~37 kB as Opus
    tree = leg_script._travelling_bytes() / 2**20
    limit = tree + leg_script.TRAVEL_MARGIN_MIB + 0.025  # room for ~26 kB of pack
    assert leg_script.main([
        "prepare", *_tiny_line(tmp_path), "--corpus", str(corpus), "--leg", "0", "--slices", "1", "--recipe",
        TINY_RECIPE, "--dest", str(tmp_path / "leg"), "--no-wheels", "--travel-limit-mib", f"{limit:.4f}",
    ]) == 0
    printed = capsys.readouterr().out
    index = json.loads((tmp_path / "leg" / "pack" / "index.json").read_text())
    leg = json.loads((tmp_path / "leg" / "leg.json").read_text())
    assert leg["max_mib"] == pytest.approx(0.02) and index["bytes"] <= 0.02 * 2**20
    assert 3 <= len(index["clips"]) < 12 and {c[3] for c in index["clips"]} == {"spk0", "spk1", "spk2"}
    assert f"{len(index['clips'])} of 12 clips, {index['seconds'] / 3600:.2f} h of the slice's 0.00 h" in printed
    assert "limit 0.02 MiB" in printed


def test_prepare_and_finish_refuse_another_line(tmp_path, capsys):
    leg_script = _script()
    corpus = write_corpus(tmp_path / "corpus", speakers=1)
    start = _tiny_line(tmp_path)[-1]
    code = leg_script.main([
        "prepare", "--model", "hificodec-16k-mel", "--model-dir", start, "--corpus", str(corpus), "--leg", "0",
        "--recipe", TINY_RECIPE, "--dest", str(tmp_path / "leg"), "--no-wheels",
    ])
    assert code == 2 and "not the line 'hificodec-16k-mel'" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    hificodec.save(hificodec.load(start), tmp_path / "out" / "export")
    code = leg_script.main(["finish", str(tmp_path / "out"), "--model", "hificodec-16k-mel", "--leg", "0"])
    assert code == 2 and "not the line 'hificodec-16k-mel'" in capsys.readouterr().err


def test_leg_command_fits_the_device_tool():
    command = _script().leg_command(".leg", 9.0)
    assert len(command) <= 2000 and "--minutes 9 " in command and "$OUT/leg.log" in command


@pytest.mark.parametrize("blocked", [("soundfile", "soxr", "pesq", "pystoi")])
def test_trains_without_soundfile_soxr_pesq_pystoi(blocked):
    """The GPU image has none of these: importing hificodec and a training step from a pool must not need them."""
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import tempfile
import numpy as np, torch
import hificodec
from hificodec.data.device_pack import PackAudio
from hificodec.data.device_pool import DevicePool
from hificodec.train import Trainer, load_recipe
rng = np.random.default_rng(0)
audio = (rng.standard_normal(16000 * 3) * 3000).astype(np.int16)
pack = PackAudio(audio, np.array([0, 16000]), np.array([16000, 32000]), ["a", "b"], 16000)
recipe = load_recipe("{TINY_RECIPE}", ["train.device=cpu"])
with tempfile.TemporaryDirectory() as run:
    trainer = Trainer(recipe, DevicePool(pack, "cpu"), run)
    state = trainer.fit(max_steps=2)
    assert state.step == 2, state
    assert all(np.isfinite(list(trainer.history[-1].losses.values())))
print("trained")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=REPO)
    assert done.returncode == 0 and "trained" in done.stdout, done.stderr[-3000:]
