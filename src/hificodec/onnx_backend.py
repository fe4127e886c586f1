"""ONNX export of a codec, and an onnxruntime backend that runs the exported graphs.

`export(model, out_dir)` writes two graphs and a description:

- encoder.onnx: wav [B, 1, T] (T a multiple of the hop; `OnnxCodec` pads as `Codec` does) -> int64
  codes [B, max_codebooks, F] and whether the latent was finite. The YIN pitch features, the latent
  norm and the nearest-entry lookups are inside the graph.
- decoder.onnx: codes [B, max_codebooks, F] and the number of stages per group (a lower bitrate
  decodes a prefix; the codes beyond it are ignored), the window's first frame, the frame whose phase
  the next window needs and the oscillator phase carried in -> wav [B, 1, F * hop] and the phase to
  carry on, so that chunked decoding through `decode_window` matches a whole-file decode.
- onnx.json: the model it was exported from (name, release, model hash), rates, opset, versions,
  the largest audio difference to PyTorch measured at export, and the SHA-256 of both graphs
  (`sha256`), checked on every load: a graph changed after the export (still a valid graph, but
  other weights) is refused, in an `--onnx-dir` folder and in the cache alike.

The graphs are traced with the TorchScript exporter; shape-dependent Python arithmetic in the model
(padding, framing) takes a shape-generic path while `torch.onnx.is_in_onnx_export()`. The iSTFT head
is rewritten here with real arithmetic (ONNX has no complex tensors and torch.istft does not export):
a convolution with the windowed DFT basis for the excitation's STFT, and a transposed convolution with
the windowed inverse-DFT basis (synthesis and overlap-add in one) divided by the window-square envelope,
as torch.istft(center=True) does.

`load(model)` gives an `OnnxCodec`: a `CodecModel` whose encode / decode / decode_window run the graphs
with onnxruntime on the CPU, so `compress`, `tokenize` and `chunked` use it unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import _sha256, model_hash
from .chunked import receptive_context, set_context
from .dsp.oscillator import harmonic_sum
from .dsp.padding import pad1d
from .errors import HificodecError
from .files import atomic_directory
from .models.base import CodecModel
from .models.codec import Codec
from .modules.pitch import pitch_to_hz
from .modules.vocos import ISTFTHead, VocosDecoder
from .pcm import as_codes

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
INFO_FILE = "onnx.json"
#: version of the export folder's layout and graph signatures (2: onnx.json records the graphs' SHA-256)
FORMAT_VERSION = 2
#: ONNX opset of the exported graphs (17: LayerNormalization)
OPSET = 17
INSTALL_HINT = "pip install 'hificodec[onnx]'"


def require_onnx() -> tuple[ModuleType, ModuleType]:
    """The `onnx` and `onnxruntime` modules, or one clear error naming the extra to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise HificodecError(
            f"the ONNX backend needs onnx and onnxruntime ({e.name} is missing): {INSTALL_HINT}"
        ) from None
    return onnx, onnxruntime


def cache_root() -> Path:
    """Where graphs exported on first use are kept: $HIFICODEC_CACHE/onnx, else ~/.cache/hificodec/onnx."""
    base = os.environ.get("HIFICODEC_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "hificodec") / "onnx"


# ---- graphs ----------------------------------------------------------------------------------------
def _exportable(model: CodecModel) -> Codec:
    if not isinstance(model, Codec):
        raise HificodecError(
            f"{model.name}: only hificodec Codec models can be exported to ONNX, not {type(model).__name__}"
        )
    return model


class _EncoderGraph(nn.Module):
    """wav [B, 1, F * hop] -> (codes [B, max_codebooks, F], whether the latent is finite)."""

    def __init__(self, model: Codec) -> None:
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        latent = m.encoder(wav)
        if m.pitch is not None:
            latent = m.pitch.condition(latent, wav)
        latent = m.latent_norm(latent)
        return m.quantizer.encode(latent), torch.isfinite(latent).all()


def _dft_basis(n_fft: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(analysis, synthesis) kernels [2 * bins, 1, n_fft]: the windowed real DFT (real parts, then
    imaginary), and the windowed inverse real DFT as irfft computes it (1 / n; the DC and Nyquist
    bins once and without their imaginary parts)."""
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = (2 * math.pi / n_fft) * torch.remainder(k * n, n_fft)
    cos, sin = torch.cos(angle), torch.sin(angle)
    w = window.double()[None, :]
    analysis = torch.cat([cos * w, -sin * w])
    scale = torch.full((bins, 1), 2.0 / n_fft, dtype=torch.float64)
    scale[0] = 1.0 / n_fft
    if n_fft % 2 == 0:
        scale[-1] = 1.0 / n_fft
    imag = -sin * scale
    imag[0] = 0.0
    if n_fft % 2 == 0:
        imag[-1] = 0.0
    synthesis = torch.cat([cos * scale * w, imag * w])
    return analysis.float().unsqueeze(1), synthesis.float().unsqueeze(1)


class _RealISTFTHead(nn.Module):
    """`ISTFTHead.forward` with real arithmetic only (ONNX has no complex tensors, and neither torch.fft
    nor fold's col2im traces to opset 17); same weights."""

    def __init__(self, head: ISTFTHead) -> None:
        super().__init__()
        self.head = head
        self.n_fft, self.hop = head.n_fft, head.hop_length
        self.shift = int(getattr(head, "frame_shift", 0))  # synthesis frames centred `shift` hops later
        analysis, synthesis = _dft_basis(head.n_fft, head.window)
        self.analysis: torch.Tensor
        self.synthesis: torch.Tensor
        self.window_square: torch.Tensor
        self.register_buffer("analysis", analysis, persistent=False)
        self.register_buffer("synthesis", synthesis, persistent=False)
        self.register_buffer("window_square", head.window.float().square().view(1, 1, -1), persistent=False)

    def forward(self, x: torch.Tensor, excitation: torch.Tensor | None) -> torch.Tensor:
        head, n_fft, hop = self.head, self.n_fft, self.hop
        h = head.out(x.transpose(1, 2)).transpose(1, 2).float()
        log_mag, phase = h.chunk(2, dim=1)
        if head.phase_advance:
            phase = phase + head.advance(phase.shape[-1], phase.device)
        mag = torch.exp(log_mag).clamp(max=1e2)
        real, imag = mag * torch.cos(phase), mag * torch.sin(phase)
        if excitation is not None:
            assert head.excitation_gain is not None
            # centred STFT (reflect padding) of the excitation as one strided convolution; frames past F dropped
            padded = pad1d(excitation.unsqueeze(1), n_fft // 2, n_fft // 2, "reflect")  # as dsp.stft.centered_stft
            source = F.conv1d(padded, self.analysis, stride=hop)
            source_re, source_im = source.chunk(2, dim=1)
            frames = torch._shape_as_tensor(x)[-1]
            gain = head.excitation_gain(x.transpose(1, 2)).transpose(1, 2).float().clamp(-1e2, 1e2)
            real = real + gain * source_re[..., self.shift : self.shift + frames]
            imag = imag + gain * source_im[..., self.shift : self.shift + frames]
        # inverse DFT, window and overlap-add in one transposed convolution, then torch.istft's
        # division by the overlap-added squared window and its cut of n_fft / 2 samples at each end
        wav = F.conv_transpose1d(torch.cat([real, imag], dim=1), self.synthesis, stride=hop)
        envelope = F.conv_transpose1d(torch.ones_like(real[:1, :1]), self.window_square, stride=hop)
        # (F - 1) hop + n_fft samples -> F hop from n_fft / 2 - shift * hop on (counted from the end past
        # them, so that the slice holds for any F), as dsp.stft.overlap_add_istft
        start = n_fft // 2 - self.shift * hop
        tail = n_fft - hop - start
        end = -tail if tail > 0 else None
        return wav[..., start:end] / envelope[..., start:end].clamp(min=1e-11)


def _frame_to_sample_rate(values: torch.Tensor, hop: int) -> torch.Tensor:
    """`dsp.oscillator.frame_to_sample_rate` with the frame count read from the tensor's shape in the
    graph (the same values)."""
    frames = torch._shape_as_tensor(values)[-1]
    samples = torch.arange(frames * hop, device=values.device, dtype=torch.float32)  # type: ignore[call-overload]
    t = (samples + 0.5) / hop - 0.5
    left = torch.minimum(t.floor().clamp(min=0), (frames - 1).float()).long()
    right = torch.minimum(left + 1, frames - 1)
    frac = (t - left.float()).clamp(0, 1)
    v = values.float()
    return v[:, left] * (1 - frac) + v[:, right] * frac


class _DecoderGraph(nn.Module):
    """(codes [B, max_codebooks, F], stages, start_frame, keep_end, phase [B]) -> (wav [B, 1, F * hop],
    the phase the window continuing at `keep_end` needs; `phase` itself when keep_end is 0)."""

    def __init__(self, model: Codec) -> None:
        super().__init__()
        self.model = model
        decoder = model.decoder
        self.head = _RealISTFTHead(decoder.head) if isinstance(decoder, VocosDecoder) else None

    def _quantized(self, codes: torch.Tensor, stages: torch.Tensor) -> torch.Tensor:
        q = self.model.quantizer
        parts = []
        for g, rvq in enumerate(q.rvqs):
            out = rvq.layers[0].decode(codes[:, g])
            for i in range(1, rvq.depth):  # stages beyond `stages` add exactly 0
                keep = (stages > i).to(out.dtype)
                out = out + rvq.layers[i].decode(codes[:, i * q.groups + g]) * keep
            parts.append(out)
        return torch.cat(parts, dim=1)

    def _vocos(self, quantized: torch.Tensor, excitation: torch.Tensor | None) -> torch.Tensor:
        """`VocosDecoder.forward` with the real-valued head."""
        z = self.model.decoder
        assert isinstance(z, VocosDecoder) and self.head is not None
        return self.head(z.features(quantized), excitation)

    def forward(
        self, codes: torch.Tensor, stages: torch.Tensor, start_frame: torch.Tensor, keep_end: torch.Tensor,
        phase: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        quantized = self._quantized(codes, stages)
        if self.head is None:  # no iSTFT head: the decoder exports as it is
            return m.decoder(quantized), phase
        if not m.decoder_uses_excitation:
            return self._vocos(quantized, None), phase
        assert m.pitch is not None
        hop, sr = m.hop_length, m.sample_rate
        f0, voicing = pitch_to_hz(m.pitch.predict(quantized))
        # the oscillator of models.pitch / dsp.oscillator, with the window's first frame and carried
        # phase as graph inputs (subtracting cycles at sample 0 and adding 0 change nothing, so a
        # whole-file decode gives torch's values)
        f0_n = _frame_to_sample_rate(f0, hop).clamp(min=0.0)
        cycles = torch.cumsum(f0_n.double() / sr, dim=-1)
        before = F.pad(cycles, (1, 0))
        cycles = cycles - before[:, start_frame * hop].unsqueeze(1) + phase.unsqueeze(1)
        voiced_n = _frame_to_sample_rate(voicing, hop).clamp(0, 1)
        excitation = harmonic_sum(f0_n, voiced_n, cycles, sr)
        wav = self._vocos(quantized, excitation)
        carried = torch.where(keep_end > 0, F.pad(cycles, (1, 0))[:, keep_end * hop], phase)
        return wav, carried


# ---- export ----------------------------------------------------------------------------------------
ENCODER_INPUTS, ENCODER_OUTPUTS = ["wav"], ["codes", "finite"]
DECODER_INPUTS, DECODER_OUTPUTS = ["codes", "stages", "start_frame", "keep_end", "phase"], ["wav", "phase_out"]


def _export_graph(graph: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                  dynamic: dict[str, dict[int, str]], opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes read as Python values (handled above)
        torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=opset, input_names=inputs,
                          output_names=outputs, dynamic_axes=dynamic, do_constant_folding=True)


def _probe_audio(model: CodecModel, batch: int, frames: int) -> torch.Tensor:
    """Tones with vibrato in noise: voiced enough for the pitch path to matter (seeded, reproducible)."""
    g = torch.Generator().manual_seed(frames)
    t = torch.arange(frames * model.hop_length) / model.sample_rate
    f0 = 100 + 150 * torch.rand(batch, 1, 1, generator=g)
    wav = 0.3 * torch.sin(2 * math.pi * f0 * t + 2 * torch.sin(2 * math.pi * 4 * t))
    return wav + 0.01 * torch.randn(wav.shape, generator=g)


def export(model: CodecModel, out_dir: str | os.PathLike, *, opset: int = OPSET, force: bool = False) -> dict[str, Any]:
    """Write encoder.onnx, decoder.onnx and onnx.json for `model` into `out_dir` (atomically: the
    folder appears whole or not at all); returns the description written to onnx.json. The graphs
    are checked against PyTorch at a few batch sizes and lengths; the largest audio difference
    is recorded as `max_abs_diff`."""
    onnx, _ = require_onnx()
    codec = _exportable(model)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise HificodecError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / INFO_FILE).is_file():
            raise HificodecError(f"{out}: folder is not empty and holds no ONNX export; choose another folder")
        if not force:
            raise HificodecError(f"{out}: an ONNX export is already there (--force replaces it)")
    hop, groups = codec.hop_length, codec.codebook_step
    kept = codec.num_codebooks
    training = codec.training
    codec.eval()
    codec.set_num_codebooks(codec.max_codebooks)  # the graphs hold every codebook; fewer are a prefix
    try:
        with atomic_directory(out) as tmp, torch.no_grad():
            wav = _probe_audio(codec, 2, 24)
            _export_graph(_EncoderGraph(codec), (wav,), tmp / ENCODER_FILE, ENCODER_INPUTS, ENCODER_OUTPUTS,
                          {"wav": {0: "batch", 2: "samples"}, "codes": {0: "batch", 2: "frames"}}, opset)
            codes = codec.encode(wav)
            dec_args = (codes, torch.tensor(codec.max_codebooks // groups), torch.tensor(0),
                        torch.tensor(codes.shape[-1]), torch.zeros(codes.shape[0], dtype=torch.float64))
            _export_graph(_DecoderGraph(codec).eval(), dec_args, tmp / DECODER_FILE, DECODER_INPUTS, DECODER_OUTPUTS,
                          {"codes": {0: "batch", 2: "frames"}, "phase": {0: "batch"}, "wav": {0: "batch", 2: "samples"},
                           "phase_out": {0: "batch"}}, opset)
            for name in (ENCODER_FILE, DECODER_FILE):
                onnx.checker.check_model(str(tmp / name))
            info: dict[str, Any] = {
                "format": FORMAT_VERSION, "model": codec.name, "release": codec.release,
                "model_hash": model_hash(codec), "sample_rate": codec.sample_rate, "hop_length": hop,
                "num_codebooks": codec.max_codebooks, "codebook_size": codec.codebook_size, "opset": opset,
                "torch": torch.__version__, "onnx": onnx.__version__,
            }
            info["sha256"] = {name: _sha256(tmp / name) for name in (ENCODER_FILE, DECODER_FILE)}
            info.update(_verify(codec, tmp, info))
            (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    finally:
        codec.set_num_codebooks(kept)
        codec.train(training)
    return info


def _verify(model: Codec, folder: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Run the fresh graphs against PyTorch (batch 1 and 3, three lengths): codes must agree (bar a rare
    tie within float rounding), audio within `max_abs_diff`, which is recorded."""
    backend = OnnxCodec(model, folder, info=info, threads=1)
    worst, mismatched, total = 0.0, 0, 0
    for batch, frames in ((1, 1), (3, 7), (1, 60)):
        wav = _probe_audio(model, batch, frames)
        codes, ours = model.encode(wav), backend.encode(wav)
        mismatched += int((codes != ours).sum())
        total += codes.numel()
        worst = max(worst, float((model.decode(codes) - backend.decode(codes)).abs().max()))
    if mismatched > max(1, total // 1000):
        raise HificodecError(
            f"{model.name}: the exported encoder disagrees with PyTorch on {mismatched} of {total} codes"
        )
    return {"max_abs_diff": worst, "code_mismatch": mismatched / total}


# ---- runtime ---------------------------------------------------------------------------------------
def read_info(folder: str | os.PathLike) -> dict[str, Any]:
    """onnx.json of an export folder, with a clear error when it is missing or unreadable."""
    path = Path(folder) / INFO_FILE
    if not Path(folder).is_dir():
        raise HificodecError(f"{folder}: no such ONNX export folder (make one with: hificodec export-onnx MODEL DIR)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HificodecError(
            f"{folder}: not an ONNX export folder (no {INFO_FILE}; hificodec export-onnx writes one)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HificodecError(f"{path}: unreadable ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_VERSION:
        raise HificodecError(
            f"{path}: an export of another format (this version reads format {FORMAT_VERSION}); export again "
            "(hificodec export-onnx)"
        )
    return info


class GraphDigestError(HificodecError):
    """An exported graph is not the one its onnx.json records (changed or damaged after the export)."""


def check_graphs(folder: str | os.PathLike, info: dict[str, Any]) -> None:
    """Raise GraphDigestError unless both graphs in `folder` have the SHA-256 that `info` records."""
    digests = info.get("sha256")
    if not isinstance(digests, dict):
        raise GraphDigestError(f"{Path(folder) / INFO_FILE}: records no SHA-256 of the graphs; export again "
                               "(hificodec export-onnx)")  # fmt: skip
    for name in (ENCODER_FILE, DECODER_FILE):
        path = Path(folder) / name
        if not path.is_file():
            raise HificodecError(f"{path}: missing; export again (hificodec export-onnx)")
        if _sha256(path) != digests.get(name):
            again = (f"delete {folder} and the next run exports it again" if _in_cache(path)
                     else "export it again (hificodec export-onnx MODEL DIR --force)")  # fmt: skip
            raise GraphDigestError(
                f"{path}: does not match its SHA-256 in {INFO_FILE}: the graph was changed or damaged after the "
                f"export; {again}"
            )


def _in_cache(path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(cache_root().resolve())
    except OSError:
        return False


def _session(ort: ModuleType, path: Path, options: Any, names: list[str]) -> Any:
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for missing and corrupt files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HificodecError(
            f"{path}: not a usable ONNX graph ({reason}); export it again (hificodec export-onnx)"
        ) from None
    got = [i.name for i in session.get_inputs()]
    if not set(got) <= set(names):
        raise HificodecError(f"{path}: takes inputs {got}, not those of a hificodec export ({names})")
    return session


def session_options(threads: int | None = None) -> Any:
    """CPU session options: `threads` intra-op threads (default torch.get_num_threads()), one inter-op
    thread (the graphs are a chain), every graph optimisation."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
    return options


class OnnxCodec(CodecModel):
    """A `CodecModel` whose encode, decode and decode_window run exported graphs with onnxruntime (CPU).

    Rates, config, release and model hash are the PyTorch model's it was exported from (checked against
    the export's onnx.json). `latent` (used once to measure the chunk context) runs that PyTorch model.
    """

    def __init__(
        self, model: CodecModel, folder: str | os.PathLike, *, threads: int | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _, ort = require_onnx()
        codec = _exportable(model)
        self.folder = Path(folder)
        self.info = info if info is not None else read_info(self.folder)
        own = model_hash(codec)
        if self.info.get("model_hash") != own:
            made_by = self.info.get("release") or f"'{self.info.get('model', '?')}'"
            ours = codec.release or f"'{codec.name}'"
            raise HificodecError(
                f"{self.folder}: these ONNX graphs were exported from {made_by} (model hash "
                f"{str(self.info.get('model_hash'))[:12]}), not from {ours} (model hash {own[:12]}); export this "
                "model's graphs (hificodec export-onnx)"
            )
        self.sample_rate, self.hop_length = codec.sample_rate, codec.hop_length
        self.codebook_size, self.max_codebooks = codec.codebook_size, codec.max_codebooks
        self.codebook_step, self.causal = codec.codebook_step, codec.causal
        self.decode_alignment = codec.decode_alignment
        self.config, self.release, self.model_dir = codec.config, codec.release, codec.model_dir
        self._model_hash = own
        self._model_dir = getattr(codec, "_model_dir", None)  # its own files (entropy tables) are there
        if getattr(codec, "_weights_hash", None) is not None:
            self._weights_hash = codec._weights_hash
        self._carries_phase = codec.decoder_uses_excitation
        self._source = (codec,)  # a tuple, not a submodule: the backend holds no parameters of its own
        self._num_codebooks = codec.num_codebooks
        check_graphs(self.folder, self.info)
        options = session_options(threads)
        self._encoder = _session(ort, self.folder / ENCODER_FILE, options, ENCODER_INPUTS)
        self._decoder = _session(ort, self.folder / DECODER_FILE, options, DECODER_INPUTS)
        self._decoder_inputs = [i.name for i in self._decoder.get_inputs()]

    @property
    def source(self) -> Codec:
        """The PyTorch model the graphs were exported from."""
        return self._source[0]

    def _set_active_codebooks(self, n: int) -> None:
        pass  # the graphs hold every codebook: encode keeps the first n, decode reads what it is given

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        padded = self._pad(wav)
        x = padded.detach().cpu().numpy()
        codes, finite = self._encoder.run(None, {"wav": np.ascontiguousarray(x)})
        if not bool(finite):
            raise HificodecError(
                f"{self.name}: the encoder produced NaN or infinite values (corrupt weights, or an input that "
                "is not finite)"
            )
        return torch.from_numpy(codes[:, : self.num_codebooks].copy()).to(padded.device)

    def latent(self, wav: torch.Tensor) -> torch.Tensor:
        return self.source.latent(wav)

    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        codes = as_codes(codes)
        wav, _ = self.decode_window(codes, 0, codes.shape[-1])
        return wav[..., :length] if length is not None else wav

    @torch.no_grad()
    def decode_window(
        self, codes: torch.Tensor, keep_start: int, keep_end: int, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        codes = as_codes(codes)
        if codes.dim() != 3:
            raise ValueError(f"{self.name}: expected codes of shape [batch, n_q, frames], got {tuple(codes.shape)}")
        batch, n, frames = codes.shape
        if n % self.codebook_step or not 0 < n <= self.max_codebooks:
            raise ValueError(
                f"{self.name}: got {n} codebooks; need a multiple of {self.codebook_step} up to {self.max_codebooks}"
            )
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"{self.name}: codes must lie in [0, {self.codebook_size})")
        if frames == 0:
            return torch.zeros(batch, 1, 0, device=codes.device), state
        full = np.zeros((batch, self.max_codebooks, frames), dtype=np.int64)
        full[:, :n] = codes.detach().cpu().numpy()
        phase = state.detach().double().cpu().reshape(batch).numpy() if state is not None else np.zeros(batch)
        feed = {
            "codes": full, "stages": np.array(n // self.codebook_step, dtype=np.int64),
            "start_frame": np.array(keep_start, dtype=np.int64), "keep_end": np.array(keep_end, dtype=np.int64),
            "phase": np.ascontiguousarray(phase, dtype=np.float64),
        }
        wav, carried = self._decoder.run(None, {k: feed[k] for k in self._decoder_inputs})
        out = torch.from_numpy(wav).to(codes.device)
        if not self._carries_phase or keep_end <= 0:
            return out, state
        return out, torch.from_numpy(carried).to(codes.device)

    def forward(self, wav: torch.Tensor) -> Any:  # type: ignore[override]
        raise HificodecError(f"{self.name}: the ONNX backend is for inference (encode / decode), not training")


def load(
    model: CodecModel,
    onnx_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    on_export: Callable[[Path], None] | None = None,
) -> OnnxCodec:
    """`model` run by onnxruntime: the graphs in `onnx_dir` (exported from this very model, or refused),
    or, without one, graphs exported on first use into the cache (`cache_root()` / model hash);
    `on_export(folder)` is told before such an export (it takes a while)."""
    require_onnx()
    codec = _exportable(model)
    if onnx_dir is not None:
        backend = OnnxCodec(codec, onnx_dir, threads=threads)
    else:
        folder = cache_root() / model_hash(codec)
        try:
            backend = OnnxCodec(codec, folder, threads=threads)
        except GraphDigestError:  # changed after its export: refused, as a model folder would be
            raise
        except HificodecError:  # none yet, or of an older format, or cut short: (re)export it
            shutil.rmtree(folder, ignore_errors=True)
            if on_export is not None:
                on_export(folder)
            export(codec, folder)
            backend = OnnxCodec(codec, folder, threads=threads)
    # the chunk context of the PyTorch model (measured once per model): chunk joins fall where they would
    set_context(backend, receptive_context(codec))
    return backend
