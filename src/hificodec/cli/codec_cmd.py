"""`hificodec encode | decode | reconstruct | info`: thin commands over hificodec.compress."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from ..bitstream import CHANNEL_CODINGS, ENTROPY, PAYLOAD_CODINGS, HfcHeader, HfcReader, naming_file, open_hfc
from ..compress import (
    AUTO,
    NAMED_ERRORS,
    EncodedFile,
    EntropyChoice,
    check_output_path,
    decode_file,
    encode_file,
    model_for,
    output_format,
)
from ..errors import CheckpointError, HificodecError, UsageError
from ..models.base import CodecModel
from .numbers import add_threads_arg, positive_int, positive_kbps, sample_rate


def load_model(
    name: str | None, bandwidth: float | None = None, n_q: int | None = None, device: str | None = None
) -> CodecModel:
    """The model for --model (default hificodec.DEFAULT_MODEL), with a clear message when none is installed."""
    import hificodec

    chosen = name or hificodec.DEFAULT_MODEL
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = hificodec.load(chosen, device=device)
    except CheckpointError as e:
        if name is None:
            raise HificodecError(
                f"no trained model is installed (the default model '{chosen}' is not shipped with this "
                "version); pass a checkpoint directory with --model DIR (one written by `hificodec train` "
                "or hificodec.save)"
            ) from None
        raise HificodecError(str(e)) from None
    except (RuntimeError, AssertionError) as e:  # e.g. --device cuda without a GPU
        raise HificodecError(f"cannot use device '{device}': {str(e).splitlines()[0]}") from None
    try:
        if n_q is not None:
            model.set_num_codebooks(n_q)
        elif bandwidth is not None:
            model.set_target_bandwidth(bandwidth)
    except ValueError as e:
        raise HificodecError(str(e)) from None
    if bandwidth is not None and not math.isclose(model.bitrate / 1000, bandwidth, rel_tol=1e-9, abs_tol=1e-9):
        available = ", ".join(f"{b:g}" for b in model.bandwidths)
        print(
            f"hificodec: note: {model.name} has no {bandwidth:g} kbps setting; using {model.bitrate / 1000:g} kbps "
            f"(available: {available})",
            file=sys.stderr,
        )
    return model


def add_backend_args(p: argparse.ArgumentParser, **threads: str) -> None:
    """--threads (`threads`: its help's `what` and `default`), --backend and --onnx-dir."""
    add_threads_arg(p, **threads)
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="run the model with PyTorch (default) or with onnxruntime on the CPU (graphs exported on "
                   "first use into $HIFICODEC_CACHE or ~/.cache/hificodec, or read from --onnx-dir)")  # fmt: skip
    p.add_argument("--onnx-dir", metavar="DIR", help="with --backend onnx: graphs written by `hificodec export-onnx`")


def check_backend_args(args: argparse.Namespace) -> None:
    if args.onnx_dir and args.backend != "onnx":
        raise UsageError("--onnx-dir is for --backend onnx")
    if args.backend == "onnx":
        if args.device not in (None, "cpu"):
            raise HificodecError(f"--backend onnx runs on the CPU; drop --device {args.device}")
        args.device = "cpu"  # the PyTorch model exports the graphs and measures the chunk context


def with_backend(model: CodecModel, args: argparse.Namespace) -> CodecModel:
    """`model` as --backend asks: itself, or run by onnxruntime (hificodec.onnx_backend)."""
    if args.backend != "onnx":
        return model
    from .. import onnx_backend

    def note(folder: Path) -> None:
        print(f"exporting {model.release or model.name} to ONNX graphs in {folder} (once per model)", file=sys.stderr)

    # --threads: onnxruntime's threads as well as torch's (the session would otherwise take torch's count)
    return onnx_backend.load(model, args.onnx_dir, threads=getattr(args, "threads", None), on_export=note)


def output_paths(inputs: list[str], output: str | None, out_dir: str | None, suffix: str) -> list[Path]:
    """-o for a single input, --out-dir for many, else next to each input with `suffix`."""
    if output and out_dir:
        raise HificodecError("give either -o/--output or --out-dir, not both")
    if output:
        if len(inputs) > 1:
            raise HificodecError("-o/--output takes one input; use --out-dir for several")
        return [Path(output)]
    if out_dir:
        folder = Path(out_dir)
        if folder.exists() and not folder.is_dir():
            raise HificodecError(f"{folder}: not a folder")
        folder.mkdir(parents=True, exist_ok=True)  # as `tokenize --out` and `eval --out` do
        return [folder / (Path(p).stem + suffix) for p in inputs]
    return [Path(p).with_suffix(suffix) for p in inputs]


def _add_io(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-o", "--output", help=f"output {what} (one input only)")
    p.add_argument("--out-dir", help=f"folder for the {what}s (named after the inputs)")
    p.add_argument("--force", action="store_true", help="overwrite existing files (never an input)")
    p.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda if available)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    _add_skip_errors(p)


def _add_skip_errors(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-errors", action="store_true",
                   help="with several inputs: report a failing one and go on; list the failures at the end (exit 1)")


def _for_each(args: argparse.Namespace, items: list, work: Callable[..., None]) -> int:
    """Run `work(*item)` per input. The first error stops the command, or with --skip-errors is printed,
    passed over and listed at the end (exit status 1 if any input failed)."""
    failed: list[str] = []
    for item in items:
        try:
            work(*item)
        except HificodecError as e:
            if not args.skip_errors:
                raise
            name = str(item[0])
            message = str(e) if name in str(e) else f"{name}: {e}"  # say which input, once
            print(f"hificodec {args.command}: error: {message}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"hificodec {args.command}: {len(failed)} of {len(items)} inputs failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _check_outputs(inputs: list[str], outputs: list[Path], force: bool, audio: bool = False) -> None:
    if len(set(outputs)) != len(outputs):
        raise HificodecError("several inputs map to the same output name; use -o per file or rename them")
    for out in outputs:
        check_output_path(out, inputs, force)
        if audio:
            output_format(out)


# ---- encode --------------------------------------------------------------------------------------
def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="shipped model name or checkpoint directory (default: hificodec.DEFAULT_MODEL)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "--bandwidth", type=positive_kbps, metavar="KBPS", help="target bitrate (the largest one not above it)"
    )
    rate.add_argument("--n-q", type=positive_int, metavar="N", help="number of codebooks to use")


def _add_entropy_args(p: argparse.ArgumentParser, encoding: bool, default_note: str = "") -> None:
    if encoding:
        p.add_argument("--no-entropy", action="store_true", help="store the codes packed, without entropy coding")
    p.add_argument("--entropy", metavar="TABLES", help="entropy tables file (default: the model's own, if it has "
                   f"them: a shipped release's, or entropy.safetensors in the model folder{default_note})")  # fmt: skip


def _entropy_choice(args: argparse.Namespace) -> EntropyChoice:
    """--no-entropy / --entropy TABLES / the model's own tables (AUTO: those in its folder, if any)."""
    if getattr(args, "no_entropy", False):
        return None
    if args.entropy:
        return str(args.entropy)
    return AUTO


def _rates(h: HfcHeader, payload_bytes: int) -> str:
    """The codes' raw rate and, for an entropy-coded file, what they cost coded."""
    raw = f"{h.nominal_bitrate / 1000:.3f} kbps per channel"
    if h.payload_coding != ENTROPY:
        return raw + " (packed)"
    coded = payload_bytes * 8 / h.duration / h.channels / 1000
    saved = 100 * (1 - coded * 1000 / h.nominal_bitrate)
    return f"{coded:.3f} kbps per channel entropy-coded ({raw} raw, {saved:.0f} % smaller)"


def run_encode(args: argparse.Namespace) -> int:
    outputs = output_paths(args.inputs, args.output, args.out_dir, ".hfc")
    _check_outputs(args.inputs, outputs, args.force)
    check_backend_args(args)
    model = with_backend(load_model(args.model, args.bandwidth, args.n_q, args.device), args)
    entropy = _entropy_choice(args)

    def encode(src: str, dst: Path) -> None:
        done = encode_file(model, src, dst, force=args.force, progress=not args.quiet, entropy=entropy)
        h = done.header  # the rates as written: the file is not read back
        _say(args, f"{src} -> {dst}: {h.duration:.2f} s, {h.channels} ch, {_rates(h, done.payload_bytes)}, "
                   f"{done.file_bytes} bytes")  # fmt: skip

    return _for_each(args, list(zip(args.inputs, outputs)), encode)


# ---- decode --------------------------------------------------------------------------------------
def run_decode(args: argparse.Namespace) -> int:
    # not IN.wav: that is usually the file IN.hfc was made from
    outputs = output_paths(args.inputs, args.output, args.out_dir, ".decoded.wav")
    _check_outputs(args.inputs, outputs, args.force, audio=True)
    check_backend_args(args)
    onnx = args.backend == "onnx"
    device = args.device or ("cuda" if torch.cuda.is_available() and not onnx else "cpu")
    model = with_backend(load_model(args.model, device=device), args) if args.model else None
    entropy = _entropy_choice(args)
    by_hash: dict[str, CodecModel] = {}  # --backend onnx without --model: each file's model, run by onnxruntime
    by_tokens: dict[str, CodecModel] = {}  # .npy codes without --model: the model of each tokens.json

    def decode_tokens(src: str, dst: Path) -> None:
        from ..data.tokens import find_token_info
        from ..detokenize import decode_tokens_file, tokens_model

        chosen = model
        if chosen is None:
            key = str(find_token_info(src))
            if key not in by_tokens:
                by_tokens[key] = with_backend(tokens_model(src, None, device)[0], args)
            chosen = by_tokens[key]
        seconds, rate = decode_tokens_file(src, dst, model=chosen, sample_rate=args.sample_rate, force=args.force,
                                           device=device)  # fmt: skip
        _say(args, f"{src} -> {dst}: {seconds:.2f} s of tokens, {rate} Hz")

    def decode(src: str, dst: Path) -> None:
        if Path(src).suffix.lower() == ".npy":  # codes from `hificodec tokenize`, not a bitstream
            return decode_tokens(src, dst)
        chosen = model
        if chosen is None and onnx:
            with naming_file(src, NAMED_ERRORS):
                with open_hfc(src) as f:
                    header = HfcReader(f).header
                if header.model_hash not in by_hash:
                    by_hash[header.model_hash] = with_backend(model_for(header, None, device), args)
            chosen = by_hash[header.model_hash]
        h = decode_file(
            src, dst, model=chosen, sample_rate=args.sample_rate, force=args.force, progress=not args.quiet,
            device=device, entropy=entropy,
        )
        rate = args.sample_rate or h.source_sample_rate
        _say(args, f"{src} -> {dst}: {h.duration:.2f} s, {h.channels} ch, {rate} Hz")

    return _for_each(args, list(zip(args.inputs, outputs)), decode)


# ---- reconstruct ---------------------------------------------------------------------------------
def run_reconstruct(args: argparse.Namespace) -> int:
    outputs = output_paths(args.inputs, args.output, args.out_dir, ".reconstructed.wav")
    _check_outputs(args.inputs, outputs, args.force, audio=True)
    check_backend_args(args)
    model = with_backend(load_model(args.model, args.bandwidth, args.n_q, args.device), args)
    entropy = _entropy_choice(args)

    def reconstruct(src: str, dst: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="hificodec-") as tmp:
            hfc = Path(tmp) / "codes.hfc"
            done: EncodedFile = encode_file(model, src, hfc, progress=not args.quiet, entropy=entropy)
            decode_file(hfc, dst, model=model, sample_rate=args.sample_rate, force=args.force, progress=not args.quiet,
                        entropy=entropy)  # fmt: skip
        h = done.header
        _say(
            args,
            f"{src} -> {dst}: {_rates(h, done.payload_bytes)} ({h.num_codebooks} codebooks x {h.bits_per_code} "
            f"bits x {h.sample_rate / h.hop_length:g} Hz), {h.channels} ch; the .hfc file is {done.file_bytes} bytes "
            f"= {done.file_kbps:.3f} kbps with header and checksums",
        )

    return _for_each(args, list(zip(args.inputs, outputs)), reconstruct)


# ---- export-onnx ---------------------------------------------------------------------------------
def run_export_onnx(args: argparse.Namespace) -> int:
    from .. import onnx_backend

    onnx_backend.require_onnx()  # before loading the model: the missing package is the first thing to say
    model = load_model(args.model, device="cpu")
    info = onnx_backend.export(model, args.out_dir, force=args.force)
    _say(args, f"{model.release or model.name} -> {args.out_dir}: {onnx_backend.ENCODER_FILE}, "
               f"{onnx_backend.DECODER_FILE}, {onnx_backend.INFO_FILE} (opset {info['opset']}; largest audio "
               f"difference to PyTorch {info['max_abs_diff']:.2g}, "
               f"codes differing {info['code_mismatch']:.2%})")  # fmt: skip
    return 0


# ---- info ----------------------------------------------------------------------------------------
def run_info(args: argparse.Namespace) -> int:
    shown = 0

    def info(path: str) -> None:
        nonlocal shown
        with naming_file(path), open_hfc(path) as f:
            reader = HfcReader(f)
            h = reader.header
            for _ in reader.checked_groups():  # verifies every checksum
                pass
            if h.unterminated:
                if reader.end_header is None:
                    raise HificodecError(
                        f"{path}: an unterminated .hfc stream cut short after {reader.frames_read} frames (no end "
                        "record); `hificodec stream decode` decodes what it holds"
                    )
                h = reader.end_header
        size = os.path.getsize(path)
        tables = f", tables {h.entropy_id}" if h.payload_coding == ENTROPY else ""
        payload_kbps = h.bitrate / 1000 if h.payload_coding != ENTROPY else reader.payload_bytes * 8 / h.duration / 1000
        if shown:
            print()
        shown += 1
        print(
            f"{path}\n"
            f"  format       .hfc version {reader.header.version}, {size} bytes, checksums OK\n"
            f"  model        {h.model_name} (model hash {h.model_hash})\n"
            f"  duration     {h.duration:.3f} s ({h.source_num_samples} samples at {h.source_sample_rate} Hz; "
            f"coded at {h.sample_rate} Hz)\n"
            f"  channels     {h.channels} ({CHANNEL_CODINGS[h.channel_coding]})\n"
            f"  codes        {h.num_frames} frames x {h.num_codebooks} codebooks of {h.codebook_size} "
            f"({h.bits_per_code} bits), {h.sample_rate / h.hop_length:g} frames/s\n"
            f"  payload      {PAYLOAD_CODINGS[h.payload_coding]}{tables}\n"
            f"  bitrate      {_rates(h, reader.payload_bytes)}; this file: {payload_kbps:.3f} kbps payload, "
            f"{size * 8 / h.duration / 1000:.3f} kbps with header and checksums"
        )

    return _for_each(args, [(path,) for path in args.inputs], info)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "encode", help="compress audio files to .hfc bitstreams",
        description="Compress audio (any format soundfile reads, any rate, any channel count) to .hfc files "
        "(see docs/format.md). Long files are processed in chunks in bounded memory.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files")
    _add_model_args(p)
    _add_entropy_args(p, encoding=True)
    _add_io(p, ".hfc file")
    add_backend_args(p)
    p.set_defaults(func=run_encode)

    p = subparsers.add_parser(
        "decode", help="decode .hfc bitstreams (or .npy tokens) to audio",
        description="Decode .hfc files to audio (format from the extension: .wav, .flac, ...), at the original "
        "sample rate and length unless --sample-rate is given; writes IN.decoded.wav by default. The model "
        "named in the file is used unless --model is given; a file made by other weights is refused. "
        "A .npy file of codes [codebooks, frames] from `hificodec tokenize` is decoded with the model its "
        "folder's tokens.json names (or --model, checked against it), at the model's rate.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IN.hfc", help=".hfc files, or .npy codes from `hificodec tokenize`")
    p.add_argument("--model", help="shipped model name or checkpoint directory (default: the one in the file, or "
                   "in tokens.json for .npy codes)")  # fmt: skip
    p.add_argument("--sample-rate", type=sample_rate, metavar="SR", help="output sample rate (default: the original)")
    _add_entropy_args(p, encoding=False)
    _add_io(p, "audio file")
    add_backend_args(p)
    p.set_defaults(func=run_decode)

    p = subparsers.add_parser(
        "reconstruct", help="encode and decode in one go (hear the codec), print the bitrate",
        description="Encode then decode audio files; writes IN.reconstructed.wav by default.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IN", help="audio files")
    _add_model_args(p)
    p.add_argument("--sample-rate", type=sample_rate, metavar="SR", help="output sample rate (default: the input's)")
    _add_entropy_args(p, encoding=True)
    _add_io(p, "audio file")
    add_backend_args(p)
    p.set_defaults(func=run_reconstruct)

    p = subparsers.add_parser(
        "export-onnx", help="export a model's encoder and decoder as ONNX graphs (for --backend onnx)",
        description="Write MODEL's encoder.onnx and decoder.onnx and onnx.json (model hash, rates, opset, "
        "versions, the largest audio difference to PyTorch measured at export) into OUT_DIR, atomically. "
        "Use them with --backend onnx --onnx-dir OUT_DIR, or hificodec.onnx_backend.load(model, OUT_DIR).",
    )  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="shipped model name or checkpoint directory")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder for the graphs (created)")
    p.add_argument("--force", action="store_true", help="replace an earlier export in OUT_DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_threads_arg(p, "the export's (and its comparison with PyTorch's)")
    p.set_defaults(func=run_export_onnx)

    p = subparsers.add_parser(
        "info", help="show a .hfc file's header, bitrate and duration (and verify its checksums)",
        description="Print the header of .hfc files and check every checksum.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="FILE.hfc", help=".hfc files")
    _add_skip_errors(p)
    p.set_defaults(func=run_info)

