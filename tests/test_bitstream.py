import io
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hificodec.bitstream import (
    FORMAT_VERSION,
    BadMagicError,
    ChecksumError,
    FormatError,
    HfcHeader,
    HfcReader,
    HfcWriter,
    TruncatedError,
    UnsupportedVersionError,
    pack_codes,
    read_codes,
    unpack_codes,
    write_codes,
)

GOLDEN = Path(__file__).parent / "data" / "golden"


def make_header(**kw) -> HfcHeader:
    base = dict(
        model_name="tiny", model_hash="deadbeef" * 8, sample_rate=16000, hop_length=320,
        num_samples=320 * 40 - 7, num_frames=40, channels=2, num_codebooks=4, codebook_size=1024,
        source_sample_rate=44100, source_num_samples=35258, group_frames=16,
    )  # fmt: skip
    base.update(kw)
    return HfcHeader(**base)


def random_codes(header: HfcHeader, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (header.channels, header.num_codebooks, header.num_frames)
    return rng.integers(0, header.codebook_size, size=shape)


@pytest.mark.parametrize("codebook_size", [2, 3, 255, 1000, 1024, 1025, 4096, 65536])
def test_pack_unpack_roundtrip_and_size(codebook_size):
    bits = max(1, (codebook_size - 1).bit_length())
    codes = np.random.default_rng(1).integers(0, codebook_size, size=1001)
    data = pack_codes(codes, bits)
    assert len(data) == -(-1001 * bits // 8)
    np.testing.assert_array_equal(unpack_codes(data, 1001, bits), codes)


def test_pack_is_msb_first():
    assert pack_codes(np.array([1, 2]), 4) == bytes([0x12])
    assert pack_codes(np.array([0x3FF]), 10) == bytes([0xFF, 0xC0])


@pytest.mark.parametrize("frames", [1, 15, 16, 17, 40])
def test_roundtrip_odd_frame_counts(frames):
    h = make_header(num_frames=frames, num_samples=frames * 320 - 3)
    codes = random_codes(h)
    h2, codes2 = read_codes(write_codes(codes, h))
    assert h2 == h
    np.testing.assert_array_equal(codes2, codes)


def test_header_properties():
    h = make_header()
    assert h.bits_per_code == 10
    assert h.num_groups == 3  # 16 + 16 + 8 frames
    assert h.payload_bits == 40 * 2 * 4 * 10
    assert h.bitrate == pytest.approx(h.payload_bits / (h.num_samples / 16000))


def test_streaming_writer_any_split_matches_one_shot():
    h = make_header()
    codes = random_codes(h)
    buf = io.BytesIO()
    w = HfcWriter(buf, h)
    for a, b in [(0, 5), (5, 6), (6, 33), (33, 40)]:
        w.write(codes[:, :, a:b])
    w.close()
    assert buf.getvalue() == write_codes(codes, h)
    groups = list(HfcReader(io.BytesIO(buf.getvalue())).groups())
    assert [g.shape[2] for g in groups] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate(groups, axis=2), codes)


def test_writer_rejects_wrong_shape_range_and_count():
    h = make_header()
    w = HfcWriter(io.BytesIO(), h)
    with pytest.raises(FormatError, match="shaped"):
        w.write(np.zeros((1, 4, 3), dtype=np.int64))
    with pytest.raises(FormatError, match="lie in"):
        w.write(np.full((2, 4, 3), 1024))
    w.write(np.zeros((2, 4, 10), dtype=np.int64))
    with pytest.raises(FormatError, match="wrote 10 frames"):
        w.close()


def test_golden_file_decodes_to_known_codes():
    """tiny.hfc was written once from a fixed arithmetic code array (not a model) with format v1."""
    header, codes = read_codes((GOLDEN / "tiny.hfc").read_bytes())
    expected = np.load(GOLDEN / "tiny_codes.npy")
    np.testing.assert_array_equal(codes, expected)
    assert header.model_name == "golden-test" and header.model_hash == "0123456789abcdef"
    assert (header.sample_rate, header.hop_length, header.num_samples) == (16000, 320, 2100)
    assert (header.source_sample_rate, header.source_num_samples) == (44100, 5788)
    shape = (header.channels, header.num_codebooks, header.codebook_size, header.group_frames)
    assert shape == (2, 3, 1000, 3)
    # the writer still produces the same bytes: the format has not drifted
    assert write_codes(expected, header) == (GOLDEN / "tiny.hfc").read_bytes()


# ---- bad input ---------------------------------------------------------------------------------
@pytest.fixture
def valid() -> bytes:
    h = make_header()
    return write_codes(random_codes(h), h)


def test_wrong_magic(valid):
    with pytest.raises(BadMagicError, match="wrong magic"):
        read_codes(b"RIFF" + valid[4:])
    with pytest.raises(BadMagicError):
        read_codes(b"hello world, this is text")


def test_unknown_version(valid):
    bumped = valid[:4] + struct.pack("<H", FORMAT_VERSION + 1) + valid[6:]
    with pytest.raises(UnsupportedVersionError, match=f"version {FORMAT_VERSION + 1}"):
        read_codes(bumped)


@pytest.mark.parametrize("cut", [0, 3, 7, 20, 90, -5, -1])
def test_truncated(valid, cut):
    with pytest.raises(TruncatedError, match="truncated"):
        read_codes(valid[:cut])


def test_trailing_garbage(valid):
    with pytest.raises(FormatError, match="after the last frame group"):
        read_codes(valid + b"\0")


@pytest.mark.parametrize("where", ["header", "payload", "last_crc"])
def test_bit_flip_is_caught(valid, where):
    pos = {"header": 30, "payload": len(valid) // 2, "last_crc": len(valid) - 1}[where]
    bad = bytearray(valid)
    bad[pos] ^= 0x10
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        read_codes(bytes(bad))


def test_swapped_groups_are_caught():
    h = make_header(num_frames=32, num_samples=32 * 320)
    data = write_codes(random_codes(h), h)
    head = len(h.to_bytes())
    g = h.group_bytes(16) + 4
    swapped = data[:head] + data[head + g : head + 2 * g] + data[head : head + g]
    with pytest.raises(ChecksumError):
        read_codes(swapped)


def test_inconsistent_header_with_valid_crc():
    h = make_header(num_frames=41)  # does not match num_samples / hop
    head = h.to_bytes()
    with pytest.raises(FormatError, match="frame count 41"):
        read_codes(head)


# ---- fuzz: the reader raises nothing but FormatError -------------------------------------------
def _small_valid() -> bytes:
    h = make_header(num_frames=5, num_samples=5 * 320, channels=1, num_codebooks=2, codebook_size=1000,
                    group_frames=2)  # fmt: skip
    return write_codes(random_codes(h, seed=3), h)


SMALL_VALID = _small_valid()


def _read_or_format_error(data: bytes) -> None:
    try:
        read_codes(data)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data):
    _read_or_format_error(data)
    _read_or_format_error(SMALL_VALID[:8] + data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SMALL_VALID) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzz_mutations_never_pass_silently(flips):
    bad = bytearray(SMALL_VALID)
    for pos, xor in flips:
        bad[pos] ^= xor
    if bytes(bad) == SMALL_VALID:
        return
    with pytest.raises(FormatError):
        read_codes(bytes(bad))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(SMALL_VALID) - 1), st.binary(max_size=8))
def test_fuzz_splices(pos, insert):
    _read_or_format_error(SMALL_VALID[:pos] + insert + SMALL_VALID[pos + len(insert) // 2 :])


def test_fuzz_header_with_recomputed_crc():
    """Mutated header fields behind a *correct* CRC must still be rejected cleanly (no huge allocations)."""
    rng = np.random.default_rng(0)
    h = make_header()
    head = bytearray(h.to_bytes()[:-4])
    for _ in range(500):
        mutated = bytearray(head)
        for pos in rng.integers(8, len(head), size=3):
            mutated[pos] = rng.integers(0, 256)
        data = bytes(mutated) + struct.pack("<I", zlib.crc32(bytes(mutated)))
        _read_or_format_error(data + b"\0" * 64)


def test_replace_keeps_header_valid():
    h = make_header()
    assert replace(h, channels=1).validate().channels == 1


# ---- unterminated streams (version 4) ------------------------------------------------------------
def _stream(codes: np.ndarray, group: int = 3, num_samples: int | None = None) -> bytes:
    from hificodec.bitstream import HfcStreamWriter

    buf = io.BytesIO()
    writer = HfcStreamWriter(buf, make_header(group_frames=group))
    for a in range(0, codes.shape[-1], 2):  # pushed 2 frames at a time, written per complete group
        writer.write(codes[..., a : a + 2])
    writer.close(num_samples or codes.shape[-1] * 320 - 5, 12345)
    return buf.getvalue()


def test_stream_round_trip_and_lengths_from_the_end_record():
    codes = np.random.default_rng(0).integers(0, 1024, (2, 4, 11))
    data = _stream(codes)
    assert data[4:6] == struct.pack("<H", 4)
    header, back = read_codes(data)
    assert np.array_equal(back, codes)
    assert (header.num_samples, header.num_frames, header.source_num_samples) == (11 * 320 - 5, 11, 12345)


def test_a_stream_cut_after_a_group_reads_what_it_holds():
    codes = np.random.default_rng(1).integers(0, 1024, (2, 4, 11))
    data = _stream(codes)
    group = 2 + 3 * 2 * 4 * 10 // 8 + 4  # count, packed codes (3 frames), CRC
    head = len(data) - 3 * group - (2 + 2 * 2 * 4 * 10 // 8 + 4) - 22  # the header's end: before 4 groups, the end
    reader = HfcReader(io.BytesIO(data[: head + 2 * group]))
    got = reader.read_all()
    assert not reader.complete and np.array_equal(got, codes[..., :6])
    with pytest.raises(TruncatedError):  # inside a group
        HfcReader(io.BytesIO(data[: head + 2 * group + 5])).read_all()
    broken = bytearray(data)
    broken[-10] ^= 1  # the end record
    with pytest.raises(ChecksumError):
        read_codes(bytes(broken))




def test_a_flipped_bit_in_a_stream_group_is_caught_by_its_checksum():
    """A v4 stream's groups (frame count, packed codes, chained CRC): every 10-bit value is a valid code,
    so a flipped payload bit or CRC bit is only caught by the group's checksum."""
    codes = np.random.default_rng(3).integers(0, 1024, (2, 4, 11))
    data = _stream(codes)
    group = 2 + 3 * 2 * 4 * 10 // 8 + 4  # count, packed codes (3 frames), CRC
    first = len(data) - 3 * group - (2 + 2 * 2 * 4 * 10 // 8 + 4) - 22  # where the first group starts
    for offset in (first + 2, first + group - 5, first + group - 1, first + 2 * group + 7):
        broken = bytearray(data)
        broken[offset] ^= 0x04
        with pytest.raises(ChecksumError, match="frame group"):
            read_codes(bytes(broken))

def test_every_byte_of_the_end_record_is_covered_by_its_checksum():
    """The end record (frame count 0, samples, source samples, chained CRC): a flipped bit in the source
    length or in the CRC itself breaks no other rule, so only the checksum can catch it."""
    codes = np.random.default_rng(2).integers(0, 1024, (2, 4, 7))
    data = _stream(codes)
    assert read_codes(data)[0].source_num_samples == 12345
    for offset in range(len(data) - 20, len(data)):  # the two lengths and the CRC (not the 0 count)
        broken = bytearray(data)
        broken[offset] ^= 0x10
        with pytest.raises(ChecksumError, match="end record"):
            read_codes(bytes(broken))

def test_unknown_lengths_only_in_version_4():
    from hificodec.bitstream import UNKNOWN_LENGTH

    with pytest.raises(FormatError):
        make_header(num_samples=UNKNOWN_LENGTH).validate()
    assert FORMAT_VERSION == 4
