"""Streaming encode and decode: code audio as it arrives, with state carried from push to push.

    enc = model.streaming_encoder()
    codes = enc.push(pcm)          # pcm [B, 1, n] (any n, even 1): the code frames now complete
    codes = enc.flush()            # end of stream: the end padding, the remaining frames
    dec = model.streaming_decoder()
    wav = dec.push(codes)          # codes [B, n_q, k]: the audio now complete
    wav = dec.flush()

The model's layers are turned into a graph of streaming nodes (`Stream`), each keeping only the
input it has not consumed yet: a convolution keeps its unconsumed tail and emits every output whose
input window is complete, applying its left padding (reflect or zeros, as the layer does) once at the
stream's start and its right padding at flush; per-frame operations (activations, LayerNorm over
channels, the latent norm, the quantizer, linear layers) are stateless; a residual `a(x) + b(x)` whose
branches lag differently sums what both have and keeps the rest; the pitch tracker computes a frame as
soon as its sample span has arrived; the iSTFT head overlap-adds frame by frame into a running buffer
(its window-square envelope accumulated the same way, so the stream's ends are what `torch.istft`
computes); the harmonic oscillator carries its running cycle count (float64) and the previous frame's
f0. Memory and time per pushed frame are constant however long the stream.

The result is the whole-signal computation (`model.encode`, `model.decode`) up to float rounding:
codes equal, audio within ~1e-6 (tests/models/test_streaming.py states the measured figures).

`algorithmic_latency(model)` derives from the same graph how far output lags input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp.oscillator import harmonic_sum, interpolation_weights
from ..dsp.padding import pad1d
from ..dsp.pitch import YinGeometry, pitch_features, yin_frames, yin_geometry
from ..errors import HificodecError
from ..modules.conv import SConv1d, extra_padding_for_conv1d
from ..modules.lstm import SLSTM
from ..modules.melencoder import MelEncoder
from ..modules.pitch import pitch_to_hz
from ..modules.seanet import SEANetEncoder, SEANetResnetBlock
from ..modules.vocos import ConvNeXtBlock, FrameUpsample, ISTFTHead, VocosDecoder
from ..pcm import as_audio, as_codes
from .base import CodecModel

Chunk = torch.Tensor | None  # None: no new output (cheaper than empty tensors through every layer)


def _cat(a: Chunk, b: Chunk) -> Chunk:
    if a is None:
        return b
    if b is None:
        return a
    return torch.cat([a, b], dim=-1)


def _length(x: Chunk) -> int:
    return 0 if x is None else int(x.shape[-1])


class Stream:
    """One streaming layer over the last (time) axis."""

    def push(self, x: Chunk) -> Chunk:
        """New input -> the outputs that are now complete (None when there are none)."""
        raise NotImplementedError

    def flush(self) -> Chunk:
        """End of stream: the right padding, the remaining outputs."""
        return None

    def state(self) -> list[torch.Tensor]:
        """The tensors it carries (their total size stays bounded over a stream)."""
        return []

    def ready(self, n: int) -> int:
        """Outputs complete after `n` inputs, in the steady state (for the latency)."""
        return n


class Pointwise(Stream):
    """A per-sample / per-frame function: no state."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def push(self, x: Chunk) -> Chunk:
        return None if x is None else self.fn(x)


class Chain(Stream):
    def __init__(self, nodes: Sequence[Stream]) -> None:
        merged: list[Stream] = []
        for node in nodes:  # runs of per-frame functions become one node (less Python per push)
            if isinstance(node, Pointwise) and merged and isinstance(merged[-1], Pointwise):
                merged[-1] = Pointwise(_compose(merged[-1].fn, node.fn))
            else:
                merged.append(node)
        self.nodes = merged

    def push(self, x: Chunk) -> Chunk:
        for node in self.nodes:
            x = node.push(x)
            if x is None:
                return None
        return x

    def flush(self) -> Chunk:
        out: Chunk = None
        for node in self.nodes:
            out = _cat(node.push(out), node.flush())
        return out

    def state(self) -> list[torch.Tensor]:
        return [t for node in self.nodes for t in node.state()]

    def ready(self, n: int) -> int:
        for node in self.nodes:
            n = node.ready(n)
        return n


def _compose(f: Callable[[torch.Tensor], torch.Tensor], g: Callable[[torch.Tensor], torch.Tensor]):
    return lambda x: g(f(x))


class Join(Stream):
    """Branches over the same input, combined position by position (a residual `a(x) + b(x)`): what
    every branch has is combined, the rest waits."""

    def __init__(self, branches: Sequence[Stream], combine: Callable[[list[torch.Tensor]], torch.Tensor]) -> None:
        self.branches = list(branches)
        self.combine = combine
        self.pending: list[Chunk] = [None] * len(self.branches)

    def push(self, x: Chunk) -> Chunk:
        if x is None:
            return None
        for i, branch in enumerate(self.branches):
            self.pending[i] = _cat(self.pending[i], branch.push(x))
        return self._emit()

    def _emit(self) -> Chunk:
        n = min(_length(p) for p in self.pending)
        if n == 0:
            return None
        parts = []
        for i, p in enumerate(self.pending):
            assert p is not None
            parts.append(p[..., :n])
            self.pending[i] = p[..., n:] if p.shape[-1] > n else None
        return self.combine(parts)

    def flush(self) -> Chunk:
        for i, branch in enumerate(self.branches):
            self.pending[i] = _cat(self.pending[i], branch.flush())
        out = self._emit()
        if any(p is not None for p in self.pending):
            raise HificodecError("streaming: the branches of a residual ended with different lengths")
        return out

    def state(self) -> list[torch.Tensor]:
        return [p for p in self.pending if p is not None] + [t for b in self.branches for t in b.state()]

    def ready(self, n: int) -> int:
        return min(branch.ready(n) for branch in self.branches)


def _add(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] + parts[1]


class Windows(Stream):
    """Windows of `size` samples every `stride` samples over a padded stream, as a padded conv or
    framing sees them: `left` samples of padding once at the start, `right` (plus the extra padding
    that completes the last window when `extra`) at flush, in `mode` (zeros, reflect or replicate).
    `compute(segment)` receives a contiguous stretch that covers whole windows and returns one output
    per window along its last axis.

    A reflect-padded stream waits until it holds more samples than its padding before it starts, and
    keeps the last `right + stride` samples for the reflection at the end; a stream that ends before
    it started is padded as a whole (`pad1d`, as the layer does for inputs shorter than its padding).
    """

    def __init__(
        self,
        compute: Callable[[torch.Tensor], torch.Tensor],
        size: int,
        stride: int,
        left: int,
        right: int,
        mode: str = "zeros",
        extra: bool = False,
    ) -> None:
        if mode == "constant":
            mode = "zeros"
        if mode not in ("zeros", "reflect", "replicate"):
            raise HificodecError(f"streaming is not supported for '{mode}' padding")
        self.compute = compute
        self.size, self.stride, self.left, self.right = size, stride, left, right
        self.mode = mode
        self.extra = extra
        edge = mode != "zeros"
        self.start_need = max(left + 1, right + stride) if edge else 0
        self.keep = right + stride if edge else 0
        self.buf: Chunk = None
        self.pos = 0  # where in buf the next window starts
        self.started = False
        self.total = 0

    def push(self, x: Chunk) -> Chunk:
        if x is None or x.shape[-1] == 0:
            return None
        self.total += x.shape[-1]
        self.buf = _cat(self.buf, x)
        if not self.started:
            assert self.buf is not None
            if self.buf.shape[-1] < self.start_need:
                return None
            self.buf = self._left_pad(self.buf)
            self.started = True
        return self._run()

    def _left_pad(self, x: torch.Tensor) -> torch.Tensor:
        if not self.left:
            return x
        if self.mode == "reflect":
            return torch.cat([x[..., 1 : self.left + 1].flip(-1), x], dim=-1)
        if self.mode == "replicate":
            return torch.cat([x[..., :1].expand(*x.shape[:-1], self.left), x], dim=-1)
        return F.pad(x, (self.left, 0))

    def _right_pad(self, x: torch.Tensor, n: int) -> torch.Tensor:
        length = x.shape[-1]
        if self.mode == "reflect":
            return x[..., length - n - 1 : length - 1].flip(-1)
        if self.mode == "replicate":
            return x[..., -1:].expand(*x.shape[:-1], n)
        return x.new_zeros(*x.shape[:-1], n)

    def _run(self) -> Chunk:
        buf = self.buf
        assert buf is not None
        length = buf.shape[-1]
        avail = length - self.pos
        if avail < self.size:
            return None
        n = (avail - self.size) // self.stride + 1
        end = self.pos + (n - 1) * self.stride + self.size
        out = self.compute(buf[..., self.pos : end])
        self.pos += n * self.stride
        cut = min(self.pos, length - self.keep)
        if cut > 0:
            self.buf = buf[..., cut:]
            self.pos -= cut
        return out

    def flush(self) -> Chunk:
        if self.total == 0 or self.buf is None:
            return None
        extra = 0
        if self.extra:
            extra = extra_padding_for_conv1d(self.total, self.size, self.stride, self.left + self.right)
        right = self.right + extra
        if not self.started:
            pad_mode = "zeros" if self.mode == "zeros" else self.mode
            self.buf = pad1d(self.buf, self.left, right, pad_mode)
            self.pos = 0
            self.started = True
        elif right:
            self.buf = torch.cat([self.buf, self._right_pad(self.buf, right)], dim=-1)
        out = self._run()
        self.buf = None
        return out

    def state(self) -> list[torch.Tensor]:
        return [self.buf] if self.buf is not None else []

    def ready(self, n: int) -> int:
        return max(0, (self.left + n - self.size) // self.stride + 1)


def conv_stream(module: nn.Module) -> Windows:
    """A streaming SConv1d or nn.Conv1d (its weight read once, as inference uses it)."""
    conv: nn.Conv1d
    if isinstance(module, SConv1d):
        conv = cast(nn.Conv1d, module.conv)
        k_eff = (module.kernel_size - 1) * module.dilation + 1
        pad = module.padding_total
        right = 0 if module.causal else pad // 2
        left, mode, extra = pad - right, module.pad_mode, True
    elif isinstance(module, nn.Conv1d):
        conv = module
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise HificodecError(f"streaming is not supported for Conv1d with padding {conv.padding!r}")
        k_eff = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        left = right = int(conv.padding[0])
        left += int(getattr(conv, "left_pad", 0))  # the Vocos backbone's causal convs pad on the left
        mode, extra = "zeros", False
    else:
        raise HificodecError(f"streaming is not supported for {type(module).__name__} layers")
    with torch.no_grad():
        weight = conv.weight.detach().clone()
        bias = conv.bias.detach() if conv.bias is not None else None
    stride, dilation, groups = conv.stride[0], conv.dilation[0], conv.groups
    return Windows(_conv_function(weight, bias, stride, dilation, groups), k_eff, stride, left, right, mode, extra)


#: below this many outputs per push a convolution runs as one matrix product over gathered windows: the
#: convolution kernels cost ~150 us a call on a few frames, mostly set-up (a stream pushes 20 ms at a time)
SMALL_PUSH = 1024


def _conv_function(
    weight: torch.Tensor, bias: torch.Tensor | None, stride: int, dilation: int, groups: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    out_channels, in_per_group, kernel = weight.shape
    k_eff = (kernel - 1) * dilation + 1
    depthwise = groups > 1 and groups == out_channels and in_per_group == 1
    flat = weight.reshape(out_channels, -1).t().contiguous() if groups == 1 else None  # [C * k, out]
    taps = weight.reshape(out_channels, kernel) if depthwise else None

    def compute(x: torch.Tensor) -> torch.Tensor:
        n = (x.shape[-1] - k_eff) // stride + 1
        if n > SMALL_PUSH or (flat is None and taps is None):
            return F.conv1d(x, weight, bias, stride, 0, dilation, groups)
        windows = x.unfold(-1, k_eff, stride)  # [B, C, n, k_eff]
        if dilation > 1:
            windows = windows[..., ::dilation]
        if taps is not None:  # depthwise: each channel its own taps
            y = (windows * taps[:, None, :]).sum(-1)
            return y if bias is None else y + bias[:, None]
        assert flat is not None
        cols = windows.permute(0, 2, 1, 3).reshape(x.shape[0], n, -1)  # [B, n, C * k]
        y = cols @ flat if bias is None else torch.addmm(bias, cols.reshape(-1, cols.shape[-1]), flat).view(
            x.shape[0], n, -1
        )
        return y.transpose(1, 2)

    return compute


class LSTMStream(Stream):
    """SLSTM with its (h, c) carried."""

    def __init__(self, module: SLSTM) -> None:
        self.module = module
        self.hc: tuple[torch.Tensor, torch.Tensor] | None = None

    def push(self, x: Chunk) -> Chunk:
        if x is None:
            return None
        t = x.permute(2, 0, 1)
        y, self.hc = self.module.lstm(t, self.hc)
        if self.module.skip:
            y = y + t
        return y.permute(1, 2, 0)

    def state(self) -> list[torch.Tensor]:
        return list(self.hc) if self.hc is not None else []


def _layer_norm_channels(norm: nn.LayerNorm) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: norm(x.transpose(1, 2)).transpose(1, 2)


def _convnext(block: ConvNeXtBlock) -> Stream:
    def mlp(y: torch.Tensor) -> torch.Tensor:
        y = block.pwconv2(block.act(block.pwconv1(block.norm(y.transpose(1, 2)))))
        return (block.gamma * y).transpose(1, 2)

    return Join([Pointwise(lambda x: x), Chain([conv_stream(block.dwconv), Pointwise(mlp)])], _add)


class Upsample(Stream):
    """A per-frame map that turns each input frame into `factor` output frames (`FrameUpsample`)."""

    def __init__(self, module: FrameUpsample) -> None:
        self.module = module

    def push(self, x: Chunk) -> Chunk:
        return None if x is None else self.module(x)

    def ready(self, n: int) -> int:
        return n * self.module.factor


def _mel_encoder(encoder: MelEncoder) -> Stream:
    front = encoder.frontend
    frames = Windows(front.frames, front.n_fft, front.hop_length, front.left_pad, front.right_pad, "reflect")
    return Chain([
        frames, conv_stream(encoder.embed), stream_of(encoder.blocks), conv_stream(encoder.down),
        stream_of(encoder.post), conv_stream(encoder.project),
    ])


_POINTWISE = (nn.ELU, nn.GELU, nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Identity, nn.SiLU)


def stream_of(module: nn.Module) -> Stream:
    """The streaming form of a layer of the architectures the shipped models use."""
    if isinstance(module, nn.Sequential):
        return Chain([stream_of(m) for m in module])
    if isinstance(module, SEANetEncoder):
        return stream_of(module.model)
    if isinstance(module, MelEncoder):
        return _mel_encoder(module)
    if isinstance(module, (SConv1d, nn.Conv1d)):
        return conv_stream(module)
    if isinstance(module, _POINTWISE):
        return Pointwise(module)
    if isinstance(module, SEANetResnetBlock):
        return Join([stream_of(module.shortcut), stream_of(module.block)], _add)
    if isinstance(module, SLSTM):
        return LSTMStream(module)
    if isinstance(module, ConvNeXtBlock):
        return _convnext(module)
    raise HificodecError(f"streaming is not supported for {type(module).__name__} layers")


# ---- pitch features ------------------------------------------------------------------------------
class YinStream(Stream):
    """The YIN tracker of `dsp.pitch.estimate_f0`, frame by frame: frame f reads samples
    [f * hop + offset, f * hop + offset + span) (zeros before the start and past the end) and is
    computed as soon as they have arrived."""

    def __init__(self, sample_rate: int, geometry: YinGeometry, threshold: float, silence_db: float) -> None:
        self.sample_rate = sample_rate
        self.g = geometry
        self.threshold, self.silence_db = threshold, silence_db
        self.base = min(0, geometry.offset)  # the sample index of buf[0]
        self.buf: torch.Tensor | None = None
        self.next = 0  # next frame
        self.total = 0

    def _start(self, f: int) -> int:
        return f * self.g.hop_length + self.g.offset - self.base

    def push(self, x: Chunk) -> Chunk:
        if x is None or x.shape[-1] == 0:
            return None
        x = x.reshape(x.shape[0], -1).float()
        self.total += x.shape[-1]
        if self.buf is None:
            self.buf = F.pad(x, (-self.base, 0)) if self.base < 0 else x
        else:
            self.buf = torch.cat([self.buf, x], dim=-1)
        n = max(0, (self.buf.shape[-1] - self._start(self.next) - self.g.span) // self.g.hop_length + 1)
        return self._frames(n)

    def _frames(self, n: int) -> Chunk:
        if n <= 0:
            return None
        assert self.buf is not None
        hop, span = self.g.hop_length, self.g.span
        s0 = self._start(self.next)
        seg = self.buf[:, s0 : s0 + (n - 1) * hop + span]
        track = yin_frames(seg.unfold(-1, span, hop), self.sample_rate, self.g, self.threshold, self.silence_db)
        self.next += n
        cut = min(self._start(self.next), self.buf.shape[-1])
        if cut > 0:
            self.buf = self.buf[:, cut:]
            self.base += cut
        return pitch_features(track)

    def flush(self) -> Chunk:
        if self.buf is None:
            return None
        frames_out = max(1, math.ceil(self.total / self.g.hop_length))
        n = frames_out - self.next
        need = self._start(frames_out - 1) + self.g.span - self.buf.shape[-1]
        if need > 0:
            self.buf = F.pad(self.buf, (0, need))
        out = self._frames(n)
        self.buf = None
        return out

    def state(self) -> list[torch.Tensor]:
        return [self.buf] if self.buf is not None else []

    def ready(self, n: int) -> int:
        return max(0, (n - self.g.offset - self.g.span) // self.g.hop_length + 1)


# ---- the decoder's oscillator and iSTFT head -----------------------------------------------------
class OscillatorStream(Stream):
    """Pitch-head frames [B, 2, n] -> the harmonic excitation [B, n * hop] (`models.pitch.excitation`):
    f0 and voicing interpolated between frame centres (`dsp.oscillator.interpolation_weights`: block
    f's second half needs frame f + 1), the running phase in cycles carried in float64."""

    def __init__(self, sample_rate: int, hop_length: int) -> None:
        self.sample_rate, self.hop = sample_rate, hop_length
        self.values: torch.Tensor | None = None  # [B, 2, m]: frames [base, base + m) (f0 Hz, voicing)
        self.base = 0
        self.rendered = 0  # blocks turned into samples
        self.cycles: torch.Tensor | None = None  # [B, 1] float64, the phase at the last rendered sample

    def push(self, x: Chunk) -> Chunk:
        if x is None:
            return None
        f0, voicing = pitch_to_hz(x.detach())
        values = torch.stack([f0, voicing], dim=1)
        self.values = values if self.values is None else torch.cat([self.values, values], dim=-1)
        return self._render(self.base + self.values.shape[-1] - 1, None)

    def _render(self, stop: int, frames: int | None) -> Chunk:
        """Blocks [rendered, stop) of a stream of `frames` frames (None: not known yet)."""
        if stop <= self.rendered or self.values is None:
            return None
        hop = self.hop
        left, right, frac = interpolation_weights(self.rendered * hop, stop * hop, hop, frames)
        v = self.values
        values = v[..., left - self.base] * (1 - frac) + v[..., right - self.base] * frac  # [B, 2, n * hop]
        f0_n, voiced_n = values[:, 0].clamp(min=0.0), values[:, 1].clamp(0, 1)
        steps = f0_n.double() / self.sample_rate
        if self.cycles is None:
            self.cycles = steps.new_zeros(steps.shape[0], 1)
        cycles = torch.cumsum(torch.cat([self.cycles, steps], dim=-1), dim=-1)[:, 1:]
        self.cycles = cycles[:, -1:]
        self.rendered = stop
        keep = max(0, stop - 1 - self.base)  # the next block's first half reads frame stop - 1
        if keep:
            self.values = v[..., keep:]
            self.base += keep
        return harmonic_sum(f0_n, voiced_n, cycles, self.sample_rate)

    def flush(self) -> Chunk:
        if self.values is None:
            return None
        frames = self.base + self.values.shape[-1]
        return self._render(frames, frames)

    def state(self) -> list[torch.Tensor]:
        return [t for t in (self.values, self.cycles) if t is not None]

    def ready(self, n: int) -> int:
        return max(0, n - 1) * self.hop


class HeadStream:
    """The iSTFT head frame by frame: each frame's spectrum (with the excitation's, gain-shaped), its
    inverse FFT windowed and overlap-added into a running buffer, divided by the window-square envelope
    accumulated alongside (constant inside the stream; at its ends what `dsp.stft.overlap_add_istft`
    divides by). Output sample t sits at position t + n_fft / 2 - frame_shift * hop of the overlap-add
    (frame k starts at position k * hop)."""

    def __init__(self, head: ISTFTHead) -> None:
        self.head = head
        self.n_fft, self.hop = head.n_fft, head.hop_length
        self.offset = head.n_fft // 2 - head.frame_shift * head.hop_length
        self.window = head.window.detach()
        self.square = self.window.square()
        self.frame = 0  # frames overlap-added so far
        self.written = self.offset  # next overlap-add position to output
        self.x: Chunk = None
        self.exc: Chunk = None
        self.acc: torch.Tensor | None = None  # [B, n_fft - hop] contributions to positions >= frame * hop
        self.env = torch.zeros(self.n_fft - self.hop)

    def push(self, x: Chunk, exc: Chunk) -> Chunk:
        self.x, self.exc = _cat(self.x, x), _cat(self.exc, exc)
        n = _length(self.x)
        if self.head.uses_excitation:
            n = min(n, _length(self.exc))
        if n == 0:
            return None
        assert self.x is not None
        frames = self._frames(self.x[..., :n], self.exc[..., :n] if self.exc is not None else None)
        self.x = self.x[..., n:] if self.x.shape[-1] > n else None
        if self.exc is not None:
            self.exc = self.exc[..., n:] if self.exc.shape[-1] > n else None
        return self._overlap_add(frames)

    def _frames(self, x: torch.Tensor, exc: torch.Tensor | None) -> torch.Tensor:
        head = self.head
        h = head.out(x.transpose(1, 2)).transpose(1, 2).float()
        log_mag, phase = h.chunk(2, dim=1)
        n = x.shape[-1]
        if head.phase_advance:
            k = torch.arange(head.n_fft // 2 + 1)
            t = torch.arange(self.frame, self.frame + n) % head.frame_period
            steps = (k[:, None] * head.hop_length * t[None, :]) % head.n_fft
            phase = phase + steps.float() * (2 * math.pi / head.n_fft)
        spec = torch.polar(torch.exp(log_mag).clamp(max=1e2), phase)
        if exc is not None:
            assert head.excitation_gain is not None
            gain = head.excitation_gain(x.transpose(1, 2)).transpose(1, 2).float().clamp(-1e2, 1e2)
            spec = spec + gain * exc
        self.frame += n
        return torch.fft.irfft(spec.transpose(1, 2), self.n_fft, dim=-1) * self.window  # [B, n, n_fft]

    def _overlap_add(self, frames: torch.Tensor) -> Chunk:
        batch, n, size = frames.shape
        hop = self.hop
        out = frames.new_zeros(batch, (n - 1) * hop + size)
        env = self.env.new_zeros((n - 1) * hop + size)
        if self.acc is not None:
            out[:, : size - hop] = self.acc
        env[: size - hop] = self.env
        for i in range(n):
            out[:, i * hop : i * hop + size] += frames[:, i]
            env[i * hop : i * hop + size] += self.square
        done = n * hop  # positions before the next frame's start are complete
        start = (self.frame - n) * hop  # overlap-add position of out[:, 0]
        self.acc, self.env = out[:, done:], env[done:]
        return self._emit(out, env, start, start + done)

    def _emit(self, out: torch.Tensor, env: torch.Tensor, start: int, end: int) -> Chunk:
        lo = max(self.written, start)
        if end <= lo:
            return None
        self.written = end
        return (out[:, lo - start : end - start] / env[lo - start : end - start].clamp(min=1e-11)).unsqueeze(1)

    def flush(self) -> Chunk:
        """The last frame's tail up to the stream's length (frames x hop samples)."""
        if self.acc is None:
            return None
        start = self.frame * self.hop
        return self._emit(self.acc, self.env, start, start + self.offset)

    def state(self) -> list[torch.Tensor]:
        return [t for t in (self.x, self.exc, self.acc, self.env) if t is not None]


# ---- the codec -----------------------------------------------------------------------------------
def _unsupported(model: CodecModel, part: str) -> HificodecError:
    return HificodecError(f"streaming is not supported for {model.name}: its {part}")


def _encoder_graph(model: Any) -> Stream:
    try:
        main = stream_of(model.encoder)
    except HificodecError as e:
        raise _unsupported(model, f"encoder ({type(model.encoder).__name__}): {e}") from None
    pitch = model.pitch
    if pitch is not None and pitch.input is not None and pitch.tracker is not None:
        t = pitch.tracker
        g = yin_geometry(model.sample_rate, model.hop_length, t.fmin, t.fmax, t.window_seconds, t.causal)
        features = Chain([YinStream(model.sample_rate, g, t.threshold, t.silence_db), conv_stream(pitch.input)])
        main = Join([main, features], _add)
    return main


class StreamingEncoder:
    """Push audio [B, 1, n] (or [n]) as it arrives, get the code frames [B, n_q, k] now complete;
    `flush()` ends the stream. Codes equal `model.encode` of the whole signal."""

    def __init__(self, model: CodecModel) -> None:
        self.model = model
        self.graph = _encoder_graph(model)
        self.samples = 0  # pushed so far
        self.frames = 0  # returned so far
        self.batch: int | None = None
        self.closed = False

    def _shape(self, pcm: torch.Tensor) -> torch.Tensor:
        pcm = as_audio(pcm)  # numpy or torch, float or integer PCM (scaled): hificodec.pcm
        if pcm.dim() == 1:
            pcm = pcm.view(1, 1, -1)
        if pcm.dim() != 3 or pcm.shape[1] != 1:
            raise ValueError(f"{self.model.name}: expected audio shaped [batch, 1, samples], got {tuple(pcm.shape)}")
        if self.batch is None:
            self.batch = pcm.shape[0]
        elif pcm.shape[0] != self.batch:
            raise ValueError(f"{self.model.name}: the stream's batch is {self.batch}, got {pcm.shape[0]}")
        return pcm

    def push(self, pcm: torch.Tensor) -> torch.Tensor:
        if self.closed:
            raise HificodecError("this streaming encoder has been flushed; start a new one")
        pcm = self._shape(pcm)
        self.samples += pcm.shape[-1]
        with torch.inference_mode():
            return self._codes(self.graph.push(pcm) if pcm.shape[-1] else None)

    def flush(self) -> torch.Tensor:
        """End of stream: pads to a whole frame as `encode` does and returns the remaining frames."""
        if self.closed:
            raise HificodecError("this streaming encoder has already been flushed")
        self.closed = True
        if self.samples == 0:
            raise ValueError(f"{self.model.name}: empty input")
        with torch.inference_mode():
            extra = -self.samples % self.model.hop_length
            assert self.batch is not None
            head = self.graph.push(torch.zeros(self.batch, 1, extra)) if extra else None
            return self._codes(_cat(head, self.graph.flush()))

    def _codes(self, latent: Chunk) -> torch.Tensor:
        model: Any = self.model
        if latent is None:
            return torch.zeros(self.batch or 1, model.num_codebooks, 0, dtype=torch.long)
        latent = model.latent_norm(latent)  # per frame (ChannelNorm or none)
        if not bool(torch.isfinite(latent).all()):
            raise HificodecError(
                f"{model.name}: the encoder produced NaN or infinite values (corrupt weights, or an input that "
                "is not finite)"
            )
        codes = model.quantizer.encode(latent)
        self.frames += codes.shape[-1]
        return codes

    def state(self) -> list[torch.Tensor]:
        return self.graph.state()


class StreamingDecoder:
    """Push code frames [B, n_q, k] as they arrive, get the audio [B, 1, n] now complete; `flush()`
    ends the stream. The audio equals `model.decode` of all the codes up to float rounding."""

    def __init__(self, model: CodecModel) -> None:
        m: Any = model
        self.model = model
        decoder = m.decoder
        if not isinstance(decoder, VocosDecoder):
            raise _unsupported(model, f"decoder ({type(decoder).__name__}) cannot stream yet")
        self.backbone = Chain([
            conv_stream(decoder.embed),
            Pointwise(_layer_norm_channels(decoder.norm)),
            *(_convnext(cast(ConvNeXtBlock, block)) for block in decoder.blocks),
            Pointwise(_layer_norm_channels(decoder.final_norm)),
            *([Upsample(decoder.upsampler)] if decoder.upsampler is not None else []),
            *(_convnext(cast(ConvNeXtBlock, block)) for block in decoder.upsampled_blocks),
        ])
        self.pitch: Stream | None = None
        self.oscillator: OscillatorStream | None = None
        self.framer: Windows | None = None
        head = decoder.head
        if m.decoder_uses_excitation:
            self.pitch = stream_of(m.pitch_head.net)
            self.oscillator = OscillatorStream(model.sample_rate, model.hop_length)
            window = head.window.detach()
            n_fft, hop = head.n_fft, head.hop_length

            def stft(seg: torch.Tensor) -> torch.Tensor:
                return torch.stft(seg, n_fft, hop, window=window, center=False, return_complex=True)

            self.framer = Windows(stft, n_fft, hop, n_fft // 2, n_fft // 2, "reflect")
        # the excitation's frames are centred where the synthesis frames are: frame_shift frames later
        self.skip_excitation = head.frame_shift
        self.head = HeadStream(head)
        self.frames = 0
        self.samples = 0
        self.closed = False

    def push(self, codes: torch.Tensor) -> torch.Tensor:
        if self.closed:
            raise HificodecError("this streaming decoder has been flushed; start a new one")
        m: Any = self.model
        codes = as_codes(codes)  # numpy or torch, any integer type
        if codes.dim() != 3:
            raise ValueError(f"{m.name}: expected codes of shape [batch, n_q, frames], got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= m.codebook_size):
            raise ValueError(f"{m.name}: codes must lie in [0, {m.codebook_size})")
        self.batch = codes.shape[0]
        if codes.shape[-1] == 0:
            return self._wav(None)
        self.frames += codes.shape[-1]
        with torch.inference_mode():
            q = m.quantizer.decode(codes.long())
            x = self.backbone.push(q)
            exc: Chunk = None
            if self.pitch is not None and self.oscillator is not None and self.framer is not None:
                exc = self._skip(self.framer.push(self.oscillator.push(self.pitch.push(q))))
            return self._wav(self.head.push(x, exc))

    def flush(self) -> torch.Tensor:
        if self.closed:
            raise HificodecError("this streaming decoder has already been flushed")
        self.closed = True
        with torch.inference_mode():
            x = self.backbone.flush()
            exc: Chunk = None
            if self.pitch is not None and self.oscillator is not None and self.framer is not None:
                pitch = self.pitch.flush()
                samples = _cat(self.oscillator.push(pitch), self.oscillator.flush())
                exc = self._skip(_cat(self.framer.push(samples), self.framer.flush()))
            return self._wav(_cat(self.head.push(x, exc), self.head.flush()))

    def _skip(self, exc: Chunk) -> Chunk:
        if exc is None or not self.skip_excitation:
            return exc
        n = min(self.skip_excitation, exc.shape[-1])
        self.skip_excitation -= n
        return exc[..., n:] if exc.shape[-1] > n else None

    def _wav(self, wav: Chunk) -> torch.Tensor:
        if wav is None:
            return torch.zeros(getattr(self, "batch", 1), 1, 0)
        self.samples += wav.shape[-1]
        return wav

    def state(self) -> list[torch.Tensor]:
        parts: list[Any] = [self.backbone, self.pitch, self.oscillator, self.framer, self.head]
        return [t for p in parts if p is not None for t in p.state()]

    def ready(self, frames: int) -> int:
        """Samples of audio complete after `frames` code frames, in the steady state."""
        n = self.backbone.ready(frames)
        if self.pitch is not None and self.oscillator is not None and self.framer is not None:
            shift = self.head.head.frame_shift
            n = min(n, self.framer.ready(self.oscillator.ready(self.pitch.ready(frames))) - shift)
        return max(0, n * self.head.hop - self.head.offset)


# ---- latency -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlgorithmicLatency:
    """How far a model's streamed output lags its input, from its architecture.

    encoder_lookahead: samples past the end of a frame the encoder needs before that frame's codes
    decoder_lookahead: samples; once frames [0, f] are decoded, audio is complete up to (f + 1) * hop
                       minus this
    total:             hop + both lookaheads: the longest time from an input sample's timestamp to
                       the moment the decoded sample at its position can be computed (the first
                       sample of a frame waits for the rest of the frame, then for both lookaheads)
    Compute time comes on top.
    """

    sample_rate: int
    hop_length: int
    encoder_lookahead: int
    decoder_lookahead: int

    @property
    def total(self) -> int:
        return self.hop_length + self.encoder_lookahead + self.decoder_lookahead

    def ms(self, samples: int) -> float:
        return 1000.0 * samples / self.sample_rate

    @property
    def frame_ms(self) -> float:
        return self.ms(self.hop_length)

    @property
    def encoder_lookahead_ms(self) -> float:
        return self.ms(self.encoder_lookahead)

    @property
    def decoder_lookahead_ms(self) -> float:
        return self.ms(self.decoder_lookahead)

    @property
    def total_ms(self) -> float:
        return self.ms(self.total)

    def __str__(self) -> str:
        return (
            f"{self.total_ms:g} ms ({self.frame_ms:g} ms frame + {self.encoder_lookahead_ms:g} ms encoder "
            f"lookahead + {self.decoder_lookahead_ms:g} ms decoder lookahead)"
        )


def algorithmic_latency(model: CodecModel) -> AlgorithmicLatency:
    """Read off the streaming graphs: the encoder's lookahead is what the encoder needs past a frame's
    end to emit it, the decoder's what its output lacks after a frame is pushed, both in the steady
    state (far from the stream's start)."""
    hop = model.hop_length
    encoder = _encoder_graph(model)
    decoder = StreamingDecoder(model)
    base = 1000  # a frame far from the start; every frame of the period must agree
    enc = dec = 0
    period = max(1, model.decode_alignment)
    for f in range(base, base + period):
        need = (f + 1) * hop  # the fewest samples after which frames [0, f] are out
        while encoder.ready(need) < f + 1:
            need += 1
        enc = max(enc, need - (f + 1) * hop)
        dec = max(dec, (f + 1) * hop - decoder.ready(f + 1))
    return AlgorithmicLatency(model.sample_rate, hop, enc, dec)
