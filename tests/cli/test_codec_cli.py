import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import hificodec
from hificodec.bitstream import read_codes, read_header
from hificodec.cli import main
from tiny_codecs import coding_model, tiny_preset


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    hificodec.save(coding_model(tiny_preset("tiny-encodec")), path)  # seeds itself: the same whatever ran before
    return str(path)


@pytest.fixture
def wav(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "in.wav"
    sf.write(str(path), (0.3 * rng.standard_normal((22050 + 11, 2))).astype(np.float32), 22050, subtype="FLOAT")
    return path


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("cmd", ["encode", "decode", "reconstruct", "info", "tokenize"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: hificodec " + cmd in capsys.readouterr().out


def test_encode_info_decode(model_dir, wav, tmp_path, capsys):
    code, out, _ = run(["encode", wav, "--model", model_dir, "--n-q", 2, "--quiet"], capsys)
    assert code == 0 and out == ""
    hfc = tmp_path / "in.hfc"
    header = read_header(hfc)
    assert (header.channels, header.num_codebooks, header.source_sample_rate) == (2, 2, 22050)
    code, out, _ = run(["info", hfc], capsys)
    assert code == 0 and "checksums OK" in out and "2 codebooks of 64" in out and "1.000 s" in out
    assert "0.600 kbps per channel" in out and f"{header.bitrate / 1000:.3f} kbps payload" in out
    code, _, _ = run(["decode", hfc, "-o", tmp_path / "out.flac", "-q"], capsys)
    assert code == 1  # the model named in the file is not installed
    code, _, _ = run(["decode", hfc, "-o", tmp_path / "out.flac", "--model", model_dir, "-q"], capsys)
    assert code == 0
    info = sf.info(str(tmp_path / "out.flac"))
    assert (info.samplerate, info.frames, info.channels) == (22050, 22061, 2)
    argv = ["decode", hfc, "-o", tmp_path / "out16.wav", "--model", model_dir, "--sample-rate", 16000]
    code, _, _ = run(argv, capsys)
    assert code == 0 and sf.info(str(tmp_path / "out16.wav")).samplerate == 16000


def test_encode_many_to_out_dir_with_bandwidth(model_dir, wav, tmp_path, capsys):
    second = tmp_path / "second.wav"
    sf.write(str(second), np.zeros((100, 1), np.float32) + 0.1, 8000)
    (tmp_path / "hfc").mkdir()
    code, out, _ = run(["encode", wav, second, "--out-dir", tmp_path / "hfc", "--model", model_dir,
                        "--bandwidth", 0.6], capsys)  # fmt: skip
    assert code == 0 and out.count("kbps") == 2
    assert read_codes((tmp_path / "hfc" / "second.hfc").read_bytes())[0].num_codebooks == 2
    assert read_header(tmp_path / "hfc" / "in.hfc").channels == 2


def test_reconstruct_prints_bitrate(model_dir, wav, tmp_path, capsys):
    code, out, _ = run(["reconstruct", wav, "--model", model_dir], capsys)
    assert code == 0 and "1.200 kbps per channel" in out and "2 ch" in out  # 4 codebooks x 6 bits x 50 Hz
    info = sf.info(str(tmp_path / "in.reconstructed.wav"))
    assert (info.samplerate, info.frames, info.channels) == (22050, 22061, 2)


def test_tokenize(model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(str(data / f"u{i}.wav"), np.full(4000 + 500 * i, 0.1 * i, np.float32), 16000)
    code, out, _ = run(["tokenize", data, "--out", tmp_path / "tok", "--model", model_dir, "--batch-size", 2], capsys)
    assert code == 0 and "tokenized 3 of 3 files" in out and "hours of audio per minute" in out
    assert np.load(tmp_path / "tok" / "codes" / "u2.npy").shape == (4, 16)
    code, out, _ = run(["tokenize", data, "--out", tmp_path / "tok", "--model", model_dir], capsys)
    assert code == 0 and "tokenized 0 of 3 files" in out and "3 already done" in out


def test_default_model_missing_is_explained(wav, capsys, monkeypatch):
    monkeypatch.setattr(hificodec, "DEFAULT_MODEL", "no-such-default-model")
    code, _, err = run(["encode", wav], capsys)
    assert code == 1 and "no trained model is installed" in err and "--model DIR" in err


def bad_file(kind, tmp_path, wav, model_dir):
    if kind == "missing":
        return tmp_path / "nope.wav"
    if kind == "directory":
        (tmp_path / "d.wav").mkdir()
        return tmp_path / "d.wav"
    if kind == "not_audio":
        (tmp_path / "t.wav").write_text("hello")
        return tmp_path / "t.wav"
    if kind == "empty":
        sf.write(str(tmp_path / "e.wav"), np.zeros((0, 1), np.float32), 16000)
        return tmp_path / "e.wav"
    if kind == "nan":
        sf.write(str(tmp_path / "n.wav"), np.array([[0.0], [np.inf]], np.float32), 16000, subtype="FLOAT")
        return tmp_path / "n.wav"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,message", [("missing", "no such file"), ("directory", "is a directory"),
                                          ("not_audio", "not a readable audio"), ("empty", "no audio samples"),
                                          ("nan", "NaN")])  # fmt: skip
def test_bad_audio(kind, message, model_dir, wav, tmp_path, capsys):
    src = bad_file(kind, tmp_path, wav, model_dir)
    before = sorted(p.name for p in tmp_path.iterdir())
    for cmd, out_name in [("encode", "out.hfc"), ("reconstruct", "out.wav")]:
        code, out, err = run([cmd, src, "--model", model_dir, "-o", tmp_path / out_name], capsys)
        assert code == 1 and f"hificodec {cmd}: error: " in err and message in err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("kind,message", [("truncated", "truncated"), ("bitflip", "checksum mismatch"),
                                          ("version", "unsupported .hfc format version 7"),
                                          ("other_model", "not by 'tiny-encodec'"),
                                          ("wav", "wrong magic")])  # fmt: skip
def test_bad_hfc(kind, message, model_dir, wav, tmp_path, capsys):
    assert run(["encode", wav, "--model", model_dir, "-q"], capsys)[0] == 0
    data = bytearray((tmp_path / "in.hfc").read_bytes())
    use_model = model_dir
    if kind == "truncated":
        data = data[: len(data) - 3]
    elif kind == "bitflip":
        data[-20] ^= 1
    elif kind == "version":
        data[4] = 7
    elif kind == "wav":
        data = bytearray(wav.read_bytes())
    elif kind == "other_model":
        other = coding_model(tiny_preset("tiny-encodec"), seed=1)
        hificodec.save(other, tmp_path / "other")  # same preset, other weights
        use_model = tmp_path / "other"
    (tmp_path / "bad.hfc").write_bytes(bytes(data))
    for cmd in (["decode", tmp_path / "bad.hfc", "--model", use_model, "-o", tmp_path / "out.wav"],
                ["info", tmp_path / "bad.hfc"]):  # fmt: skip
        if kind == "other_model" and cmd[0] == "info":
            continue  # info does not need the model
        code, _, err = run(cmd, capsys)
        assert code == 1 and message in err, err
    assert not (tmp_path / "out.wav").exists()


def test_output_protection(model_dir, wav, tmp_path, capsys):
    code, _, err = run(["encode", wav, "--model", model_dir, "-o", wav], capsys)
    assert code == 1 and "would overwrite its input" in err
    assert run(["encode", wav, "--model", model_dir, "-q"], capsys)[0] == 0
    code, _, err = run(["encode", wav, "--model", model_dir], capsys)
    assert code == 1 and "already exists (use --force" in err
    assert run(["encode", wav, "--model", model_dir, "-q", "--force"], capsys)[0] == 0
    code, _, err = run(["encode", wav, "--model", model_dir, "-o", tmp_path / "missing" / "x.hfc"], capsys)
    assert code == 1 and "does not exist" in err
    code, _, err = run(["encode", wav, wav, "--model", model_dir, "-o", tmp_path / "x.hfc"], capsys)
    assert code == 1 and "--out-dir" in err
    code, _, err = run(["decode", tmp_path / "in.hfc", "--model", model_dir, "-o", tmp_path / "x.txt"], capsys)
    assert code == 1 and "unsupported output extension" in err


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "hificodec", "info", "/no/such.hfc"], capture_output=True, text=True)
    assert proc.returncode == 1 and "hificodec info: error: /no/such.hfc: no such file" in proc.stderr


def test_decode_finds_the_installed_model_named_in_the_file(wav, tmp_path, capsys, monkeypatch):
    shipped = tmp_path / "pretrained"
    model = hificodec.build(tiny_preset("tiny-encodec"))
    hificodec.save(model, shipped / model.name)
    monkeypatch.setattr(hificodec.checkpoint, "pretrained_dir", lambda: shipped)
    monkeypatch.setattr(hificodec, "DEFAULT_MODEL", model.name)
    assert run(["encode", wav, "-q"], capsys)[0] == 0  # the default model
    code, out, _ = run(["decode", tmp_path / "in.hfc", "-o", tmp_path / "back.wav"], capsys)
    assert code == 0 and "22050 Hz" in out
    assert sf.info(str(tmp_path / "back.wav")).frames == 22061


def test_decode_and_info_need_a_file(model_dir, tmp_path, capsys):
    for cmd in (["decode", tmp_path, "--model", model_dir, "-o", tmp_path / "o.wav"], ["info", tmp_path]):
        code, _, err = run(cmd, capsys)
        assert code == 1 and "is a directory, expected a .hfc file" in err
    code, _, err = run(["decode", tmp_path / "none.hfc", "--model", model_dir, "-o", tmp_path / "o.wav"], capsys)
    assert code == 1 and "no such file" in err
    assert not (tmp_path / "o.wav").exists()


def test_out_dir_is_created_and_a_missing_output_folder_is_refused_before_any_work(model_dir, wav, tmp_path, capsys):
    code, _, _ = run(["encode", wav, "--model", model_dir, "--out-dir", tmp_path / "new" / "codes", "-q"], capsys)
    assert code == 0 and (tmp_path / "new" / "codes" / "in.hfc").is_file()
    code, out, err = run(["encode", wav, "--model", model_dir, "-o", tmp_path / "nodir" / "x.hfc"], capsys)
    assert code == 1 and "output folder" in err and "does not exist" in err and "%|" not in err  # no progress bar
