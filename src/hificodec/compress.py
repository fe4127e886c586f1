"""Audio <-> `.hfc` bitstream, in memory (`compress`/`decompress`) or file to file in bounded memory
(`encode_file`/`decode_file`: audio is streamed through soxr and the chunked codec, one chunk at a time).

Any sample rate goes in: audio is resampled to the model's rate, and decoding restores the original
rate and length unless told otherwise. The channels are coded separately (as one batch) in one file;
stereo is coded as mid (L+R)/2 and side (L-R)/2, so that channels that are nearly the same (a mono
recording saved as stereo, with its own dither per channel) code a near-silent side and decode nearly
the same again, where coding L and R apart lets their codes, and so the decoded channels, diverge.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from tqdm import tqdm

from .audio import audio_info, check_finite, declared_frames, resample
from .bitstream import (
    ENTROPY,
    MID_SIDE,
    FormatError,
    HfcHeader,
    HfcReader,
    HfcWriter,
    naming_file,
    open_hfc,
    read_codes,
    write_codes,
)
from .checkpoint import load, resolve_model_dir
from .chunked import ChunkedDecoder, ChunkedEncoder, decode_chunked, encode_chunked
from .entropy import EntropyTables
from .errors import AudioError, CheckpointError, HificodecError, HificodecWarning
from .files import atomic_output, check_output_folder, is_same_file
from .identity import (
    AUTO,
    EntropyChoice,
    ModelIdentity,
    ModelNotInstalledError,
    channel_coding_for,
    identify,
    not_installed,
    resampled_length,
    resolve,
)
from .models.base import CodecModel
from .pcm import as_audio

__all__ = [  # these names are part of this module's API too (callers import them from here)
    "AUTO", "EntropyChoice", "ModelIdentity", "channel_coding_for", "check_output_folder", "identify",
    "resampled_length", "resolve",
]  # fmt: skip

#: frames read from an input file per step when streaming
READ_BLOCK = 1 << 16
#: errors about a file that name it: a damaged file, or one whose model is not installed
NAMED_ERRORS = (FormatError, ModelNotInstalledError)


def to_coded_channels(audio: np.ndarray, coding: int) -> np.ndarray:
    """[channels, n] audio -> the channels the codec codes."""
    if coding == MID_SIDE:
        return np.stack([(audio[0] + audio[1]) * 0.5, (audio[0] - audio[1]) * 0.5]).astype(np.float32)
    return audio


def from_coded_channels(audio: np.ndarray, coding: int) -> np.ndarray:
    """Inverse of `to_coded_channels`."""
    if coding == MID_SIDE:
        return np.stack([audio[0] + audio[1], audio[0] - audio[1]]).astype(np.float32)
    return audio


def make_header(
    model: CodecModel, channels: int, source_rate: int, source_samples: int, entropy: EntropyTables | None = None
) -> HfcHeader:
    """The header `model` writes for audio of `source_samples` samples at `source_rate` (packed codes, or
    coded with the tables `entropy`): `resolve(model, entropy).header(...)`."""
    return resolve(model, entropy).header(channels, source_rate, source_samples)


def entropy_tables(model: CodecModel, choice: EntropyChoice = AUTO) -> EntropyTables | None:
    """The entropy tables to code `model`'s codes with: `choice` itself (tables, or a path to a tables
    file), none (`None`: packed codes), or with AUTO the model's own (none if it has none). Tables
    fitted for another model are refused."""
    return resolve(model, choice).encoding_tables()


def model_for(
    header: HfcHeader, model: CodecModel | str | os.PathLike | None = None, device: str = "cpu"
) -> CodecModel:
    """The model to decode `header` with: the given one (checked) or the installed model the file names."""
    model = _model_named(header, model, device)
    identify(model).check(header)
    return model


def check_model(header: HfcHeader, model: CodecModel) -> None:
    """Raise ModelMismatchError, naming the release the file needs, unless `model` made the file."""
    identify(model).check(header)


def reading(
    header: HfcHeader, model: CodecModel | str | os.PathLike | None = None, entropy: EntropyChoice = AUTO,
    device: str = "cpu",
) -> tuple[CodecModel, EntropyTables | None]:
    """The model that decodes `header` (`model_for`) and the tables its groups decode with (None for
    packed codes; otherwise `entropy`'s, with an error that says what was at hand if they do not fit)."""
    model = _model_named(header, model, device)
    identity = identify(model)
    identity.check(header)  # before the tables: another model's file is the thing to say
    if header.payload_coding != ENTROPY:
        return model, None
    return model, identity.with_entropy(entropy).tables_for(header)


def _model_named(header: HfcHeader, model: CodecModel | str | os.PathLike | None, device: str) -> CodecModel:
    if isinstance(model, CodecModel):
        return model
    if model is not None:
        return load(model, device=device)
    try:
        folder = resolve_model_dir(header.model_name)
    except CheckpointError:
        raise not_installed(header) from None
    return load(folder, device=device)


# ---- in memory --------------------------------------------------------------------------------
def _as_channels(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    # float or integer PCM (scaled), numpy or torch: the rule of the model API (hificodec.pcm)
    arr = as_audio(wav if isinstance(wav, (torch.Tensor, np.ndarray)) else np.asarray(wav)).detach().cpu().numpy()
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 2:
        raise AudioError(f"expected audio shaped [samples] or [channels, samples], got {list(arr.shape)}")
    if arr.shape[1] == 0:
        raise AudioError("the audio holds no samples")
    check_finite(arr, "input")
    return arr


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[-1] >= n:
        return audio[..., :n]
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, n - audio.shape[-1])])


def check_sample_rate(sample_rate: object, what: str = "sample rate") -> int:
    """A positive integer rate, or an error that says what was given (0 and floats are not rates)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise HificodecError(f"{what} must be a positive integer number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def compress(
    model: CodecModel, wav: np.ndarray | torch.Tensor, sample_rate: int, entropy: EntropyChoice = AUTO
) -> bytes:
    """Audio [samples] or [channels, samples] at any rate -> .hfc bytes (entropy-coded with the model's
    release tables by default; see `entropy_tables` for `entropy`)."""
    sample_rate = check_sample_rate(sample_rate)
    audio = _as_channels(wav)
    identity = resolve(model, entropy)
    tables = identity.encoding_tables()
    header = identity.header(audio.shape[0], sample_rate, audio.shape[1])
    x = _fit_length(resample(to_coded_channels(audio, header.channel_coding), sample_rate, model.sample_rate),
                    header.num_samples)  # fmt: skip
    codes = encode_chunked(model, torch.from_numpy(np.ascontiguousarray(x)))
    return write_codes(codes.numpy(), header, tables)


class OutputCheck:
    """Refuses decoded audio that cannot be real: NaN or infinite samples (written as full-scale
    noise or -32768 by soundfile), or every sample at or beyond full scale. Both come from corrupt
    weights, not from audio."""

    def __init__(self, model: CodecModel):
        self.model = model
        self.samples = 0
        self.saturated = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if not np.isfinite(block).all():
            raise HificodecError(
                f"model '{self.model.name}' decoded NaN or infinite samples (its weights are probably corrupt); "
                "no output written"
            )
        self.samples += block.size
        self.saturated += int(np.count_nonzero(np.abs(block) >= 1.0))
        return block

    def finish(self) -> None:
        if self.samples and self.saturated == self.samples:
            raise HificodecError(
                f"model '{self.model.name}' decoded audio pinned at full scale (its weights are probably "
                "corrupt); no output written"
            )


def decompress(
    data: bytes, model: CodecModel | str | os.PathLike | None = None, sample_rate: int | None = None,
    entropy: EntropyChoice = AUTO,
) -> tuple[np.ndarray, int]:
    """.hfc bytes -> (audio [channels, samples] float32, sample rate). By default the original rate and
    length are restored; `sample_rate` picks another rate (e.g. `header.sample_rate` for the model's).
    Entropy-coded files need the tables they were coded with: by default the model's release tables."""
    if sample_rate is not None:
        check_sample_rate(sample_rate, "the output sample rate")
    header, _ = HfcHeader.read_from(io.BytesIO(data))
    model, tables = reading(header, model, entropy)
    header, codes = read_codes(data, tables)
    if header.unterminated:
        raise FormatError("an unterminated .hfc stream cut short (no end record): it states no length")
    wav = decode_chunked(model, torch.from_numpy(codes), length=header.num_samples)[:, 0].numpy()
    check = OutputCheck(model)
    check(wav)
    check.finish()
    wav = from_coded_channels(wav, header.channel_coding)
    sr_out = sample_rate or header.source_sample_rate
    out = _fit_length(resample(wav, header.sample_rate, sr_out), _output_length(header, sr_out))
    return np.clip(out, -1.0, 1.0), sr_out


def stream_length(f: BinaryIO, reader: HfcReader) -> HfcHeader:
    """The header an unterminated stream's (format version 4) end record completes, read ahead on a
    seekable file; the file is left where its groups start."""
    start = f.tell()
    for _ in reader.checked_groups():
        pass
    if not reader.complete or reader.end_header is None:
        raise FormatError(
            "an unterminated .hfc stream cut short (no end record): `hificodec stream decode` decodes what it holds"
        )
    f.seek(start)
    return reader.end_header


def _output_length(header: HfcHeader, sr_out: int) -> int:
    if sr_out == header.source_sample_rate:
        return header.source_num_samples
    return resampled_length(header.num_samples, header.sample_rate, sr_out)


# ---- file to file, streaming -------------------------------------------------------------------
class AudioProgress(tqdm):
    """A progress bar over audio seconds whose rate reads "N.NNx real time" (audio seconds per wall
    second) whatever its value: tqdm's own label flips to seconds per unit below 1/s ("1.80s/s").
    On an error the bar is kept and its line ended, so the error message starts on a line of its own."""

    def __init__(self, total: float, desc: str, progress: bool):
        super().__init__(
            total=total, desc=desc, disable=not progress, leave=False,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}, {realtime}]",
        )  # fmt: skip

    def update(self, n: float | None = 1) -> bool | None:
        # decoded audio is whole frames, a little longer than the file: never count past the end
        step = 1 if n is None else n
        return super().update(max(0.0, min(step, (self.total or 0) - self.n)))

    @property
    def format_dict(self) -> dict:
        d = super().format_dict
        rate = d.get("rate") or (d["n"] / d["elapsed"] if d.get("elapsed") else None)
        d["realtime"] = f"{rate:.2f}x real time" if rate else "?x real time"
        return d

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.leave = True  # close() then prints the bar once more and a newline
        super().__exit__(exc_type, exc, tb)


def check_not_input(dst: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse an output that is one of the inputs (the same file under any name, a link to it, or
    standard input redirected from it), whatever `--force` says: the input would be gone."""
    out = Path(dst)
    if not out.exists():
        return
    for src in inputs:
        if is_same_file(src, out):
            raise HificodecError(
                f"{out}: would overwrite its input (refused even with --force: write the output elsewhere)"
            )


def check_output_path(dst: str | os.PathLike, inputs: Sequence[str | os.PathLike], force: bool = False) -> Path:
    """Refuse an output that is a folder, is one of the inputs (always), or already exists (unless
    `force`). Every command that writes a file checks its output here before any work starts."""
    out = Path(dst)
    if out.is_dir():
        raise HificodecError(f"{out}: is a directory, expected an output file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():  # said before any work starts, not when the output is first written
        raise HificodecError(f"{out}: output folder {parent} does not exist")
    check_not_input(out, inputs)
    if not force and out.exists():
        raise HificodecError(f"{out}: already exists (use --force to overwrite)")
    return out


class Resampler:
    """Streaming soxr resampling, to an exact total length when one is given (cut or zero-padded at the
    end; None: whatever soxr gives, for a stream of unknown length)."""

    def __init__(self, sr_in: int, sr_out: int, channels: int, total_out: int | None = None):
        self.stream = None
        if sr_in != sr_out:
            import soxr  # file I/O imports soundfile/soxr where used: the GPU training image has neither

            self.stream = soxr.ResampleStream(sr_in, sr_out, channels, dtype="float32", quality="HQ")
        self.remaining = total_out
        self.channels = channels

    def __call__(self, block: np.ndarray, last: bool) -> np.ndarray:
        """block [channels, n] -> resampled [channels, m]."""
        if self.stream is not None:
            out = self.stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32), last=last)
            block = np.asarray(out, dtype=np.float32).reshape(-1, self.channels).T
        if self.remaining is None:
            return block
        block = block[:, : self.remaining]
        if last and block.shape[1] < self.remaining:
            block = np.pad(block, [(0, 0), (0, self.remaining - block.shape[1])])
        self.remaining -= block.shape[1]
        return block


def _read_blocks(path: Path, channels: int) -> Iterator[np.ndarray]:
    """[channels, n] float32 blocks of an audio file; raises AudioError on unreadable or non-finite data."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                block = f.read(READ_BLOCK, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    return
                if not np.isfinite(block).all():
                    raise AudioError(f"{path}: the audio holds NaN or infinite samples")
                yield np.ascontiguousarray(block.T)
    except sf.LibsndfileError as e:
        raise AudioError(f"{path}: cannot read audio ({e})") from None


@dataclass(frozen=True)
class EncodedFile:
    """What `encode_file` wrote, counted as it was written (nothing is read back)."""

    header: HfcHeader
    #: bytes of coded codes (no header, group lengths or checksums): what the codes cost
    payload_bytes: int
    #: bytes of the whole file
    file_bytes: int

    @property
    def payload_kbps(self) -> float:
        """The codes' rate per channel as written: entropy-coded, or packed."""
        h = self.header
        return self.payload_bytes * 8 / h.duration / h.channels / 1000

    @property
    def file_kbps(self) -> float:
        """The file's rate, header and checksums included (all channels)."""
        return self.file_bytes * 8 / self.header.duration / 1000


def encode_file(
    model: CodecModel,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    force: bool = False,
    progress: bool = False,
    chunk_frames: int | None = None,
    entropy: EntropyChoice = AUTO,
) -> EncodedFile:
    """Encode an audio file to a .hfc file in bounded memory (one chunk of audio at a time)."""
    src = Path(src)
    sr_in, channels, frames = audio_info(src)
    if frames <= 0:
        raise AudioError(f"{src}: the file holds no audio samples")
    out = check_output_path(dst, [src], force)
    identity = resolve(model, entropy)
    tables = identity.encoding_tables()
    header = identity.header(channels, sr_in, frames)
    bar = AudioProgress(header.duration, src.name, progress)
    with atomic_output(out) as tmp, open(tmp, "wb") as f, bar:
        writer = HfcWriter(f, header, tables)
        encoder = ChunkedEncoder(model, header.num_samples, chunk_frames)
        to_model_rate = Resampler(sr_in, model.sample_rate, channels, header.num_samples)
        pieces: list[torch.Tensor] = []
        read = 0
        for block in _read_blocks(src, channels):
            read += block.shape[1]
            block = to_coded_channels(block, header.channel_coding)
            pieces += encoder.feed(torch.from_numpy(to_model_rate(block, last=False)))
            pieces = _write_pieces(writer, pieces, bar, model)
        pieces += encoder.feed(torch.from_numpy(to_model_rate(np.zeros((channels, 0), np.float32), last=True)))
        pieces += encoder.finish()
        _write_pieces(writer, pieces, bar, model)
        writer.close()
    announced = declared_frames(src) or frames
    if read != announced:  # a file cut short: say so rather than code a shorter (or zero-padded) clip
        warnings.warn(
            f"{src}: truncated? its header says {announced / sr_in:.2f} s of audio but it holds {read / sr_in:.2f} s; "
            f"encoded {frames / sr_in:.2f} s" + (" (the missing end as silence)" if read < frames else ""),
            HificodecWarning,
            stacklevel=2,
        )
    return EncodedFile(header, writer.payload_bytes, writer.bytes_written)


def _write_pieces(writer: HfcWriter, pieces: list[torch.Tensor], bar: tqdm, model: CodecModel) -> list:
    for codes in pieces:
        writer.write(codes.numpy())
        bar.update(codes.shape[-1] / model.frame_rate)
    return []


def output_format(path: Path) -> str:
    import soundfile as sf

    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise HificodecError(f"{path}: unsupported output extension '{path.suffix}' (try .wav or .flac)")
    return fmt


def decode_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    model: CodecModel | str | os.PathLike | None = None,
    sample_rate: int | None = None,
    force: bool = False,
    progress: bool = False,
    chunk_frames: int | None = None,
    device: str = "cpu",
    entropy: EntropyChoice = AUTO,
) -> HfcHeader:
    """Decode a .hfc file to audio (format from the extension) in bounded memory. Without `model`, the
    shipped model named in the file is loaded (onto `device`)."""
    import soundfile as sf

    if sample_rate is not None:
        check_sample_rate(sample_rate, "the output sample rate")
    out = check_output_path(dst, [src], force)
    fmt = output_format(out)
    with naming_file(src, NAMED_ERRORS), open_hfc(src) as f:
        reader = HfcReader(f)
        header = reader.header
        if header.unterminated:
            header = stream_length(f, reader)
        model, tables = reading(header, model, entropy, device)
        reader.use_entropy(tables)
        sr_out = sample_rate or header.source_sample_rate
        to_out_rate = Resampler(header.sample_rate, sr_out, header.channels, _output_length(header, sr_out))
        decoder = ChunkedDecoder(model, header.num_frames, chunk_frames)
        check = OutputCheck(model)
        left = header.num_samples  # decoded audio beyond this is the padding of the last frame
        bar = AudioProgress(header.duration, Path(src).name, progress)
        with atomic_output(out) as tmp, bar, sf.SoundFile(
            tmp, "w", samplerate=sr_out, channels=header.channels, format=fmt
        ) as sink:
            for i, codes in enumerate(reader.groups()):
                last = i == header.num_groups - 1
                pieces = decoder.feed(torch.from_numpy(codes)) + (decoder.finish() if last else [])
                for wav in pieces:
                    block = check(wav.numpy()[:, :left])
                    left -= block.shape[1]
                    block = from_coded_channels(block, header.channel_coding)
                    sink.write(np.clip(to_out_rate(block, last=False), -1.0, 1.0).T)
                    bar.update(block.shape[1] / header.sample_rate)
            sink.write(np.clip(to_out_rate(np.zeros((header.channels, 0), np.float32), last=True), -1.0, 1.0).T)
            check.finish()
    return header
