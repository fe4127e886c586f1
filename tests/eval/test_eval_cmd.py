import json

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
