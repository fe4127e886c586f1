"""Cases that once broke on some machine or some input, kept here so they stay fixed.

Each test's docstring names the case; the CLI tests check the exit code and the message, never a
traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import hificodec
from hificodec.checkpoint import model_hash
from hificodec.cli import main
from hificodec.compress import compress, decode_file, decompress, encode_file
from tiny_codecs import tiny_preset


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _write_wav(path, samples: int, sr: int = 16000, seed: int = 0):
    rng = np.random.default_rng(seed)
    sf.write(str(path), (0.1 * rng.standard_normal(samples)).astype(np.float32), sr, subtype="FLOAT")
    return path


# ---- short clips ------------------------------------------------------------------------------
_SHORT_MODELS = {
    "shipped": lambda: hificodec.load(hificodec.DEFAULT_MODEL),
    "tiny-hificodec": lambda: hificodec.build(tiny_preset("tiny-hificodec")),
    "tiny-encodec": lambda: hificodec.build(tiny_preset("tiny-encodec")),
}


@pytest.mark.parametrize("which", list(_SHORT_MODELS))
def test_every_length_that_encodes_decodes(which):
    """Clips of <= 40 ms (1 or 2 code frames) encoded but the iSTFT head's reflect padding refused to
    decode them (RuntimeError: Padding size should be less than the corresponding input dimension)."""
    model = _SHORT_MODELS[which]().eval()
    hop = model.hop_length
    lengths = sorted({1, 2, hop // 2, hop - 1, hop, hop + 1, 2 * hop - 1, 2 * hop, 2 * hop + 1, 3 * hop - 1, 3 * hop})
    gen = torch.Generator().manual_seed(0)
    for n in lengths:
        wav = 0.1 * torch.randn(2, 1, n, generator=gen)
        with torch.inference_mode():
            codes = model.encode(wav)
            out = model.decode(codes, length=n)
        assert codes.shape[-1] == model.num_frames(n), n
        assert out.shape == (2, 1, n) and torch.isfinite(out).all(), n
        data = compress(model, wav[:, 0].numpy(), model.sample_rate)
        audio, sr = decompress(data, model)
        assert audio.shape == (2, n) and sr == model.sample_rate and np.isfinite(audio).all(), n


def test_short_clip_round_trips_through_the_cli(tmp_path, capsys):
    """`hificodec encode` of a 1-sample or 10 ms wav exited 0, and `decode` / `reconstruct` of it died with a
    traceback; `tokenize` wrote codes that could not be decoded."""
    for n in (1, 160, 320, 640):
        src = _write_wav(tmp_path / f"clip{n}.wav", n)
        code, _, err = run(["encode", src, "-q"], capsys)
        assert code == 0, err
        out = tmp_path / f"clip{n}.out.wav"
        code, _, err = run(["decode", tmp_path / f"clip{n}.hfc", "-o", out, "-q"], capsys)
        assert code == 0, err
        assert sf.info(str(out)).frames == n
        code, _, err = run(["reconstruct", src, "-q"], capsys)
        assert code == 0, err
        assert sf.info(str(tmp_path / f"clip{n}.reconstructed.wav")).frames == n
    data = tmp_path / "data"
    data.mkdir()
    _write_wav(data / "one.wav", 1)
    code, _, err = run(["tokenize", data, "--out", tmp_path / "tok", "-q"], capsys)
    assert code == 0, err
    codes = np.load(tmp_path / "tok" / "codes" / "one.npy")
    model = hificodec.load(hificodec.DEFAULT_MODEL)
    with torch.inference_mode():
        wav = model.decode(torch.from_numpy(codes.astype(np.int64))[None], length=1)
    assert wav.shape == (1, 1, 1) and torch.isfinite(wav).all()


def test_cached_windows_made_in_inference_mode_serve_training():
    """The STFT window and mel filterbank caches kept the tensors of their first caller: after an
    evaluation under torch.inference_mode, a training step in the same process failed with
    "Inference tensors cannot be saved for backward"."""
    from hificodec.dsp.mel import mel_filterbank
    from hificodec.dsp.stft import hann_window

    with torch.inference_mode():
        window = hann_window(777)
        bank = mel_filterbank(16000, 777, 13)
    assert not window.is_inference() and not bank.is_inference()
    x = torch.randn(1, 2000, requires_grad=True)
    spec = torch.stft(x, 777, 100, window=window, return_complex=True).abs()
    (bank @ spec).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ---- corrupt weights ----------------------------------------------------------------------------
def _overwrite_middle(path, size: int = 4096, byte: int = 0xFF) -> None:
    """Overwrite `size` bytes in the middle of a file (0xFF bytes are NaN in fp16 and fp32)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + size] = bytes([byte]) * size
    path.write_bytes(bytes(data))


@pytest.fixture
def shipped_copy(tmp_path):
    import shutil

    from hificodec.checkpoint import pretrained_dir

    folder = tmp_path / "copy"
    shutil.copytree(pretrained_dir() / hificodec.DEFAULT_MODEL, folder)
    return folder


def test_corrupt_weights_are_refused_by_the_digest(shipped_copy, tmp_path, capsys):
    """4 KiB overwritten in the middle of a copy of the shipped model.safetensors loaded silently: encode
    and decode exited 0 and every output sample was -32768. The folder's checksums.sha256 catches it."""
    from hificodec.checkpoint import DIGEST_FILE

    src = _write_wav(tmp_path / "in.wav", 8000)
    code, _, err = run(["encode", src, "-q"], capsys)
    assert code == 0, err
    _overwrite_middle(shipped_copy / "model.safetensors")
    with pytest.raises(hificodec.CheckpointError, match=rf"{shipped_copy}: model.safetensors does not match"):
        hificodec.load(shipped_copy)
    for argv in (["encode", src, "--model", shipped_copy, "-o", tmp_path / "x.hfc"],
                 ["decode", tmp_path / "in.hfc", "--model", shipped_copy, "-o", tmp_path / "x.wav"]):  # fmt: skip
        code, out, err = run(argv, capsys)
        assert code == 1 and f"{shipped_copy}: model.safetensors does not match" in err and DIGEST_FILE in err
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "in.hfc", "in.wav"]  # no output, no .part
    # a weights file the digest does not list is refused too
    lines = (shipped_copy / DIGEST_FILE).read_text().splitlines(keepends=True)
    (shipped_copy / DIGEST_FILE).write_text("".join(x for x in lines if "model.safetensors" not in x))
    with pytest.raises(hificodec.CheckpointError, match="model.safetensors is not listed"):
        hificodec.load(shipped_copy)


def test_non_finite_weights_are_refused_by_name(shipped_copy):
    """A folder without a digest (saved by an older hificodec) still loads, but NaN or infinite weights are
    refused with the tensor's name instead of decoding to full-scale noise."""
    from hificodec.checkpoint import DIGEST_FILE

    (shipped_copy / DIGEST_FILE).unlink()
    assert hificodec.weights_hash(hificodec.load(shipped_copy)) == hificodec.weights_hash(
        hificodec.load(hificodec.DEFAULT_MODEL)
    )
    _overwrite_middle(shipped_copy / "model.safetensors")
    with pytest.raises(hificodec.CheckpointError, match=r"tensor '[\w.]+' holds \d+ NaN or infinite values"):
        hificodec.load(shipped_copy)


def test_digest_covers_shards_and_config(tmp_path):
    """The digest lists every shard and the index of a sharded save, and the config."""
    from hificodec.checkpoint import DIGEST_FILE, read_digest

    model = hificodec.build(tiny_preset("tiny-hificodec"))
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    folder = hificodec.save(model, tmp_path / "sharded", shard_mib=total / 3 / 2**20)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2
    digest = read_digest(folder)
    assert digest is not None
    assert set(digest) == {p.name for p in shards} | {"model.safetensors.index.json", "config.yaml"}
    hificodec.load(folder)
    config = folder / "config.yaml"
    config.write_text(config.read_text() + "\n# edited\n")
    with pytest.raises(hificodec.CheckpointError, match="config.yaml does not match"):
        hificodec.load(folder)
    config.write_text(config.read_text().removesuffix("\n# edited\n"))
    hificodec.load(folder)
    _overwrite_middle(shards[-1], size=64, byte=0)
    with pytest.raises(hificodec.CheckpointError, match=rf"{shards[-1].name} does not match"):
        hificodec.load(folder)
    (folder / DIGEST_FILE).unlink()
    hificodec.load(folder)  # no digest: loads (zeros are valid weights)


def test_shipped_models_record_a_digest_of_their_files():
    """Every shipped model folder (and its discriminator) records the SHA-256 of the files it holds,
    computed from those files: weights replaced without re-saving would fail this test and `load`."""
    import hashlib

    from hificodec.checkpoint import pretrained_dir, read_digest

    for name in hificodec.list_models():
        for folder in (pretrained_dir() / name, pretrained_dir() / name / "discriminator"):
            if not folder.is_dir():
                continue
            digest = read_digest(folder)
            assert digest, f"{folder}: no checksums.sha256"
            files = {p.name for p in folder.iterdir() if p.is_file() and p.name != "checksums.sha256"}
            assert set(digest) == files, folder
            for file, value in digest.items():
                assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == value, folder / file


def _tiny_with(update) -> hificodec.CodecModel:
    model = hificodec.build(tiny_preset("tiny-encodec")).eval()
    with torch.no_grad():
        update(model)
    return model


def test_non_finite_or_pinned_output_is_an_error_not_a_file(tmp_path):
    """Weights that pass every check on disk but make the decoder produce NaN (written as -32768) or
    audio pinned at full scale give an error and no output file."""
    src = _write_wav(tmp_path / "in.wav", 4000)
    good = hificodec.build(tiny_preset("tiny-encodec")).eval()
    hfc = tmp_path / "in.hfc"
    encode_file(good, src, hfc)

    def nan_decoder(m):
        m.decoder.model[-1].conv.bias.fill_(float("nan"))

    def pinned_decoder(m):
        last = m.decoder.model[-1].conv
        last.bias.fill_(10.0)
        last.parametrizations.weight.original0.zero_()  # weight norm's gain: a constant output of 10

    for update, message in ((nan_decoder, "NaN or infinite samples"), (pinned_decoder, "pinned at full scale")):
        model = _tiny_with(update)
        model.load_state_dict(good.state_dict() | {k: v for k, v in model.state_dict().items() if "decoder" in k})
        setattr(model, "_model_hash", model_hash(good))  # noqa: B010 - decode it as the encoder's model
        with pytest.raises(hificodec.HificodecError, match=message):
            decode_file(hfc, tmp_path / "out.wav", model=model)
        with pytest.raises(hificodec.HificodecError, match=message):
            decompress(compress(good, np.zeros(4000, np.float32) + 0.1, 16000), model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.hfc", "in.wav"]


def test_non_finite_encoder_output_is_an_error(tmp_path):
    """An encoder with NaN weights produced plausible-looking codes (NaN compares false with every
    codebook entry); now encoding fails and writes nothing."""
    src = _write_wav(tmp_path / "in.wav", 4000)
    model = _tiny_with(lambda m: next(m.encoder.parameters()).fill_(float("nan")))
    with pytest.raises(hificodec.HificodecError, match="encoder produced NaN or infinite values"):
        encode_file(model, src, tmp_path / "in.hfc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_exports_record_digests_for_the_generator_and_the_discriminator(tmp_path):
    """`hificodec export` (and the trainer's exports) write checksums.sha256 for the generator and for
    discriminator/, which `train.init_from` verifies before loading."""
    from hificodec.checkpoint import verify_digest, weight_files
    from hificodec.train.discriminators import build_discriminator
    from hificodec.train.export import write_export

    settings = {"mpd": {"periods": [2, 3]}}
    disc = build_discriminator(settings)
    assert disc is not None
    out = write_export(hificodec.build(tiny_preset("tiny-hificodec")), disc, settings, tmp_path / "export")
    assert verify_digest(out, [out / "config.yaml", *weight_files(out / "model.safetensors")])
    disc_file = out / "discriminator" / "discriminator.safetensors"
    assert verify_digest(disc_file.parent, weight_files(disc_file))
    _overwrite_middle(disc_file, size=64)
    with pytest.raises(hificodec.CheckpointError, match="discriminator.safetensors does not match"):
        verify_digest(disc_file.parent, weight_files(disc_file))


# ---- SIGTERM ------------------------------------------------------------------------------------
def _cli_process(argv, cwd) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(hificodec.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "hificodec", *map(str, argv)], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _terminate_mid_write(proc: subprocess.Popen, folder: Path, deadline_s: float = 240.0) -> tuple[int, str]:
    """SIGTERM `proc` as soon as its temp output file exists; return (exit code, stderr)."""
    start = time.monotonic()
    while not list(folder.glob(".*.part")):
        assert proc.poll() is None, f"finished before its temp file was seen: {proc.communicate()}"
        assert time.monotonic() - start < deadline_s, "no temp file appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("command", ["encode", "decode"])
def test_sigterm_mid_write_leaves_no_part_file(command, tmp_path):
    """SIGTERM (what `kill`, `timeout` and service managers send) left hidden `.part` files from encode
    and decode, where Ctrl-C cleaned up; now both are handled alike."""
    from hificodec.bitstream import write_codes
    from hificodec.compress import make_header

    if command == "encode":
        _write_wav(tmp_path / "long.wav", 16000 * 90)
        argv = ["encode", "long.wav", "-q"]
    else:
        model = hificodec.load(hificodec.DEFAULT_MODEL)
        header = make_header(model, 1, 16000, 16000 * 240)
        rng = np.random.default_rng(0)
        codes = rng.integers(0, model.codebook_size, (1, model.num_codebooks, header.num_frames))
        (tmp_path / "long.hfc").write_bytes(write_codes(codes, header))
        argv = ["decode", "long.hfc", "-q"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _terminate_mid_write(_cli_process(argv, tmp_path), tmp_path)
    assert code == 128 + signal.SIGTERM and f"hificodec {command}: terminated (SIGTERM)" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no .part file


def test_sigterm_during_an_export_removes_the_temp_folder(tmp_path, capsys, monkeypatch):
    """Folders written atomically (`hificodec export`, training exports, `hificodec.save`) are removed
    too when SIGTERM arrives mid-write; the target keeps its previous content."""
    import hificodec.checkpoint as checkpoint
    from hificodec.cli import main as cli_main

    run_dir = tmp_path / "run"
    model = hificodec.build(tiny_preset("tiny-hificodec"))
    step = run_dir / "checkpoints" / "step-00000001"
    step.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(step / "generator.safetensors"))
    (step / "recipe.yaml").write_text(f"model: {tiny_preset('tiny-hificodec')}\n")
    original = checkpoint.save_weights

    def killed_mid_write(*args, **kwargs):
        files = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this returns
        return files

    monkeypatch.setattr(checkpoint, "save_weights", killed_mid_write)
    code = cli_main(["export", str(run_dir), str(tmp_path / "out")])
    assert code == 128 + signal.SIGTERM and "hificodec export: terminated (SIGTERM)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


# ---- numbers and pipes --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return hificodec.save(hificodec.build(tiny_preset("tiny-encodec")), tmp_path_factory.mktemp("model") / "tiny")


@pytest.mark.parametrize(
    "args, message",
    [
        (["encode", "x.wav", "--bandwidth", "inf"], "argument --bandwidth: expected a finite number, got 'inf'"),
        (["encode", "x.wav", "--bandwidth", "nan"], "argument --bandwidth: expected a finite number, got 'nan'"),
        (["encode", "x.wav", "--bandwidth", "0"], "argument --bandwidth: must be above 0 kbps, got 0"),
        (["encode", "x.wav", "--bandwidth", "-1"], "argument --bandwidth: must be above 0 kbps, got -1"),
        (["encode", "x.wav", "--n-q", "0"], "argument --n-q: must be at least 1, got 0"),
        (["reconstruct", "x.wav", "--bandwidth", "1e999"], "argument --bandwidth: expected a finite number"),
        (["decode", "x.hfc", "--sample-rate", "-5"], "argument --sample-rate: must be between 1000 and 768000 Hz"),
        (["decode", "x.hfc", "--sample-rate", "0"], "argument --sample-rate: must be between 1000 and 768000 Hz"),
        (["decode", "x.hfc", "--sample-rate", "16k"], "argument --sample-rate: expected an integer, got '16k'"),
        (["reconstruct", "x.wav", "--sample-rate", "0"], "argument --sample-rate: must be between"),
        (["tokenize", "d", "--out", "o", "--bandwidth", "inf"], "argument --bandwidth: expected a finite number"),
        (["tokenize", "d", "--out", "o", "--batch-size", "0"], "argument --batch-size: must be at least 1"),
        (["tokenize", "d", "--out", "o", "--workers", "-1"], "argument --workers: must be at least 0"),
        (["eval", "d", "--bandwidth", "nan"], "argument --bandwidth: expected a finite number"),
        (["eval", "d", "--max-delay-ms", "inf"], "argument --max-delay-ms: expected a finite number"),
        (["eval", "d", "--limit", "0"], "argument --limit: must be at least 1"),
        (["data", "pack", "m.jsonl", "o.tar", "--max-mib", "-3"], "argument --max-mib: must be above 0"),
        (["data", "build-corpus", "o", "--synthetic-hours", "nan"], "argument --synthetic-hours: expected a finite"),
    ],
)
def test_cli_numbers_are_checked(args, message, capsys, tmp_path, monkeypatch):
    """`--bandwidth inf` raised OverflowError, `--bandwidth nan` and `decode --sample-rate -5` ValueError
    tracebacks, and `--sample-rate 0` silently meant "the original": every number is checked."""
    from hificodec.cli import codec_cmd, data_cmd, eval_cmd, tokenize_cmd

    def must_not_run(args):
        raise AssertionError(f"{args.command} ran with an invalid number")

    monkeypatch.chdir(tmp_path)  # nothing is written, wherever the test runs
    for module, names in ((codec_cmd, ["run_encode", "run_decode", "run_reconstruct"]), (tokenize_cmd, ["run"]),
                          (eval_cmd, ["run"]), (data_cmd, ["_build_corpus", "_pack"])):  # fmt: skip
        for name in names:
            monkeypatch.setattr(module, name, must_not_run)
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


def test_a_bandwidth_the_model_lacks_is_reported(tiny_dir, tmp_path, capsys):
    """`--bandwidth 999` silently meant the highest bitrate (2 kbps for the shipped model); now a note says
    which bitrate is used."""
    src = _write_wav(tmp_path / "in.wav", 1600)
    code, _, err = run(["encode", src, "--model", tiny_dir, "--bandwidth", 999, "-q"], capsys)
    assert code == 0
    assert "note: tiny-encodec has no 999 kbps setting; using 1.2 kbps (available: 0.3, 0.6, 0.9, 1.2)" in err
    code, _, err = run(["encode", src, "--model", tiny_dir, "--bandwidth", 1.2, "-q", "--force"], capsys)
    assert code == 0 and err == ""


def test_api_numbers_are_checked(tiny_dir):
    """The Python API refuses the same numbers: non-finite or non-positive bandwidths (OverflowError before)
    and output sample rates that are not positive integers (0 meant "the original")."""
    model = hificodec.load(tiny_dir)
    for bad in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match="must be a positive number of kbps"):
            model.set_target_bandwidth(bad)
    data = compress(model, np.zeros(800, np.float32) + 0.1, 16000)
    for rate in (0, -5, 16000.5):
        with pytest.raises(hificodec.HificodecError, match="sample rate must be a positive integer"):
            decompress(data, model, sample_rate=rate)  # type: ignore[arg-type]
        with pytest.raises(hificodec.HificodecError, match="sample rate must be a positive integer"):
            compress(model, np.zeros(800, np.float32), rate)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["info", "models"])
def test_a_closed_pipe_ends_quietly(command, tiny_dir, tmp_path):
    """`hificodec info a.hfc b.hfc | head -2` and `hificodec models --presets | head -2` ended with a
    BrokenPipeError traceback; now they stop quietly with the status of a tool killed by SIGPIPE."""
    argv = [command]
    if command == "info":
        model = hificodec.load(tiny_dir)
        for name in ("a.hfc", "b.hfc"):
            (tmp_path / name).write_bytes(compress(model, np.zeros(800, np.float32) + 0.1, 16000))
        argv += ["a.hfc", "b.hfc"]
    proc = _cli_process(argv, tmp_path)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before anything is written: `| head -0`
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGPIPE, err
    assert err == ""


# ---- file names and permissions -----------------------------------------------------------------
def test_errors_about_a_hfc_file_name_it(tiny_dir, tmp_path, capsys):
    """With several .hfc files on the command line, "corrupt .hfc file: checksum mismatch" did not say which."""
    model = hificodec.load(tiny_dir)
    good = compress(model, np.zeros(4000, np.float32) + 0.1, 16000)
    (tmp_path / "good.hfc").write_bytes(good)
    flipped = bytearray(good)
    flipped[-6] ^= 1
    (tmp_path / "flipped.hfc").write_bytes(bytes(flipped))
    (tmp_path / "short.hfc").write_bytes(good[:10])
    for name, message in (("flipped.hfc", "checksum mismatch"), ("short.hfc", "truncated")):
        bad = tmp_path / name
        code, _, err = run(["info", tmp_path / "good.hfc", bad], capsys)
        assert code == 1 and f"error: {bad}: " in err and message in err, err
        code, _, err = run(["decode", bad, "--model", tiny_dir, "-o", tmp_path / "x.wav"], capsys)
        assert code == 1 and f"error: {bad}: " in err and message in err, err
        with pytest.raises(hificodec.HificodecError, match=f"{bad}: "):
            decode_file(bad, tmp_path / "y.wav", model=model)
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()


def test_default_decode_name_does_not_collide_with_the_original(tiny_dir, tmp_path, capsys):
    """orig.wav -> encode -> orig.hfc -> decode wanted to write orig.wav and refused because it exists."""
    src = _write_wav(tmp_path / "orig.wav", 3200)
    assert run(["encode", src, "--model", tiny_dir, "-q"], capsys)[0] == 0
    code, out, err = run(["decode", tmp_path / "orig.hfc", "--model", tiny_dir], capsys)
    assert code == 0, err
    assert "orig.decoded.wav" in out and sf.info(str(tmp_path / "orig.decoded.wav")).frames == 3200


def test_saved_folders_follow_the_umask(tmp_path):
    """`hificodec.save` made its folder 0700 and the weights 0600 whatever the umask (mkdtemp, safetensors)."""
    old = os.umask(0o022)
    try:
        folder = hificodec.save(hificodec.build(tiny_preset("tiny-encodec")), tmp_path / "m", shard_mib=0.2)
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert len(modes) > 3 and set(modes.values()) == {0o644}, modes


# ---- tokenize: resumed runs -------------------------------------------------------------------
def _clips(folder: Path, n: int = 6) -> Path:
    folder.mkdir()
    for i in range(n):
        _write_wav(folder / f"c{i}.wav", 1600 * (i + 2), sr=16000 if i % 2 else 22050, seed=i)
    return folder


def test_a_resumed_tokenize_writes_the_same_manifest(tmp_path):
    """A rerun skipped finished files and wrote their manifest entries without `duration`, so a
    resumed or repeated run's manifest differed from an uninterrupted one."""
    from hificodec.tokenize import tokenize
    from tiny_codecs import coding_model

    data, model = _clips(tmp_path / "data"), coding_model(tiny_preset("tiny-encodec"))
    tokenize(model, data, tmp_path / "whole")
    whole = (tmp_path / "whole" / "manifest.jsonl").read_text()
    assert whole.count('"duration"') == 6

    tokenize(model, data, tmp_path / "resumed")
    for p in sorted((tmp_path / "resumed" / "codes").glob("*.npy"))[::2]:
        p.unlink()  # as if interrupted after half of the files
    (tmp_path / "resumed" / "manifest.jsonl").unlink()
    stats = tokenize(model, data, tmp_path / "resumed")
    assert (stats.encoded, stats.skipped) == (3, 3)
    assert (tmp_path / "resumed" / "manifest.jsonl").read_text() == whole

    stats = tokenize(model, data, tmp_path / "resumed")  # nothing left to do
    assert (stats.encoded, stats.skipped) == (0, 6)
    assert (tmp_path / "resumed" / "manifest.jsonl").read_text() == whole


def test_a_failed_tokenize_leaves_no_output(tiny_dir, tmp_path, capsys):
    """Without --skip-errors a bad file stopped the run but left `tokens.json` (and the folder) behind."""
    data = _clips(tmp_path / "data", 2)
    (data / "bad.wav").write_bytes(b"not audio at all")
    code, _, err = run(["tokenize", data, "--out", tmp_path / "tok", "--model", tiny_dir, "-q"], capsys)
    assert code != 0 and "bad.wav" in err and "Traceback" not in err
    assert not (tmp_path / "tok").exists()

    (tmp_path / "tok2").mkdir()  # a folder the user made stays, empty
    code, _, err = run(["tokenize", data, "--out", tmp_path / "tok2", "--model", tiny_dir, "-q"], capsys)
    assert code != 0 and list((tmp_path / "tok2").iterdir()) == []


# ---- eval -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra, models, note",
    [([], [hificodec.DEFAULT_MODEL], f"scoring the shipped model {hificodec.DEFAULT_MODEL}"),
     (["--no-model"], [], None), (["--model", "m1"], ["m1"], None)],
)  # fmt: skip
def test_eval_with_baselines_only_scores_the_shipped_model(extra, models, note, tmp_path, capsys, monkeypatch):
    """`eval DATA --baselines opus:6,8` without --model silently scored no codec."""
    import hificodec.eval

    seen = []

    def fake_evaluate(config):
        seen.append(config)
        raise hificodec.errors.HificodecError("stopped before scoring")

    monkeypatch.setattr(hificodec.eval, "evaluate", fake_evaluate)
    code, _, err = run(["eval", tmp_path, "--baselines", "opus:6,8", *extra], capsys)
    assert code == 1 and "stopped before scoring" in err
    assert seen[0].models == models and seen[0].baselines == ["opus:6,8"]
    assert (note in err) if note else ("shipped model" not in err)


def test_eval_no_model_contradicting_model_is_refused(tmp_path, capsys):
    """--no-model with --model is a contradiction, reported as such."""
    code, _, err = run(["eval", tmp_path, "--no-model", "--model", "x"], capsys)
    assert code == 1 and "--no-model contradicts --model" in err and "Traceback" not in err


# ---- truncated input --------------------------------------------------------------------------
def test_a_truncated_wav_is_reported(tiny_dir, tmp_path, capsys):
    """A WAV whose header says 4 s but whose data holds 2 s (a copy cut short) encoded 2 s without a word."""
    src = tmp_path / "cut.wav"
    rng = np.random.default_rng(0)
    sf.write(str(src), (0.1 * rng.standard_normal(4 * 16000)).astype(np.float32), 16000, subtype="PCM_16")
    with open(src, "r+b") as f:
        f.truncate(os.path.getsize(src) - 2 * 16000 * 2)  # drop the last 2 s of 16-bit samples
    assert sf.info(str(src)).frames == 2 * 16000  # libsndfile counts what is there; the header says 4 s
    code, _, err = run(["encode", src, "-o", tmp_path / "cut.hfc", "--model", tiny_dir, "-q"], capsys)
    assert code == 0 and "Traceback" not in err
    assert "cut.wav" in err and "4.00 s" in err and "2.00 s" in err and "warning" in err

    ok = _write_wav(tmp_path / "whole.wav", 16000)
    code, _, err = run(["encode", ok, "-o", tmp_path / "whole.hfc", "--model", tiny_dir, "-q"], capsys)
    assert code == 0 and err == ""


# ---- progress bars ----------------------------------------------------------------------------
def test_the_progress_rate_is_audio_seconds_per_second():
    """The encode/decode bars' rate read "1.80s/s" for a file coded slower than real time: tqdm flips
    its label to seconds per unit below 1/s, so the same label meant two inverse things."""
    import io

    from hificodec.compress import AudioProgress

    for audio_s, wall_s, label in ((2.0, 3.6, "0.56x real time"), (9.0, 2.0, "4.50x real time")):
        sink = io.StringIO()
        bar = AudioProgress(10.0, "clip.wav", progress=True)
        bar.fp = sink
        bar.start_t = bar.last_print_t = bar._time() - wall_s
        bar.update(audio_s)
        text = str(bar)
        bar.close()
        assert label in text and "s/s" not in text and f"{audio_s:.1f}/10.0 s" in text


def test_an_error_starts_on_its_own_line_after_a_progress_bar(tiny_dir, tmp_path):
    """An error during encoding was printed on the progress bar's line (`...]\\r   \\rhificodec encode:
    error`), one line in a log."""
    x = (0.1 * np.random.default_rng(0).standard_normal(16000 * 200)).astype(np.float32)
    x[16000 * 190] = np.nan  # found only while streaming, with the bar already drawn
    sf.write(str(tmp_path / "nan.wav"), x, 16000, subtype="FLOAT")
    env = {**os.environ, "PYTHONPATH": str(Path(hificodec.__file__).parents[1])}
    proc = subprocess.run(
        [sys.executable, "-m", "hificodec", "encode", "nan.wav", "--model", str(tiny_dir)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.split("\n")
    assert any("x real time" in line for line in lines), proc.stderr
    error = [line for line in lines if "error:" in line]
    assert len(error) == 1 and error[0].startswith("hificodec encode: error: nan.wav: the audio holds NaN"), error
    assert not (tmp_path / "nan.hfc").exists()


# ---- documentation ----------------------------------------------------------------------------
NOT_RUN = "# not run:"  # first line of a ```python block that deliberately cannot run as written (say why)


def _doc_blocks() -> list[tuple[str, str]]:
    import re

    root = Path(__file__).resolve().parents[1]
    blocks = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for i, m in enumerate(re.finditer(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)):
            blocks.append((f"{doc.relative_to(root)}#{i + 1}", m.group(1)))
    return blocks


def test_the_docs_have_python_blocks():
    """The block finder below finds the snippets (an empty list would pass any check)."""
    names = [name for name, _ in _doc_blocks()]
    assert {"README.md#1", "docs/eval.md#1", "docs/format.md#1"} <= set(names), names


@pytest.mark.parametrize("name, code", _doc_blocks(), ids=[name for name, _ in _doc_blocks()])
def test_every_python_block_in_the_docs_runs_as_written(name, code, tmp_path):
    """The README's snippet loaded "path/to/checkpoint" and failed when run as written; the eval and
    format snippets used names they never defined. Each block runs in a fresh interpreter in an empty
    folder; one marked `# not run: why` on its first line is only compiled."""
    if code.startswith(NOT_RUN):
        compile(code, name, "exec")
        return
    env = {**os.environ, "PYTHONPATH": str(Path(hificodec.__file__).parents[1]), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stderr[-3000:]}"


# ---- stereo -----------------------------------------------------------------------------------
def _dithered_mono_as_stereo(path: Path) -> np.ndarray:
    from hificodec.demo import bundled_clip

    x, sr = sf.read(str(bundled_clip()), dtype="float32")
    rng = np.random.default_rng(0)
    lsb = 1 / 32768
    stereo = np.stack([x + lsb * rng.integers(-1, 2, x.shape), x + lsb * rng.integers(-1, 2, x.shape)], axis=1)
    sf.write(str(path), stereo, sr, subtype="PCM_16")
    return sf.read(str(path), dtype="float32")[0].T


def test_mono_saved_as_stereo_stays_one_voice(tmp_path, capsys):
    """A mono recording saved as stereo with its own 1-LSB dither per channel came back as two unrelated
    channels (left/right correlation ~0.3 with the shipped model): each channel was coded on its own and
    the codes diverged. Stereo is now coded as mid/side, so the side is near silent."""
    src = _dithered_mono_as_stereo(tmp_path / "mono2.wav")
    code, _, err = run(["encode", tmp_path / "mono2.wav", "-o", tmp_path / "m.hfc", "-q"], capsys)
    assert code == 0, err
    code, _, err = run(["decode", tmp_path / "m.hfc", "-o", tmp_path / "m.wav", "-q"], capsys)
    assert code == 0, err
    y = sf.read(str(tmp_path / "m.wav"), dtype="float32")[0].T
    assert y.shape == src.shape
    assert np.corrcoef(y[0], y[1])[0, 1] > 0.95
    side, mid = np.std(y[0] - y[1]), np.std(y[0] + y[1])
    assert 20 * np.log10(side / mid) < -30  # the channels stay the same signal, not two codings of it
    code, out, _ = run(["info", tmp_path / "m.hfc"], capsys)
    assert code == 0 and "2 (mid/side)" in out and "version 3" in out and "entropy-coded" in out


def test_version_1_stereo_files_still_decode_channel_by_channel():
    """Files written before mid/side coding (version 1, channels coded independently) decode as they did."""
    from hificodec.bitstream import INDEPENDENT, read_codes, write_codes
    from tiny_codecs import coding_model

    model = coding_model(tiny_preset("tiny-encodec"))
    t = np.arange(8000) / 16000
    x = np.stack([0.4 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)
    header, _ = read_codes(compress(model, x, 16000))
    from dataclasses import replace

    old_header = replace(header, channel_coding=INDEPENDENT)
    per_channel = np.concatenate([read_codes(compress(model, x[c], 16000))[1] for c in range(2)])
    old = write_codes(per_channel, old_header)
    assert old[4:6] == b"\x01\x00"  # written as version 1
    y, _ = decompress(old, model=model)
    for c in range(2):
        alone, _ = decompress(compress(model, x[c], 16000), model=model)
        np.testing.assert_allclose(y[c], alone[0], atol=1e-5)


# ---- several inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["encode", "reconstruct"])
def test_skip_errors_goes_past_a_bad_input_and_lists_it(command, tiny_dir, tmp_path, capsys):
    """With several inputs one bad file stopped the command (the rest never coded); --skip-errors reports
    it, codes the others and lists the failures at the end (exit 1). Without it, the first error stops."""
    first, last = _write_wav(tmp_path / "a.wav", 1600), _write_wav(tmp_path / "c.wav", 1600, seed=1)
    bad = tmp_path / "b.wav"
    bad.write_bytes(b"not audio at all")
    suffix = ".hfc" if command == "encode" else ".reconstructed.wav"
    outputs = [tmp_path / f"{name}{suffix}" for name in "abc"]
    code, _, err = run([command, first, bad, last, "--model", tiny_dir, "-q"], capsys)
    assert code == 1 and err.count("error:") == 1 and "b.wav" in err
    assert outputs[0].is_file() and not outputs[1].exists() and not outputs[2].exists()
    outputs[0].unlink()
    code, _, err = run([command, first, bad, last, "--model", tiny_dir, "-q", "--skip-errors"], capsys)
    assert code == 1 and f"1 of 3 inputs failed: {bad}" in err
    assert outputs[0].is_file() and not outputs[1].exists() and outputs[2].is_file()


def test_info_and_decode_skip_a_corrupt_hfc(tiny_dir, tmp_path, capsys):
    good = tmp_path / "good.hfc"
    assert run(["encode", _write_wav(tmp_path / "good.wav", 3200), "-o", good, "--model", tiny_dir, "-q"],
               capsys)[0] == 0
    bad = tmp_path / "bad.hfc"
    data = bytearray(good.read_bytes())
    data[-5] ^= 0xFF  # the last frame group's checksum no longer matches
    bad.write_bytes(bytes(data))
    code, out, err = run(["info", bad, good, "--skip-errors"], capsys)
    assert code == 1 and f"{good}\n" in out and "checksums OK" in out and f"1 of 2 inputs failed: {bad}" in err
    code, _, err = run(["decode", bad, good, "--skip-errors", "-q", "--model", tiny_dir], capsys)
    assert code == 1 and (tmp_path / "good.decoded.wav").is_file() and not (tmp_path / "bad.decoded.wav").exists()
