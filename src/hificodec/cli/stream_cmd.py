"""`hificodec stream encode | decode | demo`: code audio as it arrives (models.streaming), through pipes.

    arecord -f S16_LE -r 16000 -c 1 | hificodec stream encode - | hificodec stream decode - -o out.wav

`encode` reads raw PCM (s16le, --rate/--channels) or WAV (detected by its RIFF header; a streamed WAV
may state no length) and writes an unterminated .hfc stream (format version 4) group by group as frames
complete; `decode` reads one and writes audio as it comes. A stream cut short still decodes to what it
holds, with an error message and exit status 1. Outputs to files are written under a temp name and
renamed into place at the end (kept when a cut input still gave something, never empty); `decode`
writes the format the output's extension names (WAV as it grows, raw PCM, or anything soundfile writes
block by block: FLAC, Ogg, MP3 ...), as `hificodec decode` does.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import os
import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..bitstream import MID_SIDE, FormatError, HfcReader, HfcStreamWriter, naming_file
from ..compress import (
    NAMED_ERRORS,
    Resampler,
    check_not_input,
    check_output_path,
    from_coded_channels,
    output_format,
    reading,
    resolve,
)
from ..errors import AudioError, HificodecError, HificodecWarning, UsageError
from ..files import atomic_output
from ..models.base import CodecModel
from .codec_cmd import _add_entropy_args, _add_model_args, _entropy_choice, load_model
from .numbers import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, add_threads_arg, group_frames, positive_int, sample_rate

#: bytes read from the input per step (smaller reads give codes sooner; a read returns what has arrived)
READ_BYTES = 4096
#: frames per .hfc group in a stream: each group costs a 2-byte count and a 4-byte CRC (entropy-coded: 4 more)
DEFAULT_STREAM_GROUP = 5
_WAV_FORMATS = {1: "pcm", 3: "float", 0xFFFE: "extensible"}


# ---- input ---------------------------------------------------------------------------------------
def _open_in(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    if not os.path.isfile(path):
        raise HificodecError(f"{path}: no such file")
    return open(path, "rb")


def _read_some(f: BinaryIO, n: int) -> bytes:
    """What has arrived, up to n bytes (b"" at the end): a pipe's data is used as it comes."""
    read1 = getattr(f, "read1", None)
    return read1(n) if read1 is not None else f.read(n)


def _read_exactly(f: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = _read_some(f, n - len(out))
        if not data:
            break
        out += data
    return out


#: leading bytes of compressed formats that would otherwise be read as raw PCM (noise codes)
COMPRESSED_MAGIC = (b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"FORM", b"\x1aE\xdf\xa3")
MIN_RATE, MAX_RATE = MIN_SAMPLE_RATE, MAX_SAMPLE_RATE


class PcmSource:
    """Float32 mono blocks from raw s16le PCM or a WAV stream (PCM 16/24/32-bit or float32).

    `rate` and `channels` describe raw PCM (default: `default_rate`, one channel). A WAV states its own;
    given ones that differ are refused rather than ignored (the user expected them to apply)."""

    def __init__(self, f: BinaryIO, rate: int | None, channels: int | None, default_rate: int) -> None:
        self.f = f
        self.rate, self.channels = rate or default_rate, channels or 1
        self.width, self.kind = 2, "pcm"
        self.remaining: int | None = None  # data bytes left when the WAV states its length
        self.stated = 0
        self.pending = b""
        head = _read_exactly(f, 4)
        if head == b"RIFF":
            self._wav_header()
            given = [f"--{name} {value}" for name, value, stated in (("rate", rate, self.rate),
                     ("channels", channels, self.channels)) if value is not None and value != stated]  # fmt: skip
            if given:
                raise UsageError(f"the input is a WAV stream of {self.rate} Hz with {self.channels} channel(s), "
                                 f"not {' and '.join(given)}: --rate and --channels describe raw PCM input; "
                                 "drop them for a WAV")  # fmt: skip
        elif head == b"RIFX":
            raise AudioError("the input is a big-endian WAV (RIFX), which is not supported: convert it to a "
                             "little-endian WAV first, e.g. `ffmpeg -i IN -f wav -`")  # fmt: skip
        elif any(head.startswith(magic) for magic in COMPRESSED_MAGIC):
            raise AudioError(
                "the input is compressed audio (FLAC, Ogg, MP3 ...), not raw PCM or WAV: convert it first, e.g. "
                "`ffmpeg -i IN -f wav - | hificodec stream encode -`, or use `hificodec encode` for files"
            )
        else:
            self.pending = head

    def _wav_header(self) -> None:
        rest = _read_exactly(self.f, 8)
        if len(rest) < 8 or rest[4:] != b"WAVE":
            raise AudioError("the input starts with RIFF but is not a WAV stream")
        fmt_seen = False
        while True:
            chunk = _read_exactly(self.f, 8)
            if len(chunk) < 8:
                raise AudioError("the WAV stream ends before its data chunk")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = _read_exactly(self.f, size + (size & 1))
                if size < 16:
                    raise AudioError(f"the WAV stream's fmt chunk is {size} bytes, shorter than the 16 it needs")
                if len(body) < 16:
                    raise AudioError(f"the WAV stream ends inside its fmt chunk ({len(body)} of its {size} bytes)")
                tag, channels, rate, _, align, bits = struct.unpack("<HHIIHH", body[:16])
                if channels < 1 or not MIN_RATE <= rate <= MAX_RATE:
                    raise AudioError(f"the WAV stream states {channels} channel(s) at {rate} Hz: need at least one "
                                     f"channel and a rate between {MIN_RATE} and {MAX_RATE} Hz")  # fmt: skip
                if tag == 0xFFFE and len(body) >= 26:
                    tag = struct.unpack("<H", body[24:26])[0]
                if (tag, bits) not in ((1, 16), (1, 24), (1, 32), (3, 32)):
                    raise AudioError(f"unsupported WAV sample format (format tag {tag}, {bits} bits): "
                                     "use 16/24/32-bit PCM or 32-bit float")  # fmt: skip
                if align != channels * bits // 8:
                    raise AudioError(f"the WAV stream's block align is {align} bytes, but {channels} channel(s) of "
                                     f"{bits}-bit samples take {channels * bits // 8}")  # fmt: skip
                self.kind, self.width = ("float" if tag == 3 else "pcm"), bits // 8
                self.rate, self.channels = rate, channels
                fmt_seen = True
            elif cid == b"data":
                if not fmt_seen:
                    raise AudioError("the WAV stream has no fmt chunk before its data")
                # 0 or 0xFFFFFFFF: a streamed WAV that did not know its length: read to the end
                self.remaining = None if size in (0, 0xFFFFFFFF) else size
                self.stated = size
                return
            else:
                _read_exactly(self.f, size + (size & 1))

    def blocks(self) -> Iterator[np.ndarray]:
        """Generator of [n] float32 mono blocks as the input arrives."""
        frame = self.width * self.channels
        while True:
            want = READ_BYTES if self.remaining is None else min(READ_BYTES, self.remaining)
            chunk = _read_some(self.f, want) if want else b""
            if self.remaining is not None:
                self.remaining -= len(chunk)
            data = self.pending + chunk
            usable = len(data) - len(data) % frame
            block, self.pending = data[:usable], data[usable:]
            if block:
                yield self._decode(block)
            if not chunk or (self.remaining is not None and self.remaining <= 0):
                if not chunk and self.remaining:  # the input ended before the length its header states
                    warnings.warn(f"truncated? the WAV header states {self.stated} bytes of audio data but the "
                                  f"input ended after {self.stated - self.remaining}", HificodecWarning, stacklevel=2)
                    self.remaining = 0
                if self.pending:  # a partial sample frame at the end: not PCM of this layout
                    raise AudioError(
                        f"the input ends inside a sample frame ({len(self.pending)} of {frame} bytes): is it "
                        f"{self.width * 8}-bit PCM with {self.channels} channel(s)?"
                    )
                return

    def _decode(self, data: bytes) -> np.ndarray:
        if self.kind == "float":
            x = np.frombuffer(data, "<f4").astype(np.float32)
        elif self.width == 3:
            raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
            x = (((raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8 >> 8) / 8388608).astype(np.float32)
        else:
            dtype = "<i2" if self.width == 2 else "<i4"
            x = np.frombuffer(data, dtype).astype(np.float32) / float(1 << (8 * self.width - 1))
        x = x.reshape(-1, self.channels).mean(axis=1, dtype=np.float32) if self.channels > 1 else x
        if not np.isfinite(x).all():
            raise AudioError("the input holds NaN or infinite samples")
        return x


# ---- output --------------------------------------------------------------------------------------
class Output:
    """Where a stream command writes: standard output, or a file written under a temp name and renamed
    into place when the run ends. A run that fails keeps what it wrote when `keep()` says it holds
    something (a stream cut short is valid up to its last group: what arrived is decoded), and leaves
    no file when it holds nothing (an empty input gives an error, not a header-only file)."""

    def __init__(self, path: str, keep: Callable[[], bool]) -> None:
        self.path, self.keep = path, keep
        self._atomic: atomic_output | None = None
        self._file: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        if self.path == "-":
            if sys.stdout.isatty():
                raise HificodecError("refusing to write binary output to a terminal: use -o FILE or a pipe")
            return sys.stdout.buffer
        self._atomic = atomic_output(self.path, keep=self.keep)
        self._file = open(self._atomic.__enter__(), "w+b")  # w+: soundfile reads back what it completes
        return self._file

    def __exit__(self, *exc: object) -> None:
        if self._atomic is not None:
            assert self._file is not None
            self._file.close()
            self._atomic.__exit__(*exc)


class WavWriter:
    """16-bit PCM as it comes. The header first states the largest length (the streaming convention,
    0xFFFFFFFF); on a seekable file it is fixed up after every write, so the file is a valid WAV of what
    was written even if the writer is killed. With `raw`, no header."""

    def __init__(self, f: BinaryIO, rate: int, channels: int, raw: bool = False) -> None:
        self.f, self.rate, self.channels, self.raw = f, rate, channels, raw
        self.bytes = 0
        try:
            self.seekable = bool(f.seekable()) and f.tell() == 0
        except (OSError, ValueError):
            self.seekable = False
        if not raw:
            f.write(self._header(0xFFFFFFFF - 36))
            f.flush()

    def _header(self, data_bytes: int) -> bytes:
        block = 2 * self.channels
        riff = min(36 + data_bytes, 0xFFFFFFFF)
        fields = (riff, b"WAVE", b"fmt ", 16, 1, self.channels, self.rate, self.rate * block, block, 16, b"data")
        return b"RIFF" + struct.pack("<I4s4sIHHIIHH4sI", *fields, data_bytes)

    def write(self, audio: np.ndarray) -> None:
        """audio [channels, n] float."""
        if audio.shape[-1] == 0:
            return
        pcm = (np.clip(audio.T, -1.0, 1.0) * 32767.0).round().astype("<i2")
        self.f.write(pcm.tobytes())
        self.bytes += pcm.nbytes
        if self.seekable and not self.raw:
            self.f.seek(0)
            self.f.write(self._header(self.bytes))
            self.f.seek(0, os.SEEK_END)
        self.f.flush()

    def close(self) -> None:
        pass  # every write left a whole file

    @property
    def samples(self) -> int:
        return self.bytes // (2 * self.channels)


class SoundFileWriter:
    """Any other format soundfile writes block by block (FLAC, Ogg Vorbis, MP3 ...), into a seekable file:
    these formats complete their headers when closed."""

    def __init__(self, f: BinaryIO, rate: int, channels: int, fmt: str) -> None:
        import soundfile as sf

        self.sink = sf.SoundFile(f, "w", samplerate=rate, channels=channels, format=fmt)
        self.samples = 0

    def write(self, audio: np.ndarray) -> None:
        if audio.shape[-1]:
            self.sink.write(np.clip(audio.T, -1.0, 1.0))
            self.samples += audio.shape[-1]

    def close(self) -> None:
        self.sink.close()


#: `stream decode` formats besides soundfile's: a WAV written as it grows, headerless s16le PCM
WAV, RAW = "WAV", "RAW"


def decode_format(output: str, raw: bool) -> str:
    """What `stream decode -o OUTPUT` writes, chosen by the extension as `decode` chooses it: WAV, RAW
    (--raw, or a .raw/.pcm name) or another format soundfile can write as audio comes; anything else is
    refused before any work. Standard output gets WAV, or RAW with --raw."""
    if output == "-":
        return RAW if raw else WAV
    path = Path(output)
    if path.suffix.lower() in (".raw", ".pcm"):
        return RAW
    if raw:
        named = path.suffix.lstrip(".").upper()
        if named in _soundfile_formats():
            raise UsageError(f"{output}: --raw writes headerless PCM, but the name says {named}: drop --raw, or "
                             "name the output .raw or .pcm")  # fmt: skip
        return RAW
    fmt = output_format(path)  # the same refusal as `decode` for an extension no writer knows
    if fmt != WAV and _default_subtype(fmt) is None:
        raise HificodecError(f"{output}: cannot write {fmt} as the audio is decoded (try .wav or .flac)")
    return fmt


def _soundfile_formats() -> dict[str, str]:
    import soundfile as sf

    return sf.available_formats()


def _default_subtype(fmt: str) -> str | None:
    import soundfile as sf

    return sf.default_subtype(fmt)


class AudioOut:
    """`stream decode`'s output in `fmt` (`decode_format`): its writer is made at the first audio, so a
    stream with none writes nothing (and leaves no file)."""

    def __init__(self, path: str, fmt: str, rate: int, channels: int) -> None:
        self.fmt, self.rate, self.channels = fmt, rate, channels
        self.output = Output(path, keep=lambda: self.samples > 0)
        self.writer: WavWriter | SoundFileWriter | None = None
        self._f: BinaryIO | None = None

    def __enter__(self) -> AudioOut:
        self._f = self.output.__enter__()
        return self

    def write(self, audio: np.ndarray) -> None:
        """audio [channels, n] float."""
        if audio.shape[-1] == 0:
            return
        if self.writer is None:
            assert self._f is not None
            if self.fmt in (WAV, RAW):
                self.writer = WavWriter(self._f, self.rate, self.channels, raw=self.fmt == RAW)
            else:
                self.writer = SoundFileWriter(self._f, self.rate, self.channels, self.fmt)
        self.writer.write(audio)

    @property
    def samples(self) -> int:
        return 0 if self.writer is None else self.writer.samples

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    def __exit__(self, *exc: object) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self.output.__exit__(*exc)


# ---- encode --------------------------------------------------------------------------------------
#: groups shorter than this are packed unless --entropy names tables: the range coder's flush per group
#: costs more than it saves on a few frames (3 s of speech: 5-frame groups 2.97 kbps entropy-coded
#: against 2.81 packed; 50-frame groups 1.98 against 2.38)
ENTROPY_MIN_GROUP = 50


def _stream_header(model: CodecModel, rate: int, args: argparse.Namespace):
    choice = _entropy_choice(args)
    if args.group_frames < ENTROPY_MIN_GROUP and not args.entropy:
        choice = None
    identity = resolve(model, choice)
    tables = identity.encoding_tables()
    header = identity.header(channels=1, source_rate=rate, source_samples=rate)  # lengths: in the end record
    return replace(header, group_frames=args.group_frames), tables


def run_encode(args: argparse.Namespace) -> int:
    if args.output != "-":  # before any work, as `encode` does
        check_output_path(args.output, [args.input], args.force)
    model = load_model(args.model, args.bandwidth, args.n_q, "cpu")
    source = PcmSource(_open_in(args.input), args.rate, args.channels, default_rate=model.sample_rate)
    header, tables = _stream_header(model, source.rate, args)
    blocks = source.blocks()
    first = next(blocks, None)  # the output is opened when audio arrives: an empty input writes nothing
    if first is None:
        raise AudioError("the input holds no samples")
    writer: HfcStreamWriter | None = None
    with Output(args.output, keep=lambda: writer is not None and writer.frames_written > 0) as out:
        writer = HfcStreamWriter(out, header, tables)
        return _encode_stream(args, model, source.rate, itertools.chain([first], blocks), writer)


def _encode_stream(
    args: argparse.Namespace, model: CodecModel, rate: int, blocks: Iterator[np.ndarray], writer: HfcStreamWriter
) -> int:
    encoder = model.streaming_encoder()
    to_model_rate = Resampler(rate, model.sample_rate, channels=1)

    def resample(block: np.ndarray, last: bool = False) -> np.ndarray:
        return to_model_rate(block[None], last)[0]

    source_samples = samples = 0

    def push(x: np.ndarray) -> None:
        nonlocal samples
        if x.size:
            samples += x.size
            codes = encoder.push(torch.from_numpy(np.ascontiguousarray(x)).view(1, 1, -1))
            writer.write(codes.numpy())

    for block in blocks:
        source_samples += block.size
        push(resample(block))
    push(resample(np.zeros(0, np.float32), last=True))
    if samples == 0:
        raise AudioError("the input holds no samples")
    writer.write(encoder.flush().numpy())
    writer.close(samples, source_samples)
    if not args.quiet and args.output not in (None, "-"):
        seconds = samples / model.sample_rate
        print(f"{args.input} -> {args.output}: {seconds:.2f} s, {writer.frames_written} frames, {writer.bytes_written} "
              f"bytes = {writer.bytes_written * 8 / seconds / 1000:.3f} kbps with headers and checksums",
              file=sys.stderr)  # fmt: skip
    return 0


# ---- decode --------------------------------------------------------------------------------------
def run_decode(args: argparse.Namespace) -> int:
    if args.output != "-":  # before any work: not the input, not an existing file without --force
        check_output_path(args.output, [args.input], args.force)
    fmt = decode_format(args.output, args.raw)
    source = _open_in(args.input)
    with naming_file(args.input, NAMED_ERRORS) if args.input != "-" else nullcontext():
        reader = HfcReader(source)
        h = reader.header
        model, tables = reading(h, load_model(args.model) if args.model else None, _entropy_choice(args))
    reader.use_entropy(tables)
    decoder = model.streaming_decoder()
    written = 0
    limit: int | None = None if h.unterminated else h.num_samples
    with AudioOut(args.output, fmt, model.sample_rate, h.channels) as sink:

        def emit(audio: torch.Tensor) -> None:
            nonlocal written
            x = audio[:, 0].numpy()
            if limit is not None:
                x = x[:, : max(0, limit - written)]
            written += x.shape[-1]
            sink.write(from_coded_channels(x, h.channel_coding) if h.channel_coding == MID_SIDE else x)

        error: HificodecError | None = None
        try:
            for codes in reader.groups():
                emit(decoder.push(torch.from_numpy(codes)))
        except FormatError as e:
            error = e
        if reader.complete and reader.end_header is not None:
            limit = reader.end_header.num_samples
        if decoder.frames:
            emit(decoder.flush())
        if error is None and not reader.complete:
            error = HificodecError("the stream ended before its end record (cut short?)")
        if sink.samples == 0:  # a header and no group: nothing to write
            raise HificodecError(f"{error or 'the stream holds no audio'}; nothing decoded, no output written")
        if error is not None:
            raise HificodecError(f"{error}; wrote the {sink.seconds:.2f} s decoded from what arrived")
    if not args.quiet and args.output not in (None, "-"):
        print(f"{args.input} -> {args.output}: {sink.seconds:.2f} s at {model.sample_rate} Hz", file=sys.stderr)
    return 0


# ---- demo ----------------------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> int:
    from ..audio import load_audio
    from ..demo import bundled_clip

    torch.set_num_threads(args.threads)
    path = args.input or str(bundled_clip())
    if args.output:
        check_not_input(args.output, [path])
    model = load_model(args.model, args.bandwidth, args.n_q, "cpu")
    audio, _ = load_audio(path, model.sample_rate, mono=True)
    wav = torch.from_numpy(audio.reshape(-1))
    header, tables = _stream_header(model, model.sample_rate, args)
    sink = io.BytesIO()
    writer = HfcStreamWriter(sink, header, tables)
    encoder, decoder = model.streaming_encoder(), model.streaming_decoder()
    hop, frame_s = model.hop_length, model.hop_length / model.sample_rate
    latency = model.algorithmic_latency()
    print(f"{model.release or model.name}: {frame_s * 1000:g} ms frames, algorithmic latency {latency}")
    outputs, enc_ms, dec_ms = [], [], []
    start = time.perf_counter()
    for i in range(0, wav.numel(), hop):
        if not args.fast:  # the frame is complete when its last sample has arrived
            delay = start + (i + hop) / model.sample_rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        codes = encoder.push(wav[i : i + hop].view(1, 1, -1))
        t1 = time.perf_counter()
        outputs.append(decoder.push(codes))
        t2 = time.perf_counter()
        writer.write(codes.numpy())
        enc_ms.append(1000 * (t1 - t0))
        dec_ms.append(1000 * (t2 - t1))
        frame = i // hop + 1
        if frame % args.every == 0:
            heard = max(1e-9, (i + hop) / model.sample_rate)
            print(f"t={heard:6.2f} s  encode {max(enc_ms[-args.every:]):5.2f} ms  decode "
                  f"{max(dec_ms[-args.every:]):5.2f} ms (slowest of the last {args.every} frames)  "
                  f"stream {writer.bytes_written * 8 / heard / 1000:6.3f} kbps", flush=True)  # fmt: skip
    last = encoder.flush()
    writer.write(last.numpy())
    writer.close(wav.numel(), wav.numel())
    outputs += [decoder.push(last), decoder.flush()]
    out = torch.cat(outputs, dim=-1)[0, :, : wav.numel()]
    seconds = wav.numel() / model.sample_rate
    print(f"{seconds:.2f} s in {len(enc_ms)} frames: encode {np.mean(enc_ms):.2f} ms mean / {_p99(enc_ms):.2f} ms p99, "
          f"decode {np.mean(dec_ms):.2f} / {_p99(dec_ms):.2f} ms per {frame_s * 1000:g} ms frame; "
          f"{writer.bytes_written} bytes = {writer.bytes_written * 8 / seconds / 1000:.3f} kbps with headers and "
          f"checksums")  # fmt: skip
    if args.output:
        from ..audio import save_audio

        save_audio(args.output, out.numpy(), model.sample_rate)
        print(f"wrote {args.output}")
    return 0


def _p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stream", help="code audio as it arrives (pipes, live input), with a stated latency",
        description="Streaming encode/decode through pipes: frames are coded as soon as their input has "
        "arrived (docs/streaming.md).",
    )  # fmt: skip
    sub = p.add_subparsers(dest="stream_command", metavar="SUBCOMMAND", required=True)

    e = sub.add_parser("encode", help="audio (raw s16le PCM or WAV) -> .hfc stream",
                       description="Read raw s16le PCM (--rate, --channels; downmixed to mono) or a WAV stream "
                       "from IN (- for stdin) and write an unterminated .hfc stream (format version 4) as "
                       "frames complete.")  # fmt: skip
    e.add_argument("input", nargs="?", default="-", metavar="IN", help="audio input (default -: stdin)")
    e.add_argument("-o", "--output", default="-", help=".hfc output (default -: stdout)")
    e.add_argument("--rate", type=sample_rate, help="raw PCM input's sample rate (default: the model's; a WAV "
                   "input states its own, and another value is refused)")  # fmt: skip
    e.add_argument("--channels", type=positive_int, help="raw PCM input's channels (default 1; a WAV input states "
                   "its own, and another value is refused)")  # fmt: skip
    e.add_argument("--group-frames", type=group_frames, default=DEFAULT_STREAM_GROUP, metavar="N",
                   help=f"frames per .hfc group (default {DEFAULT_STREAM_GROUP}): a group is written when "
                   "complete, so N frames of delay against 6-10 bytes per group")  # fmt: skip
    _add_model_args(e)
    _add_entropy_args(e, encoding=True, default_note=f"; groups under {ENTROPY_MIN_GROUP} frames are packed unless "
                      "TABLES is given: the coder's flush per group costs more than it saves")
    e.add_argument("--force", action="store_true", help="overwrite an existing output file")
    e.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_threads_arg(e)
    e.set_defaults(func=run_encode)

    d = sub.add_parser("decode", help=".hfc stream -> audio (WAV or raw s16le)",
                       description="Read a .hfc stream (or file) from IN (- for stdin) and write 16-bit audio "
                       "at the model's rate as it is decoded.")  # fmt: skip
    d.add_argument("input", nargs="?", default="-", metavar="IN", help=".hfc input (default -: stdin)")
    d.add_argument("-o", "--output", default="-", help="audio output (default -: stdout)")
    d.add_argument("--raw", action="store_true", help="raw s16le PCM instead of WAV")
    d.add_argument("--model", help="shipped model name or checkpoint directory (default: the one in the stream)")
    _add_entropy_args(d, encoding=False)
    d.add_argument("--force", action="store_true", help="overwrite an existing output file")
    d.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_threads_arg(d)
    d.set_defaults(func=run_decode)

    m = sub.add_parser("demo", help="stream the bundled clip in real time, printing compute time and bitrate",
                       description="Push a clip (default: the bundled speech clip) through the streaming "
                       "encoder and decoder 20 ms at a time, paced to the clock.")  # fmt: skip
    m.add_argument("--input", help="audio file (default: the bundled clip)")
    m.add_argument("-o", "--output", help="write the decoded audio here")
    m.add_argument("--fast", action="store_true", help="do not wait for the clock")
    m.add_argument("--every", type=positive_int, default=10, metavar="N", help="print every N frames (default 10)")
    m.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="torch threads (default 1: the demo times one core)")  # fmt: skip
    m.add_argument("--group-frames", type=group_frames, default=DEFAULT_STREAM_GROUP, metavar="N",
                   help="frames per .hfc group")  # fmt: skip
    _add_model_args(m)
    _add_entropy_args(m, encoding=True)
    m.set_defaults(func=run_demo)
