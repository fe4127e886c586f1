import numpy as np
import pytest
import soundfile as sf
import torch

import hificodec
from hificodec.audio import resample
from hificodec.bitstream import (
    INDEPENDENT,
    MID_SIDE,
    ChecksumError,
    FormatError,
    ModelMismatchError,
    TruncatedError,
    UnsupportedVersionError,
    read_codes,
    read_header,
    write_codes,
)
from hificodec.chunked import encode_chunked
from hificodec.compress import (
    compress,
    decode_file,
    decompress,
    encode_file,
    from_coded_channels,
    resampled_length,
    to_coded_channels,
)
from hificodec.errors import AudioError, HificodecError
from tiny_codecs import assert_codes_vary, code_mismatch, coding_model, tiny_preset

#: fraction of codes that may differ when the same audio takes another path through tiny-encodec (batch
#: of one vs two, other chunk joins): near-ties decided by float rounding, plus its LSTM's memory beyond
#: the chunk context. Measured over model seeds 0-5: 0-0.8 % (no chunk context: 60-80 %).
PATH_MISMATCH = 0.02


@pytest.fixture(scope="module")
def model():
    return coding_model(tiny_preset("tiny-encodec"))


def tone(sr: int, n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)])
    return (x + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.mark.parametrize(
    "sr,channels,n",
    [(16000, 1, 16001), (8000, 1, 7999), (16000, 2, 12345), (24000, 1, 24007), (44100, 2, 44101), (48000, 1, 3)],
)
def test_roundtrip_keeps_rate_length_channels(model, sr, channels, n):
    x = tone(sr, n, channels)
    data = compress(model, x, sr)
    header, codes = read_codes(data)
    assert (header.source_sample_rate, header.source_num_samples, header.channels) == (sr, n, channels)
    assert header.num_samples == resampled_length(n, sr, 16000)
    assert codes.shape == (channels, model.num_codebooks, model.num_frames(header.num_samples))
    if n > 8000:
        assert_codes_vary(codes)
    y, sr_out = hificodec.decompress(data, model=model)
    assert sr_out == sr and y.shape == (channels, n) and y.dtype == np.float32
    # the decoded audio is the model's own reconstruction of each coded channel (stereo: mid and side),
    # resampled back
    with torch.inference_mode():
        coded = to_coded_channels(x, header.channel_coding)
        at_model_rate = resample(coded, sr, 16000)[:, : header.num_samples]
        expected = model.decode(model.encode(torch.from_numpy(at_model_rate)[:, None]), length=header.num_samples)
    expected = from_coded_channels(expected[:, 0].numpy(), header.channel_coding)
    y16, _ = decompress(data, model=model, sample_rate=16000)
    np.testing.assert_allclose(y16, np.clip(expected, -1, 1), atol=1e-5)


def test_channels_are_coded_independently(model):
    x = tone(16000, 8000, channels=3)  # stereo is coded as mid/side (next test); other counts channel by channel
    header, coded = read_codes(compress(model, x, 16000))
    assert header.channel_coding == INDEPENDENT and header.version == 1
    assert_codes_vary(coded)
    assert code_mismatch(coded[0], coded[1]) > 0.5  # 220 Hz and 330 Hz tones
    # another last channel leaves the others' codes as they were, bit for bit
    other = np.concatenate([x[:2], tone(16000, 8000, seed=1)[:1, ::-1]])
    _, changed = read_codes(compress(model, other, 16000))
    np.testing.assert_array_equal(changed[:2], coded[:2])
    assert code_mismatch(changed[2], coded[2]) > 0.5
    # coded alone (a batch of one), each channel gets its codes but for rare rounding ties
    for c in range(3):
        _, alone = read_codes(compress(model, x[c : c + 1], 16000))
        assert code_mismatch(alone, coded[c : c + 1]) <= PATH_MISMATCH


def test_stereo_is_coded_as_mid_and_side(model):
    x = tone(16000, 8000, channels=2)
    header, coded = read_codes(compress(model, x, 16000))
    assert header.channel_coding == MID_SIDE and header.version == 2
    for c, signal in enumerate([(x[0] + x[1]) / 2, (x[0] - x[1]) / 2]):
        _, alone = read_codes(compress(model, signal, 16000))
        assert code_mismatch(alone[0], coded[c]) <= PATH_MISMATCH



def test_mid_side_decodes_back_to_left_and_right(model):
    """Decoding turns (mid, side) back into (left, right) = (mid + side, mid - side). With the right
    channel silent, mid and side are the same signal, coded alike: the decoded right channel is silent
    and the left one carries the audio (channels swapped or a sign flipped, they are not)."""
    x = tone(16000, 8000, channels=2)
    back = from_coded_channels(to_coded_channels(x, MID_SIDE), MID_SIDE)
    np.testing.assert_allclose(back, x, atol=1e-6)  # float32 rounding: 3e-8 measured
    x[1] = 0
    data = compress(model, x, 16000)
    header, codes = read_codes(data)
    assert header.channel_coding == MID_SIDE and np.array_equal(codes[0], codes[1])
    y, _ = decompress(data, model=model)
    assert np.abs(y[1]).max() < 1e-6 < 0.05 < np.abs(y[0]).max(), (np.abs(y[0]).max(), np.abs(y[1]).max())

def test_bitrate_follows_codebooks(model):
    x = tone(16000, 16000)
    model.set_num_codebooks(2)
    try:
        h2, c2 = read_codes(compress(model, x, 16000))
    finally:
        model.set_num_codebooks(4)
    h4, c4 = read_codes(compress(model, x, 16000))
    assert h2.num_codebooks == 2 and h4.num_codebooks == 4
    assert h4.bitrate == pytest.approx(2 * h2.bitrate)
    assert_codes_vary(c4)
    np.testing.assert_array_equal(c2, c4[:, :2])  # residual VQ: the first codebooks do not change


def test_other_model_is_refused(model):
    data = compress(model, tone(16000, 4000), 16000)
    other = hificodec.build(tiny_preset("tiny-encodec")).eval()
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    with pytest.raises(ModelMismatchError, match=r"made by 'tiny-encodec' \(model hash"):
        decompress(data, model=other)


def test_decompress_names_the_missing_model(model):
    data = compress(model, tone(16000, 4000), 16000)
    with pytest.raises(HificodecError, match="not installed.*--model DIR"):
        decompress(data)


def test_saved_model_directory_decodes(model, tmp_path):
    hificodec.save(model, tmp_path / "m")
    data = compress(model, tone(16000, 4000), 16000)
    y, _ = decompress(data, model=str(tmp_path / "m"))
    np.testing.assert_allclose(y, decompress(data, model=model)[0], atol=1e-6)


def test_bad_arrays(model):
    with pytest.raises(AudioError, match="no samples"):
        compress(model, np.zeros((1, 0), np.float32), 16000)
    with pytest.raises(AudioError, match="NaN"):
        compress(model, np.array([0.0, np.nan, 0.1], np.float32), 16000)
    with pytest.raises(AudioError, match="shaped"):
        compress(model, np.zeros((1, 2, 3, 4), np.float32), 16000)


# ---- files -----------------------------------------------------------------------------------------
def write_wav(path, x: np.ndarray, sr: int) -> str:
    sf.write(str(path), x.T, sr, subtype="FLOAT")
    return str(path)


def test_file_roundtrip_streams_and_matches_memory_api(model, tmp_path):
    x = tone(16000, 5 * 16000 + 77, channels=2)  # longer than one 65536-frame read block
    src = write_wav(tmp_path / "a.wav", x, 16000)
    header = encode_file(model, src, tmp_path / "a.hfc", chunk_frames=20).header
    assert read_header(tmp_path / "a.hfc") == header
    streamed = read_codes((tmp_path / "a.hfc").read_bytes())[1]
    assert_codes_vary(streamed, min_distinct=16)
    # the same chunks in memory give the same file, byte for byte
    in_memory = encode_chunked(model, torch.from_numpy(to_coded_channels(x, header.channel_coding)), chunk_frames=20)
    in_memory = in_memory.numpy()
    assert (tmp_path / "a.hfc").read_bytes() == write_codes(in_memory, header)
    # and the whole-file codes but for rare near-ties
    whole_header, whole = read_codes(compress(model, x, 16000))
    assert whole_header == header and code_mismatch(streamed, whole) <= PATH_MISMATCH
    decode_file(tmp_path / "a.hfc", tmp_path / "b.wav", model=model, chunk_frames=33)
    y, sr = sf.read(tmp_path / "b.wav", always_2d=True, dtype="float32")
    ref, _ = decompress((tmp_path / "a.hfc").read_bytes(), model=model)
    assert sr == 16000 and y.T.shape == ref.shape
    np.testing.assert_allclose(y.T, ref, atol=2 / 32768)  # 16-bit WAV output


@pytest.mark.parametrize("sr", [8000, 44100])
def test_file_roundtrip_other_rates(model, tmp_path, sr):
    x = tone(sr, sr + 5)
    src = write_wav(tmp_path / "a.wav", x, sr)
    encode_file(model, src, tmp_path / "a.hfc")
    decode_file(tmp_path / "a.hfc", tmp_path / "b.flac", model=model)
    info = sf.info(str(tmp_path / "b.flac"))
    assert (info.samplerate, info.frames, info.channels) == (sr, sr + 5, 1)
    decode_file(tmp_path / "a.hfc", tmp_path / "c.wav", model=model, sample_rate=16000)
    assert sf.info(str(tmp_path / "c.wav")).frames == resampled_length(sr + 5, sr, 16000)


def outputs(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("case", ["missing", "directory", "not_audio", "empty", "nan"])
def test_bad_audio_input_leaves_no_output(model, tmp_path, case):
    src = tmp_path / "in.wav"
    if case == "directory":
        src.mkdir()
    elif case == "not_audio":
        src.write_text("this is not audio\n")
    elif case == "empty":
        sf.write(str(src), np.zeros((0, 1), np.float32), 16000)
    elif case == "nan":
        x = tone(16000, 100000)
        x[0, 90000] = np.nan  # in the second read block: found after encoding has started
        write_wav(src, x, 16000)
    before = outputs(tmp_path)
    message = {"missing": "no such file", "directory": "is a directory", "not_audio": "not a readable audio",
               "empty": "no audio samples", "nan": "NaN"}[case]  # fmt: skip
    with pytest.raises(AudioError, match=message):
        encode_file(model, src, tmp_path / "out.hfc")
    assert outputs(tmp_path) == before


def test_refuses_to_overwrite(model, tmp_path):
    src = write_wav(tmp_path / "a.wav", tone(16000, 1000), 16000)
    with pytest.raises(HificodecError, match="would overwrite its input"):
        encode_file(model, src, src)
    (tmp_path / "a.hfc").write_bytes(b"old")
    with pytest.raises(HificodecError, match="already exists"):
        encode_file(model, src, tmp_path / "a.hfc")
    assert (tmp_path / "a.hfc").read_bytes() == b"old"
    encode_file(model, src, tmp_path / "a.hfc", force=True)
    assert read_header(tmp_path / "a.hfc").source_num_samples == 1000


def test_unwritable_output(model, tmp_path):
    src = write_wav(tmp_path / "a.wav", tone(16000, 1000), 16000)
    with pytest.raises(HificodecError, match="does not exist"):
        encode_file(model, src, tmp_path / "no" / "such" / "dir" / "a.hfc")
    (tmp_path / "file").write_text("x")
    with pytest.raises(HificodecError):
        encode_file(model, src, tmp_path / "file" / "a.hfc")
    with pytest.raises(HificodecError, match="is a directory"):
        encode_file(model, src, tmp_path)


def _valid_hfc(model, tmp_path) -> bytes:
    src = write_wav(tmp_path / "a.wav", tone(16000, 30000), 16000)
    encode_file(model, src, tmp_path / "a.hfc")
    return (tmp_path / "a.hfc").read_bytes()


@pytest.mark.parametrize(
    "case,error", [("truncated", TruncatedError), ("bitflip", ChecksumError), ("version", UnsupportedVersionError),
                   ("garbage", FormatError), ("other_model", ModelMismatchError)],
)  # fmt: skip
def test_bad_hfc_input_leaves_no_output(model, tmp_path, case, error):
    data = bytearray(_valid_hfc(model, tmp_path))
    if case == "truncated":
        data = data[:-10]
    elif case == "bitflip":
        data[len(data) // 2] ^= 0x04
    elif case == "version":
        data[4] = 9
    elif case == "garbage":
        data = bytearray(b"RIFF....WAVEfmt ")
    bad = tmp_path / "bad.hfc"
    bad.write_bytes(bytes(data))
    use = model
    if case == "other_model":
        use = hificodec.build(tiny_preset("tiny-encodec")).eval()
        torch.nn.init.zeros_(next(use.parameters()))
    with pytest.raises(error):
        decode_file(bad, tmp_path / "out.wav", model=use)
    assert not (tmp_path / "out.wav").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
