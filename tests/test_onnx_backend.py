"""ONNX export and the onnxruntime backend (hificodec.onnx_backend): the same codes as PyTorch, audio
within a measured tolerance, the same .hfc bytes, chunked decoding with the carried phase, the CLI
flags, and clean errors for graphs of another model, damaged graphs and a missing onnxruntime."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import hificodec
from hificodec import onnx_backend
from hificodec.chunked import decode_chunked, encode_chunked
from hificodec.cli import main
from hificodec.compress import compress
from hificodec.errors import HificodecError
from tiny_codecs import assert_codes_vary, coding_model, tiny_preset

#: decoded audio, ONNX vs PyTorch (shipped model): float rounding in the pitch head moves the oscillator's
#: f0, and its running phase accumulates the difference. Measured max abs diff (torch 2.13.0+cpu,
#: onnxruntime 1.32.0, 1 and 2 threads): bundled 6.9 s clip 1.3e-4; the tone cases of
#: test_codes_match_at_several_batch_sizes_and_lengths over seeds (length, 1, 2, 3) up to 2.05e-3, at
#: (3, 2253) seed 2253, where frames 2-4 of the third clip carry it (peak 0.26). 2.4x margin over that.
#: Elsewhere (no oscillator) the two agree to ~5e-7.
AUDIO_TOLERANCE = 5e-3


def _clip() -> torch.Tensor:
    path = Path(hificodec.__file__).parent / "assets" / "speech-cs-16k.flac"
    audio, sr = sf.read(str(path), dtype="float32")
    assert sr == 16000
    return torch.from_numpy(audio)[None, None]


@pytest.fixture(scope="session")
def shipped(tmp_path_factory):
    """(PyTorch model, its ONNX backend), exported once per session."""
    model = hificodec.load("hificodec-16k")
    folder = tmp_path_factory.mktemp("onnx") / "hificodec-16k"
    onnx_backend.export(model, folder)
    return model, onnx_backend.load(model, folder, threads=torch.get_num_threads())  # 1, or 2 in .ci/run's second pass


def _tones(batch: int, samples: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16000
    f0 = 90 + 200 * torch.rand(batch, 1, 1, generator=g)
    return 0.3 * torch.sin(2 * torch.pi * f0 * t * (1 + 0.05 * torch.sin(6 * t))) + 0.02 * torch.randn(
        batch, 1, samples, generator=g
    )


def test_codes_and_audio_of_the_bundled_clip_match_pytorch(shipped):
    model, backend = shipped
    wav = _clip()
    with torch.no_grad():
        codes = model.encode(wav)
        reference = model.decode(codes)
    ours = backend.encode(wav)
    assert_codes_vary(ours)
    assert torch.equal(ours, codes)
    decoded = backend.decode(codes)
    assert decoded.shape == reference.shape
    assert float((decoded - reference).abs().max()) < AUDIO_TOLERANCE


@pytest.mark.parametrize("batch,samples", [(1, 320), (3, 320 * 7 + 13), (1, 16000 * 2 + 1), (3, 320 * 61)])
def test_codes_match_at_several_batch_sizes_and_lengths(shipped, batch, samples):
    model, backend = shipped
    wav = _tones(batch, samples, seed=samples)
    with torch.no_grad():
        codes = model.encode(wav)
        reference = model.decode(codes, samples)
    assert torch.equal(backend.encode(wav), codes)
    assert float((backend.decode(codes, samples) - reference).abs().max()) < AUDIO_TOLERANCE


def _speech_with_pauses(shift: int, gain: float) -> torch.Tensor:
    """The bundled clip in four parts, each followed by 1 s of digital silence, 1 s of -90 dBFS noise,
    0.5 s of -60 dBFS noise and 0.5 s at 1e-9 (what resampling leaves in a TTS pause), after `shift`
    zeros: the pauses a new user's speech has, where the latent is all float rounding."""
    clip = _clip()[0, 0].numpy() * gain
    g = np.random.default_rng(shift)
    part = len(clip) // 4
    pieces = [np.zeros(shift)]
    for i in range(4):
        pieces += [clip[i * part : (i + 1) * part], np.zeros(16000), 10 ** (-90 / 20) * g.standard_normal(16000),
                   10 ** (-60 / 20) * g.standard_normal(8000), 1e-9 * g.standard_normal(8000)]  # fmt: skip
    return torch.from_numpy(np.concatenate(pieces).astype(np.float32))[None, None]


#: frames quieter than this (RMS of the frame's own samples, dBFS) may code differently: the pitch
#: tracker's silence level. Measured on _speech_with_pauses at shifts (1, 5, 37, 77, 160, 311) x gains
#: (1, 0.3): 9 of 11,340 frames differed, all at or below -60 dBFS (the loudest -59.6: the -60 dBFS noise);
#: none of the frames above it
NEAR_SILENCE_DB = -50.0
#: differing frames per _speech_with_pauses signal (945 frames): measured at most 2; 2.5x margin
MAX_FLIPPED_FRAMES = 5


@pytest.mark.parametrize("shift, gain", [(37, 1.0), (5, 0.3)])
def test_codes_match_pytorch_outside_near_silence(shipped, shift, gain):
    """The exact guarantee (README, `--backend onnx`): the same codes wherever a frame is above
    NEAR_SILENCE_DB; in near-silence a code whose latent is float rounding can differ."""
    model, backend = shipped
    wav = _speech_with_pauses(shift, gain)
    with torch.no_grad():
        codes = model.encode(wav)
    ours = backend.encode(wav)
    flipped = torch.nonzero((codes != ours).any(dim=1)[0]).flatten().tolist()
    hop = model.hop_length
    padded = F.pad(wav[0, 0], (0, -wav.shape[-1] % hop)).view(-1, hop)
    level = 10 * torch.log10(padded.square().mean(dim=-1) + 1e-30)
    audible = level > NEAR_SILENCE_DB
    assert int(audible.sum()) > 300  # the speech is there: nearly all of its 345 frames (of 945)
    assert torch.equal(ours[..., audible], codes[..., audible])
    assert len(flipped) <= MAX_FLIPPED_FRAMES, flipped


def test_a_lower_bitrate_encodes_and_decodes_a_prefix(shipped):
    model, backend = shipped
    wav = _tones(1, 16000, seed=3)
    backend.set_num_codebooks(2)
    try:
        with torch.no_grad():
            codes = model.encode(wav)[:, :2]
            reference = model.decode(codes)
        assert torch.equal(backend.encode(wav), codes)
        assert float((backend.decode(codes) - reference).abs().max()) < AUDIO_TOLERANCE
    finally:
        backend.set_num_codebooks(backend.max_codebooks)


def test_hfc_bytes_are_those_of_pytorch(shipped):
    model, backend = shipped
    audio = _clip()[0, 0].numpy()
    assert compress(backend, audio, 16000) == compress(model, audio, 16000)


def test_chunked_decoding_carries_the_phase_through_the_graph(shipped):
    model, backend = shipped
    with torch.no_grad():
        codes = model.encode(_clip())
        whole = model.decode(codes)
    assert torch.equal(encode_chunked(backend, _clip(), chunk_frames=100), codes)
    # windows of 40 frames: without the carried phase, every window would restart the oscillator
    chunked = decode_chunked(backend, codes, chunk_frames=40)
    assert float((chunked - whole).abs().max()) < AUDIO_TOLERANCE
    # one window in the middle, with a phase carried in: the graph gives PyTorch's audio and phase
    phase = torch.tensor([0.37], dtype=torch.float64)
    window = codes[..., 80:160]
    with torch.no_grad():
        wav, carried = model.decode_window(window, 20, 60, phase)
    ours, ours_carried = backend.decode_window(window, 20, 60, phase)
    assert float((ours - wav).abs().max()) < AUDIO_TOLERANCE
    assert carried is not None and ours_carried is not None
    assert float((ours_carried - carried).abs().max()) < 1e-3  # cycles; 60 frames apart: ~1e-6 measured
    assert float((ours_carried - phase).abs().max()) > 1  # it moved on



def test_the_graph_takes_the_phase_it_is_given(shipped):
    """The graph's phase input sets the oscillator's phase: a window decoded with 0.37 cycles carried in
    hands on exactly 0.37 cycles more than the same window from phase 0, and its audio differs (the
    oscillator is shifted; measured max difference 0.47, carried sums exact to 5e-15). The graph alone,
    not compared with PyTorch."""
    _, backend = shipped
    with torch.no_grad():
        window = backend.encode(_clip())[..., 80:160]
    start, start_carried = backend.decode_window(window, 20, 60, torch.zeros(1, dtype=torch.float64))
    moved, moved_carried = backend.decode_window(window, 20, 60, torch.tensor([0.37], dtype=torch.float64))
    assert start_carried is not None and moved_carried is not None
    assert float((moved_carried - start_carried - 0.37).abs().max()) < 1e-9  # float64 cycles: exact sums
    assert float((moved - start).abs().max()) > 0.01

@pytest.mark.parametrize("preset", ["tiny-encodec", "tiny-hificodec"])
def test_other_families_export(tmp_path, preset):
    """SEANet with an LSTM (Encodec) and HiFi-GAN (HiFi-Codec) encoders and decoders."""
    model = coding_model(tiny_preset(preset))
    onnx_backend.export(model, tmp_path / "graphs")
    backend = onnx_backend.load(model, tmp_path / "graphs", threads=1)
    for batch, samples in ((1, 320 * 3 + 5), (3, 8000)):
        wav = _tones(batch, samples, seed=batch)
        with torch.no_grad():
            codes = model.encode(wav)
            reference = model.decode(codes)
        assert torch.equal(backend.encode(wav), codes)
        assert float((backend.decode(codes) - reference).abs().max()) < 1e-5  # ~4e-7 measured


def test_graphs_of_another_model_are_refused(shipped, tmp_path):
    model, backend = shipped
    folder = tmp_path / "graphs"
    shutil.copytree(backend.folder, folder)
    info = json.loads((folder / onnx_backend.INFO_FILE).read_text())
    info["model_hash"] = "0123456789abcdef"
    (folder / onnx_backend.INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(HificodecError, match="exported from .* not from hificodec-16k@5"):
        onnx_backend.load(model, folder)


def test_a_damaged_graph_is_refused_with_a_clean_message(shipped, tmp_path, capsys):
    model, backend = shipped
    folder = tmp_path / "graphs"
    shutil.copytree(backend.folder, folder)
    data = (folder / onnx_backend.DECODER_FILE).read_bytes()
    (folder / onnx_backend.DECODER_FILE).write_bytes(data[: len(data) // 3])
    with pytest.raises(HificodecError, match="decoder.onnx: does not match its SHA-256"):
        onnx_backend.load(model, folder)
    wav_path = tmp_path / "in.wav"
    sf.write(str(wav_path), _tones(1, 4000, seed=1)[0, 0].numpy(), 16000)
    code = main(["encode", str(wav_path), "-o", str(tmp_path / "x.hfc"), "--model", "hificodec-16k", "--backend",
                 "onnx", "--onnx-dir", str(folder), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "does not match its SHA-256" in err and "Traceback" not in err
    assert not (tmp_path / "x.hfc").exists()


def _change_a_weight(path: Path) -> None:
    """2 % off the largest initializer: still a valid graph, other weights (-0.3 dB SNR against torch
    when this was not caught)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path))
    init = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.02), init.name))
    onnx.save(graph, str(path))
    onnx.checker.check_model(str(path))


def test_a_changed_graph_is_refused_in_a_folder_and_in_the_cache(shipped, tmp_path, capsys, monkeypatch):
    model, backend = shipped
    assert set(backend.info["sha256"]) == {onnx_backend.ENCODER_FILE, onnx_backend.DECODER_FILE}
    folder = tmp_path / "graphs"
    shutil.copytree(backend.folder, folder)
    _change_a_weight(folder / onnx_backend.DECODER_FILE)
    with pytest.raises(HificodecError, match="decoder.onnx: does not match its SHA-256 in onnx.json"):
        onnx_backend.load(model, folder)
    hfc = tmp_path / "in.hfc"
    hfc.write_bytes(compress(model, _tones(1, 4000, seed=1)[0, 0].numpy(), 16000))
    code = main(["decode", str(hfc), "-o", str(tmp_path / "out.wav"), "--backend", "onnx", "--onnx-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 1 and "does not match its SHA-256" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.wav").exists()
    # the cache: refused as well, not exported over (a changed graph is not a missing one)
    monkeypatch.setenv("HIFICODEC_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "onnx" / onnx_backend.model_hash(model)
    shutil.copytree(folder, cached)
    told: list[Path] = []
    with pytest.raises(HificodecError, match=f"delete {cached} and the next run exports it again"):
        onnx_backend.load(model, on_export=told.append)
    assert told == []


def test_an_export_of_the_format_without_digests_is_refused_and_the_cache_redone(tmp_path, monkeypatch):
    model = coding_model(tiny_preset("tiny-encodec"))
    onnx_backend.export(model, tmp_path / "graphs")
    info = json.loads((tmp_path / "graphs" / onnx_backend.INFO_FILE).read_text())
    del info["sha256"]
    info["format"] = 1
    (tmp_path / "graphs" / onnx_backend.INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(HificodecError, match="an export of another format"):
        onnx_backend.load(model, tmp_path / "graphs")
    monkeypatch.setenv("HIFICODEC_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "onnx" / onnx_backend.model_hash(model)
    shutil.copytree(tmp_path / "graphs", cached)
    told: list[Path] = []
    assert onnx_backend.load(model, on_export=told.append).info["sha256"]
    assert told == [cached]


def test_a_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    with pytest.raises(HificodecError, match=r"pip install 'hificodec\[onnx\]'"):
        onnx_backend.require_onnx()


def test_cli_export_and_backend_flag(shipped, tmp_path, capsys, monkeypatch):
    model, backend = shipped
    wav_path = tmp_path / "in.wav"
    sf.write(str(wav_path), _tones(1, 16000, seed=5)[0, 0].numpy(), 16000)
    # export-onnx refuses to overwrite without --force (the export itself is the session fixture's)
    assert main(["export-onnx", "hificodec-16k", str(backend.folder), "-q"]) == 1
    assert "--force" in capsys.readouterr().err
    # the cache is keyed by model hash: point it at the fixture's export so the CLI needs no new one
    monkeypatch.setenv("HIFICODEC_CACHE", str(tmp_path / "cache"))
    shutil.copytree(backend.folder, tmp_path / "cache" / "onnx" / onnx_backend.model_hash(model))
    torch_hfc, onnx_hfc = tmp_path / "t.hfc", tmp_path / "o.hfc"
    assert main(["encode", str(wav_path), "-o", str(torch_hfc), "-q"]) == 0
    assert main(["encode", str(wav_path), "-o", str(onnx_hfc), "--backend", "onnx", "-q"]) == 0
    assert onnx_hfc.read_bytes() == torch_hfc.read_bytes()
    out = tmp_path / "o.wav"
    assert main(["decode", str(onnx_hfc), "-o", str(out), "--backend", "onnx", "-q"]) == 0
    assert main(["decode", str(torch_hfc), "-o", str(tmp_path / "t.wav"), "-q"]) == 0
    ours, _ = sf.read(str(out), dtype="float32")
    theirs, _ = sf.read(str(tmp_path / "t.wav"), dtype="float32")
    assert ours.shape == theirs.shape and np.abs(ours - theirs).max() < AUDIO_TOLERANCE
    assert main(["encode", str(wav_path), "-o", str(tmp_path / "x.hfc"), "--onnx-dir", str(backend.folder)]) == 2
    assert "--onnx-dir is for --backend onnx" in capsys.readouterr().err


def test_the_causal_preset_exports_with_its_frame_shift(tmp_path):
    """hificodec-16k-causal: causal YIN frames and an iSTFT whose frames sit one hop later (untrained
    weights: the decode is what is compared)."""
    model = hificodec.build("hificodec-16k-causal").eval()
    onnx_backend.export(model, tmp_path / "graphs")
    backend = onnx_backend.load(model, tmp_path / "graphs", threads=1)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, model.codebook_size, (2, model.max_codebooks, 23), generator=g)
    with torch.no_grad():
        reference = model.decode(codes)
    assert float((backend.decode(codes) - reference).abs().max()) < 1e-5  # ~4e-7 measured
    wav = _tones(2, 320 * 9, seed=9)
    with torch.no_grad():
        assert torch.equal(backend.encode(wav), model.encode(wav))


def test_the_cache_exports_once_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HIFICODEC_CACHE", str(tmp_path / "cache"))
    model = coding_model(tiny_preset("tiny-encodec"))
    told: list[Path] = []
    first = onnx_backend.load(model, on_export=told.append)
    again = onnx_backend.load(model, on_export=told.append)
    assert told == [tmp_path / "cache" / "onnx" / onnx_backend.model_hash(model)]
    assert first.folder == again.folder == told[0]
    wav = 0.1 * torch.randn(1, 1, 3200)
    with torch.inference_mode():
        assert torch.equal(again.encode(wav), model.encode(wav))


def test_tokenize_with_the_onnx_backend_takes_threads_and_workers(shipped, tmp_path, monkeypatch):
    """`tokenize --backend onnx` ignored --threads (the sessions took torch's thread count); --workers
    are the processes that load audio for its encoder, and give the same codes."""
    from hificodec.cli import tokenize_cmd

    _, backend = shipped
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        sf.write(str(data / f"u{i}.wav"), _tones(1, 8000 + 1600 * i, seed=i)[0, 0].numpy(), 16000)
    used: list = []
    real = tokenize_cmd.tokenize
    monkeypatch.setattr(tokenize_cmd, "tokenize", lambda model, *a, **k: used.append(model) or real(model, *a, **k))
    argv = ["tokenize", str(data), "--model", "hificodec-16k", "--backend", "onnx", "--onnx-dir", str(backend.folder),
            "-q", "--threads", "2"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "a"), "--workers", "0"]) == 0
    assert main([*argv, "--out", str(tmp_path / "b"), "--workers", "2"]) == 0
    for model in used:
        assert model._encoder.get_session_options().intra_op_num_threads == 2
    for i in range(3):
        assert np.array_equal(np.load(tmp_path / "a" / "codes" / f"u{i}.npy"), np.load(tmp_path / "b" / "codes" /
                                                                                          f"u{i}.npy"))  # fmt: skip
