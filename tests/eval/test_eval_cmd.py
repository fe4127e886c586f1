import json

import pytest
import soundfile as sf

from hificodec.cli import main
from tiny_codecs import tiny_preset


def test_cli_writes_a_report_and_notes_skipped_baselines(tmp_path, speech, capsys):
    sf.write(tmp_path / "x.wav", speech(2.0, 16000), 16000)
    out = tmp_path / "rep"
    rc = main(
        [
            "eval",
            str(tmp_path / "x.wav"),
            "--preset",
            tiny_preset("tiny-hificodec"),
            "--baselines",
            "opus:6",
            "--ffmpeg",
            "/nonexistent/ffmpeg",
            "--out",
            str(out),
            "--workers",
            "0",
            "--quiet",
            "--no-plots",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert "ffmpeg not found" in captured.err
    assert "| tiny-hificodec-untrained |" in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert [s["system"] for s in summary["systems"]] == ["tiny-hificodec-untrained"]
    assert not list(out.glob("*.png"))


def test_cli_bad_input_is_one_error_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing"), "--preset", tiny_preset("tiny-hificodec"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hificodec eval: error:") and "no such file" in err and "Traceback" not in err
    (tmp_path / "x.wav").write_bytes(b"")
    assert main(["eval", str(tmp_path / "x.wav"), "--no-model", "--quiet", "--out", str(tmp_path / "rep")]) == 1
    assert "nothing to evaluate" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


def test_cli_scores_what_it_can_but_fails_on_unreadable_inputs(tmp_path, speech, capsys):
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "a.wav", speech(1.5, 16000), 16000)
    (data / "b.wav").write_bytes(b"RIFF not really a wav")
    out = tmp_path / "rep"
    argv = ["eval", str(data), "--preset", tiny_preset("tiny-hificodec"), "--out", str(out), "--workers", "0",
            "--quiet", "--no-plots", "--no-html"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "1 of 2 input files could not be read" in err and "b.wav" in err and "Traceback" not in err
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "not a readable audio file" in rows[2]  # the report is written all the same


def test_eval_reports_the_entropy_coded_rate_next_to_the_raw_one(tmp_path, speech, capsys):
    """eval gave only the raw code rate (e.g. 2.02 kbps), not what the model's .hfc files cost coded
    with its entropy tables (1.35): both are in the table, results.csv, summary.json and the page."""
    import csv
    import re

    import torch

    import hificodec
    from hificodec.checkpoint import model_hash
    from hificodec.entropy import fit
    from tiny_codecs import calibration_audio, coding_model

    model = coding_model(tiny_preset("tiny-hificodec"))
    folder = hificodec.save(model, tmp_path / "tiny")
    with torch.no_grad():
        codes = model.encode(calibration_audio(model.sample_rate, seed=1, clips=24)).numpy()
    fit(list(codes), model.codebook_size, model_hash(model), previous_classes=8, parent_classes=8).save(
        folder / "entropy.safetensors"
    )
    sf.write(tmp_path / "x.wav", speech(3.0, 16000), 16000)
    out = tmp_path / "rep"
    argv = ["eval", str(tmp_path / "x.wav"), "--model", str(folder), "--preset", tiny_preset("tiny-hificodec"),
            "--out", str(out), "--workers", "0", "--quiet", "--no-plots", "--listen", "0"]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    systems = {s["system"]: s for s in json.loads((out / "summary.json").read_text())["systems"]}
    tiny, untrained = systems["tiny"], systems["tiny-hificodec-untrained"]
    assert 0 < tiny["coded_kbps"] < tiny["kbps"] and untrained["coded_kbps"] is None  # a preset has no tables
    assert re.search(rf"\| tiny \| {tiny['kbps']:.2f} \| {tiny['coded_kbps']:.2f} \|", table), table
    assert "| coded kbps |" in table
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert float(next(r for r in rows if r["system"] == "tiny")["coded_kbps"]) == pytest.approx(tiny["coded_kbps"],
                                                                                               rel=1e-4)  # fmt: skip
    html = (out / "index.html").read_text()
    assert ">coded kbps</th>" in html and f">{tiny['coded_kbps']:.2f}</td>" in html
    # what `encode` + `info` say the file costs: the same codes, the same groups
    assert main(["encode", str(tmp_path / "x.wav"), "--model", str(folder), "-o", str(tmp_path / "x.hfc"), "-q"]) == 0
    assert main(["info", str(tmp_path / "x.hfc")]) == 0
    coded = float(re.search(r"([\d.]+) kbps per channel entropy-coded", capsys.readouterr().out).group(1))
    assert coded == pytest.approx(tiny["coded_kbps"], rel=0.03)
