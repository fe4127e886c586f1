from pathlib import Path

import numpy as np
import soundfile as sf

import hificodec
from hificodec.cli import main
from tiny_codecs import TINY_RECIPES


def _clips(folder: Path) -> Path:
    folder.mkdir()
    t = np.arange(8000) / 16000
    for i in range(3):
        sf.write(folder / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t)).astype(np.float32), 16000)
    return folder


def test_train_resume_and_export_through_the_cli(tmp_path, capsys, caplog):
    data = _clips(tmp_path / "data")
    run, out = tmp_path / "run", tmp_path / "model"
    recipe = str(TINY_RECIPES / "tiny-hificodec.yaml")
    args = ["train", recipe, "--data", str(data), "--out", str(run), "train.max_steps=2"]
    assert main(args) == 0
    assert "trained to step 2" in capsys.readouterr().out
    # no validation data: said once, at the start
    assert [r.message for r in caplog.records].count(
        "training without validation: no validation clips (give --valid, or split=valid entries in the data); no "
        "best checkpoint will be kept, and export takes the last one") == 1
    # the run directory is not silently overwritten ...
    assert main(args) == 1
    assert "--resume" in capsys.readouterr().err
    # ... but continues with --resume (overrides may follow options; here a generator EMA from now on)
    assert main(["train", str(TINY_RECIPES / "tiny-hificodec.yaml"), "--data", str(data), "--out", str(run),
                 "--resume", "train.max_steps=3", "train.ema_decay=0.5"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    assert main(["export", str(run), str(out)]) == 0
    # the checkpoint taken is named: there is no best one without validation
    assert f"exported {run} checkpoint step-00000003 (no best checkpoint: no validation ran) to {out}" in (
        capsys.readouterr().out)
    assert hificodec.load(out).sample_rate == 16000
    # the export is the EMA; --live-weights exports the trained weights
    assert main(["export", str(run), str(tmp_path / "live"), "--live-weights"]) == 0
    assert hificodec.weights_hash(hificodec.load(out)) != hificodec.weights_hash(hificodec.load(tmp_path / "live"))


def test_bad_recipe_and_data_give_clear_errors(tmp_path, capsys):
    data = _clips(tmp_path / "data")
    assert main(["train", str(TINY_RECIPES / "tiny-hificodec.yaml"), "--data", str(data), "--out", str(tmp_path / "r"),
                 "train.bogus=1"]) == 1
    assert "unknown key(s) ['bogus'] in 'train'" in capsys.readouterr().err
    assert main(["train", str(TINY_RECIPES / "tiny-hificodec.yaml"), "--data", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "r2")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "o")]) == 1
    assert "no checkpoints found" in capsys.readouterr().err
