import numpy as np
import soundfile as sf
import torch

import hificodec
from hificodec.cli import main
from hificodec.demo import bundled_clip
from tiny_codecs import tiny_preset


def test_models_lists_presets(capsys):
    assert main(["models", "--presets"]) == 0
    out = capsys.readouterr().out
    trained, presets = out.split("Presets", 1)
    assert "hificodec-16k-320d" in presets and "hificodec-16k-320d" not in trained  # presets listed once
    assert "encodec-24k-32d" in out and "7.5, 15" in out


def test_bundled_clip_is_real_speech_at_16k():
    info = sf.info(str(bundled_clip()))
    assert info.samplerate == 16000 and info.channels == 1 and info.duration > 5


def test_demo_on_a_checkpoint_reports_rate_and_scores(tmp_path, capsys):
    model = hificodec.build(tiny_preset("tiny-hificodec"))
    ckpt = hificodec.save(model, tmp_path / "tiny")
    out_wav = tmp_path / "rec.wav"
    assert main(["demo", "--model", str(ckpt), "-o", str(out_wav)]) == 0
    text = capsys.readouterr().out
    assert "1.2 kbps" in text and "PESQ-WB" in text and "STOI" in text
    assert "untrained" not in text  # a checkpoint was given: no untrained-model notice
    rec, sr = sf.read(out_wav)
    assert sr == 16000 and len(rec) == sf.info(str(bundled_clip())).frames
    with torch.no_grad():
        wav = torch.from_numpy(sf.read(str(bundled_clip()), dtype="float32")[0]).view(1, 1, -1)
        expected = hificodec.load(ckpt).decode(hificodec.load(ckpt).encode(wav), length=wav.shape[-1])
    assert np.allclose(rec, np.clip(expected[0, 0].numpy(), -1, 1), atol=1e-4)  # 16-bit WAV rounding


def test_demo_missing_input_is_a_clear_error(tmp_path, capsys):
    model_dir = hificodec.save(hificodec.build(tiny_preset("tiny-hificodec")), tmp_path / "tiny")
    assert main(["demo", "--model", str(model_dir), "--input", str(tmp_path / "nope.wav")]) == 1
    assert "no such file" in capsys.readouterr().err


def _column_starts(line: str) -> list[int]:
    """Where each cell of a table line starts: after the indent, and after every run of 2+ spaces."""
    import re

    return [m.end() for m in re.finditer(r"(^ +| {2,})(?=\S)", line)]


def test_models_tables_line_up(capsys):
    """Every section is a table: its columns start at the same place in every row, whatever the widths
    of the names, scores and rates (a 750 Hz preset or an unscored metric used to push rows out of line)."""
    assert main(["models", "--presets"]) == 0
    sections = capsys.readouterr().out.split("\n\n")
    assert len(sections) == 3
    for section in sections:
        rows = [line for line in section.splitlines()[1:] if line.strip()]
        assert rows
        starts = [_column_starts(line) for line in rows]
        width = min(map(len, starts))  # the last column (summaries) may hold double spaces of its own
        assert width >= 4 and all(s[:width] == starts[0][:width] for s in starts), section


def test_table_pads_each_column_to_its_widest_cell():
    from hificodec.cli.models_cmd import table

    assert table([["a", "bbb", "c"], ["dddd", "e", ""]], indent="") == ["a     bbb  c", "dddd  e"]
