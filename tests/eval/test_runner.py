import csv
import json

import numpy as np
import pytest
import soundfile as sf

from hificodec.errors import HificodecError
from hificodec.eval import EvalConfig, evaluate, write_report
from hificodec.eval.baselines import BaselineSpec, unavailable_reason
from tiny_codecs import tiny_preset


@pytest.fixture
def folder(tmp_path, speech):
    d = tmp_path / "data"
    d.mkdir()
    sf.write(d / "a_speech.wav", speech(2.0, 16000, seed=1), 16000)
    sf.write(d / "b_speech24k.wav", speech(2.0, 24000, seed=2, f0=200.0), 24000)
    sf.write(d / "c_silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    sf.write(d / "d_short.wav", speech(2.0, 16000, seed=3)[4000:5600], 16000)
    return d


def test_untrained_preset_report(folder, tmp_path):
    report = evaluate(EvalConfig(str(folder), presets=[tiny_preset("tiny-hificodec")], workers=0, progress=False))
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in report.rows}
    assert len(report.rows) == 4
    ok = rows["a_speech.wav"]
    assert ok["error"] == "" and 1.0 <= ok["pesq_wb"] <= 4.64 and ok["sample_rate"] == 16000
    assert rows["b_speech24k.wav"]["sample_rate"] == 16000  # resampled to the model's rate
    assert rows["c_silent.wav"]["pesq_wb"] is None and "silent" in rows["c_silent.wav"]["error"]
    assert rows["d_short.wav"]["stoi"] is None and "too short" in rows["d_short.wav"]["error"]

    (s,) = report.summary["systems"]
    assert s["system"] == "tiny-hificodec-untrained" and s["n_files"] == 4 and s["n_with_errors"] == 2
    assert s["metrics"]["pesq_wb"]["n"] == 2
    # measured rate = nominal rate, up to padding each file to whole frames
    assert s["nominal_kbps"] <= s["kbps"] < s["nominal_kbps"] * 1.1
    assert all(0 < u <= 1 for u in s["codebook_usage"]) and len(s["codebook_usage"]) == s["num_codebooks"]
    assert all(0 <= e <= np.log2(s["codebook_size"]) for e in s["codebook_entropy_bits"])
    assert s["rtf_encode"] > 0 and s["rtf_decode"] > 0

    out = tmp_path / "report"
    written = write_report(report, out)
    names = {p.name for p in written}
    assert {"results.csv", "summary.json", "summary.md", "rate_quality.png"} <= names
    assert any(n.startswith("spectrogram_") for n in names)
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and table[2]["pesq_wb"] == "" and "silent" in table[2]["error"]
    assert json.loads((out / "summary.json").read_text())["n_files"] == 4
    assert "| tiny-hificodec-untrained |" in (out / "summary.md").read_text()
    assert not list(out.glob("*.part"))


def test_bandwidths_make_one_system_each(folder):
    import hificodec

    available = hificodec.build(tiny_preset("tiny-hificodec")).bandwidths
    if len(available) < 2:
        pytest.skip("tiny-hificodec has a single bandwidth")
    report = evaluate(
        EvalConfig(
            str(folder / "a_speech.wav"),
            presets=[tiny_preset("tiny-hificodec")],
            bandwidths=available[:2],
            workers=0,
            progress=False,
            spectrogram_files=0,
        )
    )
    systems = report.summary["systems"]
    assert [s["nominal_kbps"] for s in systems] == pytest.approx(available[:2])
    assert [s["num_codebooks"] for s in systems][0] < systems[1]["num_codebooks"]


def test_bandwidth_below_the_lowest_is_a_clear_error(folder):
    with pytest.raises(HificodecError, match="below the lowest bitrate"):
        evaluate(EvalConfig(str(folder), presets=[tiny_preset("tiny-hificodec")], bandwidths=[0.01], workers=0))


def test_missing_ffmpeg_baseline_is_skipped_with_a_note(folder):
    cfg = EvalConfig(
        str(folder / "a_speech.wav"),
        presets=[tiny_preset("tiny-hificodec")],
        baselines=["opus:6"],
        ffmpeg="/nonexistent/ffmpeg",
        workers=0,
        progress=False,
    )
    report = evaluate(cfg)
    assert [s["system"] for s in report.summary["systems"]] == ["tiny-hificodec-untrained"]
    assert "ffmpeg not found" in report.summary["skipped"][0]
    cfg.presets = []
    with pytest.raises(HificodecError, match="nothing to evaluate.*ffmpeg not found"):
        evaluate(cfg)


def test_opus_baseline_in_worker_processes(folder):
    if (reason := unavailable_reason(BaselineSpec("opus", "12"))) is not None:
        pytest.skip(reason)
    report = evaluate(EvalConfig(str(folder), baselines=["opus:6,12"], workers=2, progress=False))
    systems = {s["system"]: s for s in report.summary["systems"]}
    assert list(systems) == ["opus-6k", "opus-12k"]
    assert systems["opus-6k"]["kbps"] < systems["opus-12k"]["kbps"]
    assert systems["opus-6k"]["metrics"]["pesq_wb"]["mean"] < systems["opus-12k"]["metrics"]["pesq_wb"]["mean"]
    assert all(s["n_with_errors"] == 2 for s in systems.values())  # the silent and the short file


def test_scores_are_the_metrics_of_the_codec_output(tmp_path):
    """The runner scores the shipped model's reconstruction of 3 s of real speech against the input:
    exactly the metrics computed here by hand (a swapped reference and output moves PESQ by 0.008)."""
    import torch

    import hificodec
    from hificodec.audio import load_audio
    from hificodec.demo import bundled_clip
    from hificodec.eval.metrics import pesq_wb, stoi

    audio, _ = load_audio(bundled_clip(), sample_rate=16000, mono=True)
    x = audio[0, :48000]
    sf.write(tmp_path / "clip.wav", x, 16000, subtype="FLOAT")
    config = EvalConfig(str(tmp_path / "clip.wav"), models=[hificodec.DEFAULT_MODEL], workers=0, progress=False,
                        spectrogram_files=0)  # fmt: skip
    (row,) = evaluate(config).rows
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    with torch.inference_mode():
        rec = model.decode(model.encode(torch.from_numpy(x)[None, None]), length=len(x))[0, 0].numpy()
    assert row["error"] == "" and row["delay_ms"] == 0.0  # the codec adds no delay
    assert row["pesq_wb"] == pytest.approx(pesq_wb(x, rec, 16000), abs=1e-4)
    assert row["stoi"] == pytest.approx(stoi(x, rec, 16000), abs=1e-4)
    assert row["pesq_wb"] > 1.0 and 0.3 < row["stoi"] < 1.0  # measured 1.10 and 0.56


def test_unreadable_file_is_reported_per_file(folder):
    (folder / "e_broken.wav").write_bytes(b"RIFF not really a wav")
    report = evaluate(
        EvalConfig(str(folder), presets=[tiny_preset("tiny-hificodec")], workers=0, progress=False, spectrogram_files=0)
    )
    broken = [r for r in report.rows if r["file"].endswith("e_broken.wav")]
    assert len(broken) == 1 and "not a readable audio file" in broken[0]["error"]


def test_checkpoint_directory_is_evaluated_under_its_folder_name(folder, tmp_path):
    import hificodec

    model = hificodec.build(tiny_preset("tiny-hificodec"))
    hificodec.save(model, tmp_path / "my-codec")
    report = evaluate(
        EvalConfig(
            str(folder / "a_speech.wav"),
            models=[str(tmp_path / "my-codec")],
            presets=[tiny_preset("tiny-hificodec")],
            workers=0,
            progress=False,
            spectrogram_files=0,
        )
    )
    saved, untrained = report.summary["systems"]
    assert saved["system"] == "my-codec" and untrained["system"] == "tiny-hificodec-untrained"
    assert saved["metrics"]["pesq_wb"]["n"] == 1
    assert saved["codebook_usage"] != [] and saved["source"] == str(tmp_path / "my-codec")


def test_limit_takes_the_first_or_evenly_spread_files(tmp_path, speech):
    d = tmp_path / "many"
    d.mkdir()
    for k in range(6):
        sf.write(d / f"f{k}.wav", speech(0.5, 16000, seed=k), 16000)
    base = dict(
        baselines=["opus:12"],
        ffmpeg="/nonexistent/ffmpeg",
        presets=[tiny_preset("tiny-hificodec")],
        workers=0,
        progress=False,
        spectrogram_files=0,
    )
    first = evaluate(EvalConfig(str(d), limit=2, **base))
    spread = evaluate(EvalConfig(str(d), limit=2, spread=True, **base))
    assert [r["file"].rsplit("/", 1)[-1] for r in first.rows] == ["f0.wav", "f1.wav"]
    assert [r["file"].rsplit("/", 1)[-1] for r in spread.rows] == ["f0.wav", "f3.wav"]
    with pytest.raises(HificodecError, match="at least 1"):
        evaluate(EvalConfig(str(d), limit=0, **base))
