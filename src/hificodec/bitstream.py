"""The `.hfc` bitstream: codec codes in a versioned, checksummed, bit-packed binary file.

Layout (all integers little-endian; full description in docs/format.md):

    magic           4 bytes   b"\\x89HFC"
    version         u16       1; 2 when the header holds channel_coding (stereo coded as mid/side);
                              3 when it also holds payload_coding (entropy-coded frame groups)
    header_size     u16       size H of the header body that follows
    header body     H bytes   fixed fields (HEADER_STRUCT) + model name + model hash
                              (+ u16 channel_coding in versions 2-3)
                              (+ u16 payload_coding + the entropy tables' id in version 3)
    header_crc      u32       zlib.crc32 of every byte before it (magic .. header body)
    frame groups    ...       ceil(num_frames / group_frames) groups; group g holds frames
                              [g * group_frames, min((g + 1) * group_frames, num_frames)) of every
                              channel as codes[channel, codebook, frame] in C order, each code packed
                              MSB-first into `bits` = max(1, ceil(log2(codebook_size))) bits, the
                              group zero-padded to a whole byte, then a u32 CRC chained from the
                              previous CRC: crc_g = zlib.crc32(group_bytes, crc_{g-1}), crc_{-1} =
                              header_crc (so reordered, dropped or spliced groups are caught too).
                              Entropy-coded groups (payload_coding 1) are a u32 byte length L, then
                              L bytes of range-coder words (`hificodec.entropy`), then the chained CRC
                              over the length and the words.

Groups let the writer and the reader work with one group in memory at a time (`HfcWriter`,
`HfcReader`); `write_codes` / `read_codes` are the whole-array conveniences.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import BinaryIO, Protocol

import numpy as np

from .errors import HificodecError

MAGIC = b"\x89HFC"
#: the newest version; a file is written in the oldest version that holds the fields it needs
FORMAT_VERSION = 4
READ_VERSIONS = (1, 2, 3, 4)
#: version 4, an unterminated stream (written as audio arrives): the lengths in its header are this value,
#: every group starts with its frame count, and an end record gives the lengths (docs/format.md)
UNKNOWN_LENGTH = (1 << 64) - 1
#: an unterminated stream's group prefix: u16 frames (0 marks the end record: u64 num_samples, u64
#: source_num_samples)
_STREAM_END = struct.Struct("<HQQ")
#: channel_coding values (version 2): how the coded channels map to the output channels
INDEPENDENT, MID_SIDE = 0, 1
CHANNEL_CODINGS = {INDEPENDENT: "independent", MID_SIDE: "mid/side"}
#: payload_coding values (version 3): how a frame group's codes are stored
PACKED, ENTROPY = 0, 1
PAYLOAD_CODINGS = {PACKED: "packed", ENTROPY: "entropy-coded"}
#: an entropy-coded group decodes to at most this many codes (bounds the decoder's memory per group)
MAX_ENTROPY_GROUP_CODES = 1 << 20
#: frames per group unless the writer is told otherwise (about 2-4 s of audio at 50-75 Hz)
DEFAULT_GROUP_FRAMES = 256

# sample_rate, hop_length, source_sample_rate, num_samples, source_num_samples, num_frames,
# channels, num_codebooks, codebook_size, group_frames
HEADER_STRUCT = struct.Struct("<IIIQQQHHII")
_PREFIX = struct.Struct("<4sHH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

# Sanity limits: a corrupt header must never make the reader allocate gigabytes.
MAX_GROUP_BYTES = 64 * 1024 * 1024
MAX_TEXT_BYTES = 1024
#: the largest header body: the fixed fields, three texts with their u16 lengths, two u16 codings
MAX_HEADER_BYTES = HEADER_STRUCT.size + 3 * (2 + MAX_TEXT_BYTES) + 4


class FormatError(HificodecError):
    """A .hfc file (or byte string) is not a valid bitstream."""


class BadMagicError(FormatError):
    """The data does not start with the .hfc magic bytes."""


class UnsupportedVersionError(FormatError):
    """The file was written by a different version of the format."""


class TruncatedError(FormatError):
    """The data ends before the header says it should."""


class ChecksumError(FormatError):
    """A CRC32 does not match: the file is corrupt."""


class ModelMismatchError(FormatError):
    """The file was made by a different model (name or weights) than the one decoding it."""


class EntropyTablesError(ModelMismatchError):
    """The file is entropy-coded with tables the reader was not given."""


class GroupCoder(Protocol):
    """What entropy-codes a frame group (`hificodec.entropy.EntropyTables`)."""

    @property
    def id(self) -> str: ...

    def encode(self, codes: np.ndarray) -> bytes: ...

    def decode(self, data: bytes, channels: int, frames: int, codebooks: int | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class HfcHeader:
    """Everything needed to decode a .hfc file besides the model weights.

    sample_rate / num_samples:               the model's rate and the coded length at that rate
    source_sample_rate / source_num_samples: the input's rate and length (decode restores them)
    """

    model_name: str
    model_hash: str
    sample_rate: int
    hop_length: int
    num_samples: int
    num_frames: int
    channels: int
    num_codebooks: int
    codebook_size: int
    source_sample_rate: int
    source_num_samples: int
    group_frames: int = DEFAULT_GROUP_FRAMES
    channel_coding: int = INDEPENDENT  # MID_SIDE: channel 0 codes (L+R)/2 and channel 1 (L-R)/2
    payload_coding: int = PACKED  # ENTROPY: groups coded with the entropy tables `entropy_id`
    entropy_id: str = ""

    @property
    def unterminated(self) -> bool:
        """An unterminated stream (version 4): its length is given at its end, if it has one."""
        return self.num_samples == UNKNOWN_LENGTH

    @property
    def version(self) -> int:
        """The format version this header is written as: the oldest that holds its fields."""
        if self.unterminated:
            return 4
        if self.payload_coding != PACKED:
            return 3
        return 1 if self.channel_coding == INDEPENDENT else 2

    @property
    def bits_per_code(self) -> int:
        return max(1, (self.codebook_size - 1).bit_length())

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.num_samples / self.sample_rate

    @property
    def num_groups(self) -> int:
        return -(-self.num_frames // self.group_frames)

    @property
    def payload_bits(self) -> int:
        """Bits of code payload (no header, padding or CRCs)."""
        return self.num_frames * self.channels * self.num_codebooks * self.bits_per_code

    @property
    def bitrate(self) -> float:
        """Payload bits per second of audio (all channels)."""
        return self.payload_bits / self.duration if self.num_samples else 0.0

    @property
    def nominal_bitrate(self) -> float:
        """The codec's bits per second per channel: frame rate x codebooks x bits per code."""
        return self.sample_rate / self.hop_length * self.num_codebooks * self.bits_per_code

    def group_size(self, group: int) -> int:
        """Frames in group `group`."""
        return min(self.group_frames, self.num_frames - group * self.group_frames)

    def group_codes(self, frames: int) -> int:
        return frames * self.channels * self.num_codebooks

    def group_bytes(self, frames: int) -> int:
        """Bytes of a packed group of `frames` frames (entropy-coded groups state their own length)."""
        return -(-self.group_codes(frames) * self.bits_per_code // 8)

    def validate(self) -> HfcHeader:
        """Raise FormatError if the fields are inconsistent; return self."""
        lengths = (self.num_samples, self.num_frames, self.source_num_samples)
        if self.unterminated and lengths != (UNKNOWN_LENGTH,) * 3:
            raise FormatError("invalid header: an unterminated stream's lengths must all be unknown")
        checks = [
            (self.sample_rate > 0 and self.source_sample_rate > 0, "sample rates must be positive"),
            (self.hop_length > 0, "hop length must be positive"),
            (self.channels > 0, "channel count must be positive"),
            (self.num_codebooks > 0, "codebook count must be positive"),
            (self.codebook_size > 1, "codebook size must be at least 2"),
            (self.group_frames > 0, "group size must be positive"),
            (self.num_samples > 0 and self.source_num_samples > 0, "the audio length must be positive"),
            (
                self.unterminated or self.num_frames == -(-self.num_samples // self.hop_length),
                f"frame count {self.num_frames} does not match {self.num_samples} samples "
                f"at hop {self.hop_length}",
            ),
            (self.group_bytes(self.group_frames) <= MAX_GROUP_BYTES, "frame groups are implausibly large"),
            (self.channel_coding in CHANNEL_CODINGS, f"unknown channel coding {self.channel_coding}"),
            (self.channel_coding != MID_SIDE or self.channels == 2, "mid/side coding needs exactly 2 channels"),
            (self.payload_coding in PAYLOAD_CODINGS, f"unknown payload coding {self.payload_coding}"),
            (self.payload_coding != ENTROPY or bool(self.entropy_id), "entropy-coded groups need their tables' id"),
            (self.payload_coding == ENTROPY or not self.entropy_id, "entropy tables named without entropy coding"),
            (self.payload_coding != ENTROPY or self.group_codes(self.group_frames) <= MAX_ENTROPY_GROUP_CODES,
             "entropy-coded frame groups are implausibly large"),
        ]
        for ok, msg in checks:
            if not ok:
                raise FormatError(f"invalid header: {msg}")
        return self

    # ---- serialisation --------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Magic, version, header and header CRC."""
        name, digest = self.model_name.encode("utf-8"), self.model_hash.encode("ascii")
        tables = self.entropy_id.encode("ascii")
        if max(len(name), len(digest), len(tables)) > MAX_TEXT_BYTES:
            raise FormatError("model name, model hash or entropy id too long for the header")
        fixed = HEADER_STRUCT.pack(
            self.sample_rate, self.hop_length, self.source_sample_rate, self.num_samples,
            self.source_num_samples, self.num_frames, self.channels, self.num_codebooks,
            self.codebook_size, self.group_frames,
        )
        body = fixed + _U16.pack(len(name)) + name + _U16.pack(len(digest)) + digest
        if self.version >= 2:
            body += _U16.pack(self.channel_coding)
        if self.version >= 3:
            body += _U16.pack(self.payload_coding) + _U16.pack(len(tables)) + tables
        head = _PREFIX.pack(MAGIC, self.version, len(body)) + body
        return head + _U32.pack(zlib.crc32(head))

    @classmethod
    def read_from(cls, f: BinaryIO) -> tuple[HfcHeader, int]:
        """Parse and check the header at the current position; return (header, header_crc)."""
        prefix = f.read(_PREFIX.size)
        if not prefix:  # said apart from a cut header: nothing at all was written (an empty pipe, say)
            raise TruncatedError("truncated .hfc file: it is empty (no header)")
        if len(prefix) >= 4 and prefix[:4] != MAGIC:
            raise BadMagicError("not a .hfc file (wrong magic bytes)")
        if len(prefix) < _PREFIX.size:
            raise TruncatedError("truncated .hfc file: it ends inside the header")
        _, version, size = _PREFIX.unpack(prefix)
        if version not in READ_VERSIONS:
            raise UnsupportedVersionError(
                f"unsupported .hfc format version {version} (this hificodec reads versions "
                f"{', '.join(map(str, READ_VERSIONS))})"
            )
        if size > MAX_HEADER_BYTES:
            raise FormatError(f"corrupt .hfc file: the header's length field states {size} bytes, more than a "
                              f"header holds (at most {MAX_HEADER_BYTES})")  # fmt: skip
        rest = f.read(size + 4)
        if len(rest) < size + 4:
            raise _length_error("the header", size, rest, lambda n: zlib.crc32(_PREFIX.pack(MAGIC, version, n)))
        body, crc_bytes = rest[:size], rest[size:]
        crc = zlib.crc32(prefix + body)
        if _U32.unpack(crc_bytes)[0] != crc:
            raise ChecksumError("corrupt .hfc file: header checksum mismatch")
        return cls._parse_body(body, version), crc

    @classmethod
    def _parse_body(cls, body: bytes, version: int = 1) -> HfcHeader:
        try:
            fields = HEADER_STRUCT.unpack_from(body, 0)
            pos = HEADER_STRUCT.size
            texts = []
            for _ in range(2):
                (n,) = _U16.unpack_from(body, pos)
                raw = body[pos + 2 : pos + 2 + n]
                if len(raw) != n:
                    raise FormatError("invalid header: text field runs past the header")
                texts.append(raw.decode("utf-8"))
                pos += 2 + n
            coding, payload, entropy_id = INDEPENDENT, PACKED, ""
            if version >= 2:
                (coding,) = _U16.unpack_from(body, pos)
                pos += 2
            if version >= 3:
                (payload, n) = struct.unpack_from("<HH", body, pos)
                raw = body[pos + 4 : pos + 4 + n]
                if len(raw) != n:
                    raise FormatError("invalid header: text field runs past the header")
                entropy_id = raw.decode("ascii")
                pos += 4 + n
        except (struct.error, UnicodeDecodeError) as e:
            raise FormatError(f"invalid header ({e})") from None
        if version == 3 and payload == PACKED:
            raise FormatError("invalid header: a version-3 file must have entropy-coded groups")
        if pos != len(body):
            raise FormatError("invalid header: unexpected bytes at its end")
        (sr, hop, src_sr, n, src_n, frames, ch, n_q, cb, group) = fields
        if (version == 4) != (n == UNKNOWN_LENGTH):
            raise FormatError("invalid header: only a version-4 file (an unterminated stream) has an unknown length")
        return cls(
            model_name=texts[0], model_hash=texts[1], sample_rate=sr, hop_length=hop, num_samples=n,
            num_frames=frames, channels=ch, num_codebooks=n_q, codebook_size=cb, source_sample_rate=src_sr,
            source_num_samples=src_n, group_frames=group, channel_coding=coding, payload_coding=payload,
            entropy_id=entropy_id,
        ).validate()


# ---- bit packing -----------------------------------------------------------------------------
def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers (< 2**bits) MSB-first into bytes, zero-padded to a whole byte."""
    flat = np.ascontiguousarray(codes, dtype=np.uint64).reshape(-1)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    bit_matrix = ((flat[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bit_matrix.reshape(-1)).tobytes()


def unpack_codes(data: bytes, count: int, bits: int) -> np.ndarray:
    """Inverse of `pack_codes`: the first `count` codes as int64. Raises FormatError on bad padding."""
    bit_array = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bit_array[count * bits :].any():
        raise FormatError("corrupt .hfc file: non-zero padding bits")
    bit_matrix = bit_array[: count * bits].reshape(count, bits).astype(np.int64)
    weights = np.left_shift(np.int64(1), np.arange(bits - 1, -1, -1, dtype=np.int64))
    return bit_matrix @ weights


# ---- streaming writer / reader ---------------------------------------------------------------
def _checked_codes(h: HfcHeader, codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 3 or codes.shape[:2] != (h.channels, h.num_codebooks):
        raise FormatError(
            f"codes must be shaped [channels={h.channels}, codebooks={h.num_codebooks}, frames], "
            f"got {list(codes.shape)}"
        )
    if codes.size and (codes.min() < 0 or codes.max() >= h.codebook_size):
        raise FormatError(f"codes must lie in [0, {h.codebook_size})")
    return codes


class _GroupWriter:
    """Frames written so far wait in `_pending` until a group is full; `_take_group` codes one."""

    header: HfcHeader
    entropy: GroupCoder | None
    _pending: list[np.ndarray]
    _pending_frames: int
    #: bytes of coded codes written so far (no header, group lengths or checksums), as `HfcReader` counts
    payload_bytes: int = 0

    def _take_group(self, frames: int) -> bytes:
        """The payload of the next `frames` pending frames (entropy-coded with its length, or packed)."""
        buf = np.concatenate(self._pending, axis=2) if len(self._pending) > 1 else self._pending[0]
        group, rest = buf[:, :, :frames], buf[:, :, frames:]
        self._pending = [rest] if rest.shape[2] else []
        self._pending_frames -= frames
        if self.entropy is not None:
            coded = self.entropy.encode(group)
            self.payload_bytes += len(coded)
            return _U32.pack(len(coded)) + coded
        packed = pack_codes(group, self.header.bits_per_code)
        self.payload_bytes += len(packed)
        return packed


class HfcWriter(_GroupWriter):
    """Write a .hfc stream group by group: `write(codes[channels, n_q, frames])` any number of times
    (frames in any split), then `close()`, which checks that exactly `header.num_frames` were written."""

    def __init__(self, f: BinaryIO, header: HfcHeader, entropy: GroupCoder | None = None):
        self.f = f
        self.header = header.validate()
        self.entropy = _coder_for(header, entropy)
        head = header.to_bytes()
        self.f.write(head)
        self._crc = _U32.unpack(head[-4:])[0]
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self.frames_written = 0
        self.bytes_written = len(head)

    def write(self, codes: np.ndarray) -> None:
        h = self.header
        codes = _checked_codes(h, codes)
        if self.frames_written + self._pending_frames + codes.shape[2] > h.num_frames:
            raise FormatError(f"more frames written than the header's {h.num_frames}")
        self._pending.append(codes)
        self._pending_frames += codes.shape[2]
        while self._pending_frames >= h.group_frames:
            self._flush(h.group_frames)

    def _flush(self, frames: int) -> None:
        data = self._take_group(frames)
        self._crc = zlib.crc32(data, self._crc)
        self.f.write(data)
        self.f.write(_U32.pack(self._crc))
        self.frames_written += frames
        self.bytes_written += len(data) + 4

    def close(self) -> None:
        if self._pending_frames:
            self._flush(self._pending_frames)
        if self.frames_written != self.header.num_frames:
            raise FormatError(f"wrote {self.frames_written} frames, the header says {self.header.num_frames}")


class HfcReader:
    """Read a .hfc stream: the header on construction, then `groups()` yields verified
    codes[channels, n_q, frames] (int64) one group at a time; the end of data is checked too."""

    def __init__(self, f: BinaryIO, entropy: GroupCoder | None = None):
        self.f = f
        self.header, self._crc = HfcHeader.read_from(f)
        self.entropy: GroupCoder | None = None
        self.payload_bytes = 0
        #: an unterminated stream: frames read so far, whether its end record came, the header it completes
        self.frames_read = 0
        self.complete = not self.header.unterminated
        self.end_header: HfcHeader | None = None if self.header.unterminated else self.header
        if entropy is not None:
            self.use_entropy(entropy)

    def use_entropy(self, entropy: GroupCoder | None) -> None:
        """The tables an entropy-coded file's groups decode with (checked against the header's id)."""
        self.entropy = _coder_for(self.header, entropy)

    def checked_groups(self) -> Iterator[tuple[int, int, bytes]]:
        """(group index, frames, payload bytes) of each group, its checksum verified, without decoding
        the codes; the end of data is checked too. `payload_bytes` adds up what the codes cost."""
        h = self.header
        self.payload_bytes = 0
        if h.unterminated:
            yield from self._stream_groups()
            return
        crc = self._crc
        for g in range(h.num_groups):
            frames = h.group_size(g)
            where = f"frame group {g + 1} of {h.num_groups}"
            if h.payload_coding == ENTROPY:
                prefix = _read_exact(self.f, 4, where)
                (length,) = _U32.unpack(prefix)
                data, stored = self._stated_group(where, b"", length, frames, crc)
            else:
                data = _read_exact(self.f, h.group_bytes(frames), where)
                stored = _U32.unpack(_read_exact(self.f, 4, where))[0]
            crc = zlib.crc32(data, crc)
            if stored != crc:
                raise ChecksumError(f"corrupt .hfc file: checksum mismatch in frame group {g + 1}")
            payload = data[4:] if h.payload_coding == ENTROPY else data
            self.payload_bytes += len(payload)
            yield g, frames, payload
        if self.f.read(1):
            raise FormatError("corrupt .hfc file: unexpected data after the last frame group")

    def _stream_groups(self) -> Iterator[tuple[int, int, bytes]]:
        """An unterminated stream's groups: each prefixed with its frame count, up to the end record
        (`complete`, `end_header`) or to the end of the data at a group boundary (a stream cut short:
        `complete` stays False); ending inside a group raises TruncatedError."""
        h = self.header
        crc = self._crc
        self.frames_read = 0
        g = 0
        while True:
            prefix = self.f.read(2)
            if not prefix:
                return  # cut at a group boundary: what came is valid
            where = f"frame group {g + 1}"
            if len(prefix) < 2:
                raise TruncatedError(f"truncated .hfc stream: it ends inside {where}")
            (frames,) = _U16.unpack(prefix)
            if frames == 0:
                data = prefix + _read_exact(self.f, _STREAM_END.size - 2, "the end record")
                stored = _U32.unpack(_read_exact(self.f, 4, "the end record"))[0]
                if zlib.crc32(data, crc) != stored:
                    raise ChecksumError("corrupt .hfc stream: checksum mismatch in the end record")
                _, n, src_n = _STREAM_END.unpack(data)
                end = replace(h, num_samples=n, num_frames=self.frames_read, source_num_samples=src_n)
                if n == 0 or src_n == 0 or self.frames_read != -(-n // h.hop_length):
                    raise FormatError(
                        f"corrupt .hfc stream: the end record says {n} samples, the stream holds "
                        f"{self.frames_read} frames"
                    )
                if self.f.read(1):
                    raise FormatError("corrupt .hfc stream: unexpected data after the end record")
                self.end_header = end
                self.complete = True
                return
            if frames > h.group_frames:
                raise FormatError(f"corrupt .hfc stream: {where} claims {frames} frames (groups hold {h.group_frames})")
            if h.payload_coding == ENTROPY:
                (length,) = _U32.unpack(_read_exact(self.f, 4, where))
                data, stored = self._stated_group(where, prefix, length, frames, crc)
                payload = data[len(prefix) + 4 :]
            else:
                payload = _read_exact(self.f, h.group_bytes(frames), where)
                data = prefix + payload
                stored = _U32.unpack(_read_exact(self.f, 4, where))[0]
            crc = zlib.crc32(data, crc)
            if stored != crc:
                raise ChecksumError(f"corrupt .hfc stream: checksum mismatch in {where}")
            self.payload_bytes += len(payload)
            self.frames_read += frames
            yield g, frames, payload
            g += 1

    def _stated_group(self, where: str, head: bytes, length: int, frames: int, crc: int) -> tuple[bytes, int]:
        """An entropy-coded group whose length field (after `head`: a stream group's frame count) states
        `length` bytes: (head + length field + coded bytes, the stored CRC). A length no group of `frames`
        frames can have, or one that runs past the end of the data, is reported as what it is."""
        most = max_entropy_group_bytes(self.header.group_codes(frames))
        if length > most:
            raise FormatError(f"corrupt .hfc file: the length field of {where} states {length} bytes, more than "
                              f"{frames} frames can take (at most {most})")  # fmt: skip
        rest = self.f.read(length + 4)
        if len(rest) < length + 4:
            raise _length_error(where, length, rest, lambda n: zlib.crc32(head + _U32.pack(n), crc))
        return head + _U32.pack(length) + rest[:length], _U32.unpack(rest[length:])[0]

    def groups(self) -> Iterator[np.ndarray]:
        """Verified codes[channels, n_q, frames] (int64), one group at a time."""
        h = self.header
        if h.payload_coding == ENTROPY and self.entropy is None:
            self.use_entropy(None)  # raises: the file needs its tables
        for g, frames, data in self.checked_groups():
            if self.entropy is not None:
                try:
                    codes = self.entropy.decode(data, h.channels, frames, h.num_codebooks).reshape(-1)
                except HificodecError as e:
                    raise FormatError(f"corrupt .hfc file: frame group {g + 1}: {e}") from None
            else:
                codes = unpack_codes(data, h.group_codes(frames), h.bits_per_code)
            if codes.size and codes.max() >= h.codebook_size:
                raise FormatError(f"corrupt .hfc file: code out of range in frame group {g + 1}")
            yield codes.reshape(h.channels, h.num_codebooks, frames)

    def read_all(self) -> np.ndarray:
        h = self.header
        if h.unterminated:
            parts = list(self.groups())
            if not parts:
                return np.empty((h.channels, h.num_codebooks, 0), dtype=np.int64)
            return np.concatenate(parts, axis=2)
        out = np.empty((h.channels, h.num_codebooks, h.num_frames), dtype=np.int64)
        pos = 0
        for codes in self.groups():
            out[:, :, pos : pos + codes.shape[2]] = codes
            pos += codes.shape[2]
        return out


class HfcStreamWriter(_GroupWriter):
    """Write an unterminated stream (version 4) as codes arrive: `write(codes[channels, n_q, frames])`
    writes every complete group (and flushes the file), `close(num_samples, source_num_samples)` the
    last, shorter group and the end record. A reader accepts the stream cut after any complete group."""

    def __init__(self, f: BinaryIO, header: HfcHeader, entropy: GroupCoder | None = None):
        unknown = UNKNOWN_LENGTH
        self.header = replace(header, num_samples=unknown, num_frames=unknown, source_num_samples=unknown).validate()
        self.entropy = _coder_for(self.header, entropy)
        self.f = f
        head = self.header.to_bytes()
        self._write(head)
        self._crc = _U32.unpack(head[-4:])[0]
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self.frames_written = 0
        self.bytes_written = len(head)
        self.closed = False

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        flush = getattr(self.f, "flush", None)
        if flush is not None:
            flush()

    def write(self, codes: np.ndarray) -> None:
        h = self.header
        codes = _checked_codes(h, codes)
        if codes.shape[2]:
            self._pending.append(codes)
            self._pending_frames += codes.shape[2]
        while self._pending_frames >= h.group_frames:
            self._group(h.group_frames)

    def _group(self, frames: int) -> None:
        data = _U16.pack(frames) + self._take_group(frames)
        self._crc = zlib.crc32(data, self._crc)
        self._write(data + _U32.pack(self._crc))
        self.frames_written += frames
        self.bytes_written += len(data) + 4

    def close(self, num_samples: int, source_num_samples: int) -> None:
        """The last group and the end record: the stream's length at the model's rate and the source's."""
        if self._pending_frames:
            self._group(self._pending_frames)
        if self.frames_written != -(-num_samples // self.header.hop_length) or num_samples <= 0:
            raise FormatError(f"wrote {self.frames_written} frames, not the {num_samples} samples given")
        data = _STREAM_END.pack(0, num_samples, source_num_samples)
        self._crc = zlib.crc32(data, self._crc)
        self._write(data + _U32.pack(self._crc))
        self.bytes_written += len(data) + 4
        self.closed = True


def _coder_for(header: HfcHeader, entropy: GroupCoder | None) -> GroupCoder | None:
    """The entropy coder for `header`'s groups (None for packed groups), checked against the header."""
    if header.payload_coding != ENTROPY:
        return None
    if entropy is None:
        raise EntropyTablesError(
            f"the codes are entropy-coded with tables {header.entropy_id}, and no entropy tables are at hand"
        )
    if entropy.id != header.entropy_id:
        raise EntropyTablesError(
            f"the codes are entropy-coded with tables {header.entropy_id}, not with tables {entropy.id}"
        )
    return entropy


# ---- whole-array conveniences ----------------------------------------------------------------
def write_codes(codes: np.ndarray, header: HfcHeader, entropy: GroupCoder | None = None) -> bytes:
    """codes [channels, n_q, frames] -> .hfc bytes. The header's frame count is taken from `codes`."""
    header = replace(header, num_frames=int(np.asarray(codes).shape[-1]))
    buf = io.BytesIO()
    writer = HfcWriter(buf, header, entropy)
    writer.write(codes)
    writer.close()
    return buf.getvalue()


def read_codes(data: bytes, entropy: GroupCoder | None = None) -> tuple[HfcHeader, np.ndarray]:
    """.hfc bytes -> (header, codes [channels, n_q, frames] int64); raises FormatError subclasses. For an
    unterminated stream (version 4) the header its end record completes, or the unknown-length one when
    the stream was cut short."""
    reader = HfcReader(io.BytesIO(data), entropy)
    codes = reader.read_all()
    return reader.end_header or reader.header, codes


def read_header(path: str | os.PathLike) -> HfcHeader:
    """Header of a .hfc file (checked) without reading the codes."""
    with naming_file(path), open_hfc(path) as f:
        return HfcHeader.read_from(f)[0]


@contextmanager
def naming_file(
    path: str | os.PathLike, kinds: tuple[type[HificodecError], ...] = (FormatError,)
) -> Iterator[None]:
    """Prefix the messages of errors of `kinds` (FormatErrors: what is wrong with a file) raised inside
    with the file's name (several files may be read in one command, and the reader itself only sees a
    stream)."""
    try:
        yield
    except kinds as e:
        raise type(e)(f"{os.fspath(path)}: {e}") from None


def open_hfc(path: str | os.PathLike) -> BinaryIO:
    """Open a .hfc file for reading, with clear errors for a missing file or a folder."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise HificodecError(f"{p}: no such file")
    if os.path.isdir(p):
        raise HificodecError(f"{p}: is a directory, expected a .hfc file")
    try:
        return open(p, "rb")
    except OSError as e:
        raise HificodecError(f"{p}: cannot open ({e.strerror})") from None


def max_entropy_group_bytes(codes: int) -> int:
    """The most bytes an entropy-coded group of `codes` codes takes: the range coder spends at most 24
    bits on a code (its probabilities are quantised to 24 bits, none to zero) plus two 32-bit words
    when it flushes; 4 bytes a code and 16 more leave a margin."""
    return 4 * codes + 16


def _length_error(where: str, stated: int, rest: bytes, crc_of_head: Callable[[int], int]) -> FormatError:
    """A length field states more bytes than the data holds after it: the data was cut short, or the
    field is corrupt. `crc_of_head(n)` is the chained CRC up to and including the field had it said n:
    when the stored CRC after n of the bytes that follow matches it, the field is what is wrong (the
    checksum covers the field), and the message says so rather than blaming a cut."""
    for n in range(max(0, len(rest) - 3)):
        if zlib.crc32(rest[:n], crc_of_head(n)) == _U32.unpack_from(rest, n)[0]:
            return FormatError(
                f"corrupt .hfc file: the length field of {where} states {stated} bytes, but the file holds "
                f"{len(rest)} after it and the checksum fits a length of {n}: the field is corrupt, the file is "
                "not cut short"
            )
    return TruncatedError(
        f"truncated .hfc file: {where} states {stated} bytes, but the file ends {len(rest)} bytes after its length "
        "field (cut short, or the length field is corrupt)"
    )


def _read_exact(f: BinaryIO, n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise TruncatedError(f"truncated .hfc file: it ends inside {where}")
    return data
