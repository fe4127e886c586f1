"""`hificodec stream encode | decode`: real pipes between processes, cut streams, raw PCM input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import hificodec
from hificodec.audio import save_audio
from hificodec.bitstream import HfcReader, read_codes
from hificodec.cli import main
from tiny_codecs import calibration_audio, coding_model, tiny_preset

#: the streamed pipe's output against `hificodec reconstruct` (both 16-bit WAV): measured 3.1e-5, one
#: least significant bit, on the tiny codec without an oscillator; the margin covers a rounding flip
PIPE_TOLERANCE = 1e-4
SRC = str(Path(hificodec.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stream")
    model = coding_model(tiny_preset("tiny-hificodec-16k-causal"))
    hificodec.save(model, root / "tiny")
    clip = calibration_audio(16000, seed=7, clips=3).reshape(1, -1).numpy()[:, :40000]
    save_audio(root / "clip.wav", clip, 16000)
    return root


def _cli(*argv: str, stdin=None, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hificodec", *argv], stdin=stdin, stdout=stdout,
                            stderr=subprocess.PIPE, env=ENV)  # fmt: skip


def test_pipe_matches_reconstruct(setup):
    root = setup
    enc = _cli("stream", "encode", str(root / "clip.wav"), "--model", str(root / "tiny"))
    dec = _cli("stream", "decode", "-", "-o", str(root / "out.wav"), "--model", str(root / "tiny"), stdin=enc.stdout)
    assert enc.stdout is not None
    enc.stdout.close()  # the decoder holds the pipe's read end
    _, dec_err = dec.communicate(timeout=300)
    enc_err = enc.stderr.read() if enc.stderr else b""
    assert enc.wait(timeout=60) == 0 and dec.returncode == 0, (enc_err, dec_err)
    assert main(["reconstruct", str(root / "clip.wav"), "--model", str(root / "tiny"), "-o",
                 str(root / "rec.wav"), "--force", "-q"]) == 0  # fmt: skip
    streamed, sr = sf.read(root / "out.wav", dtype="float32")
    whole, _ = sf.read(root / "rec.wav", dtype="float32")
    assert sr == 16000 and streamed.shape == whole.shape == (40000,)
    assert float(np.abs(streamed - whole).max()) <= PIPE_TOLERANCE


def test_a_cut_stream_leaves_a_valid_shorter_wav(setup):
    root = setup
    full = subprocess.run([sys.executable, "-m", "hificodec", "stream", "encode", str(root / "clip.wav"), "--model",
                           str(root / "tiny")], capture_output=True, env=ENV, check=True).stdout  # fmt: skip
    header, codes = read_codes(full)  # a complete stream reads whole
    assert full[4:6] == b"\x04\x00" and header.num_samples == 40000 and codes.shape[-1] == 125
    for cut in (len(full) // 2, len(full) - 30):  # inside a group / between the last group and the end record
        out = root / f"cut{cut}.wav"
        proc = subprocess.run([sys.executable, "-m", "hificodec", "stream", "decode", "-", "-o", str(out), "--model",
                               str(root / "tiny")], input=full[:cut], capture_output=True, env=ENV)  # fmt: skip
        err = proc.stderr.decode()
        assert proc.returncode == 1 and "Traceback" not in err and "error:" in err, err
        audio, sr = sf.read(out, dtype="float32")  # a valid WAV, shorter than the clip
        assert sr == 16000 and 0 < audio.shape[0] < 40000 and audio.shape[0] % 320 == 0


def test_killed_encoder_mid_stream(setup):
    """The encoder dies mid-stream (its input is still arriving): the decoder ends cleanly with what came."""
    root = setup
    pcm = (calibration_audio(16000, seed=3, clips=4).reshape(-1).numpy() * 32767).astype("<i2").tobytes()
    enc = _cli("stream", "encode", "-", "--model", str(root / "tiny"), stdin=subprocess.PIPE)
    out = root / "killed.wav"
    dec = _cli("stream", "decode", "-", "-o", str(out), "--model", str(root / "tiny"), stdin=enc.stdout)
    assert enc.stdin is not None and enc.stdout is not None
    enc.stdout.close()
    enc.stdin.write(pcm[: len(pcm) // 2])
    enc.stdin.flush()
    deadline = 120

    def decoded_bytes() -> int:  # the output is written under a temp name until the decoder ends
        return max((p.stat().st_size for p in root.glob(".killed.wav.*.part")), default=0)

    while deadline > 0 and decoded_bytes() < 44 + 2 * 16000:  # a second decoded
        try:
            dec.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            deadline -= 0.5
    enc.kill()
    enc.wait()
    _, err = dec.communicate(timeout=120)
    assert dec.returncode == 1 and b"Traceback" not in err and b"ended before its end record" in err, err
    audio, _ = sf.read(out, dtype="float32")
    assert 16000 <= audio.shape[0] <= 32000  # at most what was sent before the kill


def test_raw_pcm_in_and_out(setup, capsysbinary):
    root = setup
    clip, _ = sf.read(root / "clip.wav", dtype="int16")
    (root / "clip.raw").write_bytes(clip.astype("<i2").tobytes())
    assert main(["stream", "encode", str(root / "clip.raw"), "-o", str(root / "raw.hfc"), "--model",
                 str(root / "tiny"), "--force", "-q"]) == 0  # fmt: skip
    with open(root / "raw.hfc", "rb") as f:
        reader = HfcReader(f)
        reader.read_all()
        assert reader.complete and reader.end_header is not None and reader.end_header.num_samples == 40000
    assert main(["stream", "decode", str(root / "raw.hfc"), "--raw", "--model", str(root / "tiny"), "-q"]) == 0
    raw = np.frombuffer(capsysbinary.readouterr().out, "<i2")
    assert raw.shape == (40000,)


def test_info_and_decode_read_a_stream_file(setup, capsys):
    root = setup
    hfc = root / "info.hfc"
    assert main(["stream", "encode", str(root / "clip.wav"), "-o", str(hfc), "--model", str(root / "tiny"), "-q"]) == 0
    assert main(["info", str(hfc)]) == 0
    out = capsys.readouterr().out
    assert ".hfc version 4" in out and "2.500 s" in out and "125 frames" in out
    dst = root / "info.decoded.wav"
    assert main(["decode", str(hfc), "--model", str(root / "tiny"), "-o", str(dst), "-q"]) == 0
    assert sf.read(dst)[0].shape == (40000,)


def test_demo_streams_a_clip_and_writes_what_a_whole_file_decode_gives(setup, capsys):
    root = setup
    code = main(["stream", "demo", "--fast", "--input", str(root / "clip.wav"), "--model", str(root / "tiny"),
                 "-o", str(root / "demo.wav"), "--every", "25"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "algorithmic latency 40 ms" in out
    progress = [line for line in out.splitlines() if line.startswith("t=")]
    assert len(progress) == 40000 // 320 // 25 and all("kbps" in line and "encode" in line for line in progress)
    streamed, sr = sf.read(root / "demo.wav", dtype="float32")
    assert main(["reconstruct", str(root / "clip.wav"), "--model", str(root / "tiny"), "-o",
                 str(root / "rec-demo.wav"), "--force", "-q"]) == 0  # fmt: skip
    whole, _ = sf.read(root / "rec-demo.wav", dtype="float32")
    assert sr == 16000 and streamed.shape == whole.shape
    assert float(np.abs(streamed - whole).max()) <= PIPE_TOLERANCE


@pytest.mark.parametrize("data, message", [
    (b"abc", "ends inside a sample frame"),
    (b"fLaC\x00\x00\x00\x22" + bytes(64), "compressed audio"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt \x08\x00\x00\x00" + bytes(8), "fmt chunk is 8 bytes"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x00\x00\x80\x3e\x00\x00" + bytes(8), "0 channel"),
    (b"", "no samples"),
])  # fmt: skip
def test_bad_input_is_one_line_and_leaves_no_file(setup, tmp_path, data, message):
    """Raw input cut inside a sample, compressed audio, malformed WAV headers, nothing at all: a
    one-line message, exit 1, and no .hfc that holds only a header."""
    out = tmp_path / "bad.hfc"
    proc = subprocess.run([sys.executable, "-m", "hificodec", "stream", "encode", "-", "-o", str(out), "--model",
                           str(setup / "tiny")], input=data, capture_output=True, env=ENV, timeout=120)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()


def _fmt(tag=1, channels=1, rate=16000, align=2, bits=16) -> bytes:
    return b"fmt \x10\x00\x00\x00" + struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


@pytest.mark.parametrize("data, message", [
    (b"RIFF\x16\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + bytes(10), "ends inside its fmt chunk (10 of its 16 bytes)"),
    (b"RIFX\x00\x00\x00\x24WAVE" + bytes(40), "big-endian WAV (RIFX)"),
    (b"RIFF\x00\x00\x00\x00WAVE" + _fmt(align=7) + b"data\x08\x00\x00\x00" + bytes(8), "block align is 7 bytes"),
])  # fmt: skip
def test_wav_edge_cases_are_one_line(setup, tmp_path, capsys, data, message):
    src = tmp_path / "in.wav"
    src.write_bytes(data)
    code = main(["stream", "encode", str(src), "-o", str(tmp_path / "out.hfc"), "--model", str(setup / "tiny")])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.hfc").exists()


def test_a_wav_data_length_beyond_the_file_is_reported(setup, tmp_path, capsys):
    pcm = np.zeros(3200, "<i2").tobytes()
    src = tmp_path / "cut.wav"
    src.write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + _fmt() + b"data" + struct.pack("<I", 4 * len(pcm)) + pcm)
    code = main(["stream", "encode", str(src), "-o", str(tmp_path / "out.hfc"), "--model", str(setup / "tiny"), "-q"])
    err = capsys.readouterr().err
    assert code == 0 and f"states {4 * len(pcm)} bytes of audio data but the input ended after {len(pcm)}" in err


def test_group_frames_fit_the_16_bit_count(setup, capsys):
    with pytest.raises(SystemExit) as e:
        main(["stream", "encode", "-", "--group-frames", "70000"])
    assert e.value.code == 2 and "between 1 and 65535" in capsys.readouterr().err


def test_encode_help_states_what_it_writes(capsys):
    with pytest.raises(SystemExit):
        main(["stream", "encode", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "version 1/2" not in out and "groups under 50 frames are packed unless TABLES is given" in out


@pytest.mark.parametrize("ext, fmt", [("flac", "FLAC"), ("mp3", "MP3"), ("ogg", "OGG"), ("wav", "WAV")])
def test_decode_writes_the_format_the_extension_names(setup, tmp_path, ext, fmt):
    """`stream decode -o out.flac` wrote WAV bytes under that name (exit 0); it now writes what the
    extension names, as `decode` does."""
    root = setup
    hfc = tmp_path / "s.hfc"
    assert main(["stream", "encode", str(root / "clip.wav"), "-o", str(hfc), "--model", str(root / "tiny"), "-q"]) == 0
    out = tmp_path / f"out.{ext}"
    assert main(["stream", "decode", str(hfc), "-o", str(out), "--model", str(root / "tiny"), "-q"]) == 0
    info = sf.info(str(out))
    assert (info.format, info.samplerate, info.channels) == (fmt, 16000, 1)
    if fmt != "MP3":  # an MP3 decoder adds its own padding
        assert info.frames == 40000
    assert not list(tmp_path.glob(".*.part"))


@pytest.mark.parametrize("argv, code, message", [
    (["-o", "{tmp}/out.txt"], 1, "unsupported output extension '.txt'"),
    (["-o", "{tmp}/out"], 1, "unsupported output extension ''"),
    (["-o", "{tmp}/out.flac", "--raw"], 2, "--raw writes headerless PCM, but the name says FLAC"),
])  # fmt: skip
def test_decode_refuses_a_format_it_cannot_write_before_reading(setup, tmp_path, capsys, argv, code, message):
    hfc = tmp_path / "s.hfc"
    assert main(["stream", "encode", str(setup / "clip.wav"), "-o", str(hfc), "--model", str(setup / "tiny"),
                 "-q"]) == 0  # fmt: skip
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["stream", "decode", str(hfc), *argv, "--model", str(setup / "tiny")]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_raw_named_output_is_raw(setup, tmp_path):
    hfc = tmp_path / "s.hfc"
    assert main(["stream", "encode", str(setup / "clip.wav"), "-o", str(hfc), "--model", str(setup / "tiny"),
                 "-q"]) == 0  # fmt: skip
    assert main(["stream", "decode", str(hfc), "-o", str(tmp_path / "out.pcm"), "--model", str(setup / "tiny"),
                 "-q"]) == 0  # fmt: skip
    assert (tmp_path / "out.pcm").stat().st_size == 2 * 40000


def test_an_empty_input_leaves_no_output_anywhere(setup, tmp_path):
    """`stream encode - </dev/null | stream decode - -o x.wav` left a header-only WAV (and the encoder
    had sent a header down the pipe): both now say so in one line, and no file appears."""
    out = tmp_path / "x.wav"
    with open(os.devnull, "rb") as empty:
        enc = _cli("stream", "encode", "-", "--model", str(setup / "tiny"), stdin=empty)
        dec = _cli("stream", "decode", "-", "-o", str(out), "--model", str(setup / "tiny"), stdin=enc.stdout)
        assert enc.stdout is not None
        enc.stdout.close()
        _, dec_err = dec.communicate(timeout=300)
        enc_err = enc.stderr.read().decode() if enc.stderr else ""
        assert enc.wait(timeout=60) == 1 and dec.returncode == 1
    for err in (enc_err, dec_err.decode()):
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "the input holds no samples" in enc_err and "it is empty" in dec_err.decode()
    assert list(tmp_path.iterdir()) == []


def test_a_stream_of_a_header_alone_writes_nothing(setup, tmp_path, capsys):
    from hificodec.bitstream import HfcStreamWriter
    from hificodec.compress import make_header

    model = hificodec.load(setup / "tiny")
    hfc = tmp_path / "head.hfc"
    with open(hfc, "wb") as f:
        HfcStreamWriter(f, make_header(model, 1, 16000, 16000))
    assert main(["stream", "decode", str(hfc), "-o", str(tmp_path / "x.wav"), "--model", str(setup / "tiny")]) == 1
    err = capsys.readouterr().err
    assert "ended before its end record" in err and "nothing decoded, no output written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.hfc"]


@pytest.mark.parametrize("given, refused", [
    (["--rate", "8000"], "not --rate 8000"),
    (["--channels", "2"], "not --channels 2"),
    (["--rate", "8000", "--channels", "2"], "not --rate 8000 and --channels 2"),
    (["--rate", "16000", "--channels", "1"], None),  # what the WAV states: nothing to refuse
])  # fmt: skip
def test_rate_and_channels_are_for_raw_pcm_not_wav(setup, tmp_path, capsys, given, refused):
    """--rate and --channels were silently ignored for a WAV input (its header wins)."""
    out = tmp_path / "out.hfc"
    code = main(["stream", "encode", str(setup / "clip.wav"), "-o", str(out), "--model", str(setup / "tiny"), "-q",
                 *given])  # fmt: skip
    err = capsys.readouterr().err
    if refused is None:
        assert code == 0 and out.is_file()
        return
    assert code == 2 and refused in err and "describe raw PCM input" in err and len(err.strip().splitlines()) == 1
    assert "16000 Hz with 1 channel(s)" in err and not out.exists()
