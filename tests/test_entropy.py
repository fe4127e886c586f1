"""Entropy coding of codes: the context model, the range-coded groups, and .hfc version 3."""

import io
import random
from dataclasses import replace

import numpy as np
import pytest

from hificodec.bitstream import (
    ENTROPY,
    EntropyTablesError,
    FormatError,
    HfcHeader,
    HfcReader,
    TruncatedError,
    read_codes,
    write_codes,
)
from hificodec.entropy import MAX_SYMBOLS_PER_BYTE, EntropyError, fit, load_tables

SIZE = 64


def markov_codes(seed: int, utterances: int = 40, frames: int = 120) -> list[np.ndarray]:
    """[4, frames] codes with what real codes have: codebook 0 follows its previous code (a random walk
    that often repeats), codebook 1 is codebook 0 shifted plus noise (a parent), 2 and 3 are noisier."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(utterances):
        c0 = np.cumsum(rng.integers(-2, 3, frames) * (rng.random(frames) < 0.6)) % SIZE
        c1 = (c0 * 3 + rng.integers(0, 3, frames)) % SIZE
        c2 = rng.integers(0, SIZE, frames)
        c3 = (c2 + rng.integers(0, 8, frames)) % SIZE
        out.append(np.stack([c0, c1, c2, c3]))
    return out


@pytest.fixture(scope="module")
def tables():
    return fit(markov_codes(0), SIZE, "0123456789abcdef", previous_classes=8, parent_classes=16)


def header(frames: int, channels: int = 1, tables=None, group_frames: int = 50) -> HfcHeader:
    return HfcHeader(
        model_name="m", model_hash="0123456789abcdef", sample_rate=16000, hop_length=320, num_samples=frames * 320,
        num_frames=frames, channels=channels, num_codebooks=4, codebook_size=SIZE, source_sample_rate=16000,
        source_num_samples=frames * 320, group_frames=group_frames,
        payload_coding=ENTROPY if tables is not None else 0, entropy_id=tables.id if tables is not None else "",
    )  # fmt: skip


def test_fit_finds_the_parents_and_codes_in_fewer_bits(tables):
    assert tables.parent.tolist()[1] == 0 and tables.parent.tolist()[3] == 2  # the codebooks they depend on
    held = markov_codes(1, utterances=10)
    bits = tables.bits_per_code(held)
    assert bits < 0.8 * np.log2(SIZE), bits  # 6 bits raw; the dependencies are worth > 20 %
    # and what the range coder writes is within a few % of that ideal length
    coded = sum(len(tables.encode(c[None])) for c in held) * 8 / sum(c.size for c in held)
    assert bits <= coded < bits * 1.05 + 0.1



def _mean_bits(tables, codes: list[np.ndarray], q: int) -> float:
    """Ideal code length (bits per code) of codebook q under the tables' context model."""
    bits = []
    for c in codes:
        previous = np.concatenate([[-1], c[q, :-1]])
        rows = tables.probabilities(np.full(c.shape[1], q), previous, c[max(int(tables.parent[q]), 0)])
        bits.append(-np.log2(rows[np.arange(c.shape[1]), c[q]]))
    return float(np.concatenate(bits).mean())


def test_the_parent_code_in_the_same_frame_is_used_as_context(tables):
    """Codebook 3 is codebook 2 (uniform noise) plus 0-7: alone it costs the full 6 bits, given its parent
    3 bits. Measured on held-out seeds 1-5: 3.61-3.67 bits for codebook 3 and 2.11-2.39 for codebook 1
    (the parent context ignored: 7.98-8.10 and 5.59-5.98)."""
    held = markov_codes(1, utterances=10)
    assert _mean_bits(tables, held, 2) > 5.8  # no parent, no memory: uniform
    assert _mean_bits(tables, held, 3) < 4.5
    assert _mean_bits(tables, held, 1) < 3.5

@pytest.mark.parametrize("channels,frames", [(1, 1), (1, 257), (2, 33), (3, 5)])
def test_any_codes_round_trip_exactly(tables, channels, frames):
    rng = np.random.default_rng(frames)
    codes = rng.integers(0, SIZE, (channels, 4, frames))  # unlike the training data: every code must stay codable
    codes[0, :, :1] = SIZE - 1
    data = tables.encode(codes)
    assert len(data) % 4 == 0
    assert np.array_equal(tables.decode(data, channels, frames), codes)


def test_constant_codes_are_padded_so_the_decoder_work_stays_bounded(tables):
    codes = np.zeros((1, 4, 4096), dtype=np.int64)
    data = tables.encode(codes)
    assert len(data) * MAX_SYMBOLS_PER_BYTE >= codes.size - 8 * MAX_SYMBOLS_PER_BYTE
    assert np.array_equal(tables.decode(data, 1, 4096), codes)
    with pytest.raises(EntropyError, match="too many"):
        tables.decode(data[:8], 1, 4096)


def test_tables_save_and_load(tables, tmp_path):
    path = tables.save(tmp_path / "entropy.safetensors")
    loaded = load_tables(path)
    assert loaded.id == tables.id and loaded.model_hash == tables.model_hash
    assert path.stat().st_size < 2 * 2**20
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF  # a changed table value
    (tmp_path / "bad.safetensors").write_bytes(bytes(raw))
    with pytest.raises(EntropyError):
        load_tables(tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not tables")
    with pytest.raises(EntropyError, match="unreadable"):
        load_tables(tmp_path / "junk.safetensors")


def test_version_3_files_round_trip_and_need_their_tables(tables):
    codes = np.stack(markov_codes(2, utterances=2, frames=130))  # 2 channels, 3 groups of 50
    data = write_codes(codes, header(130, channels=2, tables=tables), tables)
    h, back = read_codes(data, tables)
    assert h.version == 3 and h.entropy_id == tables.id and np.array_equal(back, codes)
    packed = write_codes(codes, header(130, channels=2))
    assert read_codes(packed)[0].version == 1 and len(data) < 0.85 * len(packed)
    with pytest.raises(EntropyTablesError, match=f"entropy-coded with tables {tables.id}"):
        read_codes(data)
    other = fit(markov_codes(5), SIZE, "0123456789abcdef", previous_classes=4, parent_classes=4)
    with pytest.raises(EntropyTablesError, match="not with tables"):
        read_codes(data, other)
    # the header's fields are checked and its checksum covers them
    reader = HfcReader(io.BytesIO(data))
    assert reader.header.payload_coding == ENTROPY
    assert sum(1 for _ in reader.checked_groups()) == 3 and 0 < reader.payload_bytes < len(data)


def test_mutated_or_truncated_version_3_files_fail_cleanly(tables):
    """Every mutation either fails with a FormatError or decodes to valid codes; nothing else escapes."""
    codes = np.stack(markov_codes(3, utterances=1, frames=140))
    data = write_codes(codes, header(140, tables=tables), tables)
    rng = random.Random(0)
    outcomes = {"error": 0, "decoded": 0}
    for case in range(300):
        bad = bytearray(data)
        kind = case % 3
        if kind == 0:
            bad = bad[: rng.randrange(len(bad))]
        elif kind == 1:
            for _ in range(rng.randint(1, 3)):
                bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        else:  # a group length claiming far more data than there is, or a header field rewritten
            pos = rng.randrange(len(bad) - 4)
            bad[pos : pos + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", bytes(rng.randbytes(4))])
        try:
            _, decoded = read_codes(bytes(bad), tables)
        except FormatError:
            outcomes["error"] += 1
        else:
            assert decoded.shape == codes.shape and decoded.min() >= 0 and decoded.max() < SIZE
            outcomes["decoded"] += 1
    assert outcomes["error"] >= 290, outcomes


def _groups(data: bytes, h: HfcHeader) -> list[int]:
    """Offsets of the length fields of a version-3 file's groups."""
    pos, out = len(h.to_bytes()), []
    for _ in range(h.num_groups):
        out.append(pos)
        pos += 4 + int.from_bytes(data[pos : pos + 4], "little") + 4
    assert pos == len(data)
    return out


@pytest.mark.parametrize("group", [0, 2])
def test_a_corrupt_length_field_is_not_called_a_cut(tables, group):
    """A group's length field rewritten to run past the end of a complete file was reported as
    "truncated .hfc file"; the chained checksum covers the field, so the reader can tell."""
    codes = np.stack(markov_codes(3, utterances=1, frames=140))
    h = header(140, tables=tables)
    data = write_codes(codes, h, tables)
    at = _groups(data, h)[group]
    bad = bytearray(data)
    bad[at : at + 4] = (len(data) - at).to_bytes(4, "little")  # more than is left, yet plausible for 50 frames
    with pytest.raises(FormatError, match=f"the length field of frame group {group + 1} of 3 states .* the field is "
                                          "corrupt, the file is not cut short") as e:  # fmt: skip
        read_codes(bytes(bad), tables)
    assert "truncated" not in str(e.value)
    bad[at : at + 4] = b"\xff\xff\xff\x7f"  # more than any group of 50 frames takes
    most = r"more than (50|40) frames can take \(at most (816|656)\)"
    with pytest.raises(FormatError, match=r"states 2147483647 bytes, " + most):
        read_codes(bytes(bad), tables)
    # a file really cut inside a group: said to be cut short (or its field corrupt: the reader cannot tell)
    with pytest.raises(TruncatedError, match=f"truncated .hfc file: frame group {group + 1} of 3 states"):
        read_codes(data[: at + 20], tables)


def test_a_corrupt_header_length_is_not_called_a_cut(tables):
    h = header(140, tables=tables)
    data = write_codes(np.stack(markov_codes(3, utterances=1, frames=140)), h, tables)[:200]  # header + a bit
    bad = bytearray(data)
    bad[6:8] = (300).to_bytes(2, "little")
    with pytest.raises(FormatError, match="length field of the header states 300 bytes.* the field is corrupt"):
        read_codes(bytes(bad))
    bad[6:8] = b"\xff\xff"
    with pytest.raises(FormatError, match="header's length field states 65535 bytes, more than a header holds"):
        read_codes(bytes(bad))


def test_a_group_claiming_millions_of_frames_is_refused(tables):
    with pytest.raises(FormatError, match="implausibly large"):
        header(100, tables=tables, group_frames=1 << 20).validate()


# ---- with a model: compress, files and the command line ------------------------------------------
@pytest.fixture(scope="module")
def coded_model(tmp_path_factory):
    """A tiny model saved to a folder, with tables fitted on its own codes next to its weights."""
    import torch

    import hificodec
    from hificodec.checkpoint import model_hash
    from tiny_codecs import calibration_audio, coding_model, tiny_preset

    model = coding_model(tiny_preset("tiny-hificodec"))
    folder = hificodec.save(model, tmp_path_factory.mktemp("model") / "tiny")
    model = hificodec.load(folder)
    with torch.no_grad():
        codes = model.encode(calibration_audio(model.sample_rate, seed=1, clips=24)).numpy()
    tables = fit(list(codes), model.codebook_size, model_hash(model), previous_classes=8, parent_classes=8)
    tables.save(folder / "entropy.safetensors")
    return model, folder, tables


def _speech(seconds=1.5, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 180 * t + 3 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def test_compress_with_tables_decodes_exactly_like_packed(coded_model):
    from hificodec.compress import compress, decompress

    model, _, tables = coded_model
    entropy_coded = compress(model, _speech(), 16000, entropy=tables)
    packed = compress(model, _speech(), 16000, entropy=None)
    assert read_codes(entropy_coded, tables)[0].version == 3 and read_codes(packed)[0].version == 1
    assert np.array_equal(read_codes(entropy_coded, tables)[1], read_codes(packed)[1])
    a, _ = decompress(entropy_coded, model, entropy=tables)
    b, _ = decompress(packed, model)
    assert np.array_equal(a, b)
    with pytest.raises(EntropyTablesError):
        decompress(entropy_coded, model, entropy=None)


def test_tables_of_another_model_are_refused(coded_model):
    import hificodec
    from hificodec.compress import compress
    from tiny_codecs import coding_model, tiny_preset

    _, _, tables = coded_model
    other = coding_model(tiny_preset("tiny-encodec"))
    with pytest.raises(hificodec.HificodecError, match="fitted for"):
        compress(other, _speech(), 16000, entropy=tables)


def test_cli_uses_the_tables_next_to_the_model(coded_model, tmp_path, capsys):
    import soundfile as sf

    from hificodec.cli import main

    _, folder, tables = coded_model
    wav = tmp_path / "in.wav"
    sf.write(wav, _speech(3.0), 16000)
    assert main(["encode", str(wav), "--model", str(folder), "-o", str(tmp_path / "a.hfc"), "-q"]) == 0
    assert main(["encode", str(wav), "--model", str(folder), "--no-entropy", "-o", str(tmp_path / "b.hfc"), "-q"]) == 0
    assert (tmp_path / "a.hfc").stat().st_size < (tmp_path / "b.hfc").stat().st_size
    capsys.readouterr()
    assert main(["info", str(tmp_path / "a.hfc"), str(tmp_path / "b.hfc")]) == 0
    out = capsys.readouterr().out
    assert f"entropy-coded, tables {tables.id}" in out and "version 3" in out and "(packed)" in out
    for name in ("a", "b"):
        assert main(["decode", str(tmp_path / f"{name}.hfc"), "--model", str(folder), "-q"]) == 0
    a, b = (sf.read(tmp_path / f"{n}.decoded.wav")[0] for n in ("a", "b"))
    assert np.array_equal(a, b)
    # without its tables the entropy-coded file cannot be decoded: a clear error, no output
    assert main(["decode", str(tmp_path / "a.hfc"), "--model", str(folder), "--entropy",
                 str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "c.wav")]) != 0  # fmt: skip
    assert "no such entropy tables file" in capsys.readouterr().err and not (tmp_path / "c.wav").exists()
    assert main(["reconstruct", str(wav), "--model", str(folder), "-o", str(tmp_path / "r.wav")]) == 0
    assert "entropy-coded" in capsys.readouterr().out


def test_a_prefix_of_the_codebooks_is_coded_with_the_same_tables(tables):
    """A model set to fewer codebooks (a lower bitrate) codes a prefix; parents come first, so it has them."""
    codes = np.stack(markov_codes(4, utterances=1, frames=90))[:, :2]
    data = write_codes(codes, replace(header(90, tables=tables), num_codebooks=2), tables)
    h, back = read_codes(data, tables)
    assert h.num_codebooks == 2 and np.array_equal(back, codes)
    assert len(tables.encode(codes)) < len(tables.encode(np.stack(markov_codes(4, utterances=1, frames=90))))


def _copy_without_tables(folder, to, listed: bool):
    """The model folder without its entropy tables; `listed`: its digest still names them."""
    import shutil

    import hificodec
    from hificodec.checkpoint import read_digest, write_digest

    copy = shutil.copytree(folder, to)
    hificodec.save(hificodec.load(copy), copy)  # the digest now covers the tables too
    assert "entropy.safetensors" in (read_digest(copy) or {})
    (copy / "entropy.safetensors").unlink()
    if not listed:  # as after editing checksums.sha256 by hand
        write_digest(copy, [copy / name for name in read_digest(copy) or {} if name != "entropy.safetensors"])
    return copy


def test_a_model_folder_without_its_tables_loads_and_says_so_when_they_are_needed(coded_model, tmp_path, capsys):
    """A folder whose digest lists entropy.safetensors but lacks it would not load even with --no-entropy."""
    import soundfile as sf

    import hificodec
    from hificodec.cli import main

    _, folder, _ = coded_model
    bare = _copy_without_tables(folder, tmp_path / "bare", listed=True)
    assert hificodec.load(bare).num_codebooks > 0
    wav = tmp_path / "in.wav"
    sf.write(wav, _speech(1.0), 16000)
    argv = ["encode", str(wav), "--model", str(bare), "-q", "-o"]
    assert main([*argv, str(tmp_path / "packed.hfc"), "--no-entropy"]) == 0
    assert main(["decode", str(tmp_path / "packed.hfc"), "--model", str(bare), "-q"]) == 0  # tables not needed
    capsys.readouterr()
    assert main([*argv, str(tmp_path / "x.hfc")]) == 1  # the default codes with the folder's own tables
    err = capsys.readouterr().err
    assert f"the model folder {bare} lists entropy.safetensors in checksums.sha256, but it is missing" in err
    assert "--no-entropy" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "x.hfc").exists()
    assert main(["encode", str(wav), "--model", str(folder), "-q", "-o", str(tmp_path / "coded.hfc")]) == 0
    assert main(["decode", str(tmp_path / "coded.hfc"), "--model", str(bare), "-o", str(tmp_path / "y.wav")]) == 1
    err = capsys.readouterr().err
    assert "coded.hfc: the codes are entropy-coded with tables" in err and "lists entropy.safetensors" in err


def test_decoding_without_tables_says_what_happened(coded_model, tmp_path, capsys):
    """After checksums.sha256 was edited (the tables taken out of the folder and the digest), decoding
    said "no entropy tables are at hand (the tables given)", though no tables were given."""
    import soundfile as sf

    from hificodec.cli import main

    _, folder, tables = coded_model
    bare = _copy_without_tables(folder, tmp_path / "bare", listed=False)
    wav = tmp_path / "in.wav"
    sf.write(wav, _speech(1.0), 16000)
    assert main(["encode", str(wav), "--model", str(folder), "-q", "-o", str(tmp_path / "a.hfc")]) == 0
    assert main(["decode", str(tmp_path / "a.hfc"), "--model", str(bare), "-o", str(tmp_path / "a.wav")]) == 1
    err = capsys.readouterr().err
    assert (f"a.hfc: the codes are entropy-coded with tables {tables.id}, and the model folder {bare} holds no "
            "entropy.safetensors; pass the tables they were coded with (--entropy TABLES)") in err, err  # fmt: skip
    assert "the tables given" not in err
    other = tmp_path / "other.safetensors"
    fit(list(np.stack(markov_codes(9, utterances=4))), tables.codebook_size, tables.model_hash,
        previous_classes=4, parent_classes=4).save(other)  # fmt: skip
    assert main(["decode", str(tmp_path / "a.hfc"), "--model", str(bare), "--entropy", str(other), "-o",
                 str(tmp_path / "a.wav")]) == 1  # fmt: skip
    assert f"not with tables {load_tables(other).id} (the tables in {other})" in capsys.readouterr().err


def test_encode_and_reconstruct_print_rates_without_reading_the_file_back(coded_model, tmp_path, capsys,
                                                                          monkeypatch):  # fmt: skip
    """The rates were computed by reading the .hfc just written back from disk; they come from what was
    written now, and agree with what `info` reads from the file."""
    import os
    import re

    import soundfile as sf

    from hificodec.cli import codec_cmd, main
    from hificodec.compress import encode_file

    model, folder, _ = coded_model
    wav = tmp_path / "in.wav"
    sf.write(wav, _speech(2.0), 16000)
    done = encode_file(model, wav, tmp_path / "api.hfc")
    with open(tmp_path / "api.hfc", "rb") as f:
        reader = HfcReader(f)
        assert sum(1 for _ in reader.checked_groups()) == done.header.num_groups
    assert (done.payload_bytes, done.file_bytes) == (reader.payload_bytes, os.path.getsize(tmp_path / "api.hfc"))

    def read_back(path):
        raise AssertionError(f"{path} read back")

    hfc = tmp_path / "a.hfc"
    with monkeypatch.context() as m:
        m.setattr(codec_cmd, "open_hfc", read_back)
        assert main(["encode", str(wav), "--model", str(folder), "-o", str(hfc)]) == 0
        encoded = capsys.readouterr().out
        assert main(["reconstruct", str(wav), "--model", str(folder), "-o", str(tmp_path / "r.wav")]) == 0
        reconstructed = capsys.readouterr().out
    assert main(["info", str(hfc)]) == 0
    info = capsys.readouterr().out
    rate = re.search(r"[\d.]+ kbps per channel entropy-coded", info)
    assert rate and rate.group() in encoded and rate.group() in reconstructed
    assert f"{os.path.getsize(hfc)} bytes" in encoded and f"{os.path.getsize(hfc)} bytes" in reconstructed
