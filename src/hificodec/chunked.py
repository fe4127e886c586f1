"""Encode and decode audio of any length in bounded memory, without seams at chunk joins.

Every output frame (encode) or output sample (decode) of a convolutional codec depends on a finite
window of its input: the receptive field. A chunk is processed together with that much context on
both sides, and only its centre is kept, so the kept part is computed from exactly the same input as
in a whole-file pass (audio equal up to float rounding; codes identical for a convolutional encoder
such as the shipped model's, except where two codebook entries tie within float rounding). The context
is measured once per model by perturbation (`receptive_context`) or given explicitly (`Context`).

Recurrent encoders (the LSTM of Encodec / SoundStream) are the exception: their memory decays but never
ends, and the measured context keeps only what moves the output by more than `tolerance` of the largest
change, so codes in the first frames after a join can differ from a whole-file pass (tiny-encodec, 60 s
in 5 s chunks: up to 0.1 % of the codes). Raise the context (`set_context`) to shrink that.

`ChunkedEncoder` / `ChunkedDecoder` are push-style (feed blocks, get finished pieces back) so a file
can be streamed from disk to disk; `encode_chunked` / `decode_chunked` are whole-tensor shortcuts.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch

from .models.base import CodecModel

#: default chunk length (seconds of audio kept per model call). Models that normalise over time
#: (GroupNorm in the encoder: their measured context hits MAX_CONTEXT_SECONDS) give whole-file codes
#: only for inputs up to one chunk; longer inputs get codes from chunk-wise statistics.
DEFAULT_CHUNK_SECONDS = 30.0
#: context is capped at this many seconds per side (recurrent layers have an unbounded but decaying field:
#: what lies beyond the measured context can still flip a code, see the module docstring)
MAX_CONTEXT_SECONDS = 2.0


@dataclass(frozen=True)
class Context:
    """Frames of context a chunk needs on each side.

    encode_left/right: input frames (hops of audio) before/after an output code frame that affect it.
    decode_left/right: code frames before/after an output frame of audio that affect it.
    """

    encode_left: int
    encode_right: int
    decode_left: int
    decode_right: int


_CONTEXT_CACHE: weakref.WeakKeyDictionary[CodecModel, Context] = weakref.WeakKeyDictionary()


def set_context(model: CodecModel, context: Context) -> None:
    """Configure the chunk context of a model instead of measuring it."""
    _CONTEXT_CACHE[model] = context


def receptive_context(model: CodecModel, tolerance: float = 1e-4, margin: int = 1) -> Context:
    """The chunk context of `model`, measured once per model instance and cached.

    Measured by perturbing one frame of input and seeing which output frames move by more than
    `tolerance` times the largest change; `margin` extra frames are added on each side. Also honours
    `model.config["chunk_context"]` (a mapping with the four `Context` fields) when present.
    """
    if model in _CONTEXT_CACHE:
        return _CONTEXT_CACHE[model]
    configured = model.config.get("chunk_context") if isinstance(model.config, dict) else None
    if configured:
        ctx = Context(**{k: int(configured[k]) for k in Context.__dataclass_fields__})
    else:
        max_frames = max(2, math.ceil(MAX_CONTEXT_SECONDS * model.frame_rate))
        enc = _measure(model, "encode", max_frames, tolerance)
        dec = _measure(model, "decode", max_frames, tolerance)
        ctx = Context(
            encode_left=min(enc[0] + margin, max_frames), encode_right=min(enc[1] + margin, max_frames),
            decode_left=min(dec[0] + margin, max_frames), decode_right=min(dec[1] + margin, max_frames),
        )  # fmt: skip
    _CONTEXT_CACHE[model] = ctx
    return ctx


@torch.no_grad()
def _measure(model: CodecModel, which: str, max_frames: int, tolerance: float) -> tuple[int, int]:
    """(frames before, frames after) an output frame that influence it, by perturbing the centre frame."""
    hop = model.hop_length
    frames = 2 * max_frames + 3
    centre = frames // 2
    device = _device(model)
    gen = torch.Generator().manual_seed(1234)
    if which == "encode":
        wav = 0.1 * torch.randn(1, 1, frames * hop, generator=gen)
        bumped = wav.clone()
        bumped[..., centre * hop : (centre + 1) * hop] += 0.1 * torch.randn(hop, generator=gen)
        outs = [_encoder_response(model, x.to(device)) for x in (wav, bumped)]
    else:
        codes = torch.randint(0, model.codebook_size, (1, model.num_codebooks, frames), generator=gen)
        bumped = codes.clone()
        bumped[..., centre] = (bumped[..., centre] + 1 + model.codebook_size // 2) % model.codebook_size
        outs = [model.decode(x.to(device)).float().cpu() for x in (codes, bumped)]
        outs = [o[..., : frames * hop].reshape(1, 1, frames, hop).transpose(2, 3).reshape(1, hop, frames)
                for o in outs]  # fmt: skip
    change = (outs[1] - outs[0]).abs().amax(dim=(0, 1))
    moved = torch.nonzero(change > tolerance * change.max().clamp_min(1e-30)).flatten()
    if moved.numel() == 0:
        return 0, 0
    # A change at input frame `centre` reaching output frames [lo, hi] means output frame f reads
    # input frames [f - (hi - centre), f + (centre - lo)].
    lo, hi = int(moved.min()), int(moved.max())
    return max(0, hi - centre), max(0, centre - lo)


def _encoder_response(model: CodecModel, wav: torch.Tensor) -> torch.Tensor:
    """Continuous pre-quantizer latent [1, D, F] (more sensitive to context than codes)."""
    return model.latent(wav).float().cpu()


def default_chunk_frames(model: CodecModel, seconds: float = DEFAULT_CHUNK_SECONDS) -> int:
    return max(1, math.ceil(seconds * model.frame_rate))


def _device(model: CodecModel) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _ChunkedStream:
    """Buffers pushed input along its last axis and runs the model on chunks with context.

    Input is counted in units (`units_per_frame` units make one code frame: hop samples for the
    encoder, one code frame for the decoder); each chunk keeps `chunk` frames and reads `left` and
    `right` frames of context around them.
    """

    units_per_frame: int
    unit_name: str

    def __init__(self, model: CodecModel, total_frames: int, total_units: int, left: int, right: int, chunk: int):
        self.model = model
        self.hop = model.hop_length
        self.total_frames = total_frames
        self.total_units = total_units
        self.left, self.right, self.chunk = left, right, chunk
        self.align = 1  # windows start at a multiple of this many frames
        self.device = _device(model)
        self._buf: torch.Tensor | None = None  # input units from self._buf_start on
        self._buf_start = 0
        self._received = 0
        self.next_frame = 0

    def _process(self, piece: torch.Tensor, first: int, count: int) -> torch.Tensor:
        """Run the model on a window; return the `count` output frames starting at window frame `first`."""
        raise NotImplementedError

    def feed(self, block: torch.Tensor) -> list[torch.Tensor]:
        self._buf = block if self._buf is None else torch.cat([self._buf, block], dim=-1)
        self._received += block.shape[-1]
        if self._received > self.total_units:
            raise ValueError(f"received {self._received} {self.unit_name}, more than the announced {self.total_units}")
        return self._run()

    def finish(self) -> list[torch.Tensor]:
        if self._received != self.total_units:
            raise ValueError(f"received {self._received} {self.unit_name}, expected {self.total_units}")
        out = self._run()
        assert self.next_frame == self.total_frames
        return out

    def _window_start(self, frame: int) -> int:
        """First input frame of the window that keeps output frames from `frame` on."""
        start = max(0, frame - self.left)
        return start - start % self.align

    def _run(self) -> list[torch.Tensor]:
        k = self.units_per_frame
        out = []
        while self.next_frame < self.total_frames:
            keep_end = min(self.next_frame + self.chunk, self.total_frames)
            win_end = min((keep_end + self.right) * k, self.total_units)
            if win_end > self._received or self._buf is None:
                break
            win_start = self._window_start(self.next_frame) * k
            piece = self._buf[..., win_start - self._buf_start : win_end - self._buf_start]
            with torch.inference_mode():
                out.append(self._process(piece, self.next_frame - win_start // k, keep_end - self.next_frame))
            self.next_frame = keep_end
            drop = self._window_start(self.next_frame) * k - self._buf_start
            if drop > 0:
                self._buf = self._buf[..., drop:]
                self._buf_start += drop
        return out


class ChunkedEncoder(_ChunkedStream):
    """Push audio [B, n] (any block sizes) and get codes [B, n_q, f] back as soon as they are final.

    `total_samples` (the full length) must be known so the final chunk ends exactly where a whole-file
    pass would (the model pads the end itself). Memory: one chunk plus context.
    """

    unit_name = "samples"

    def __init__(
        self, model: CodecModel, total_samples: int, chunk_frames: int | None = None, context: Context | None = None
    ):
        ctx = context or receptive_context(model)
        chunk = chunk_frames or default_chunk_frames(model)
        super().__init__(
            model, model.num_frames(total_samples), total_samples, ctx.encode_left, ctx.encode_right, chunk
        )
        self.units_per_frame = self.hop

    def feed(self, block: torch.Tensor) -> list[torch.Tensor]:
        return super().feed(torch.as_tensor(block, dtype=torch.float32))

    def _process(self, piece: torch.Tensor, first: int, count: int) -> torch.Tensor:
        codes = self.model.encode(piece[:, None, :].to(self.device)).cpu()
        return codes[..., first : first + count]


class ChunkedDecoder(_ChunkedStream):
    """Push codes [B, n_q, f] and get audio [B, n] back as soon as it is final (F * hop samples in all;
    the caller trims to the original length)."""

    units_per_frame = 1
    unit_name = "frames"

    def __init__(
        self, model: CodecModel, total_frames: int, chunk_frames: int | None = None, context: Context | None = None
    ):
        ctx = context or receptive_context(model)
        chunk = chunk_frames or default_chunk_frames(model)
        super().__init__(model, total_frames, total_frames, ctx.decode_left, ctx.decode_right, chunk)
        self.align = max(1, int(model.decode_alignment))
        self._state: torch.Tensor | None = None  # what decode_window hands to the next window

    def feed(self, codes: torch.Tensor) -> list[torch.Tensor]:
        return super().feed(torch.as_tensor(codes, dtype=torch.long))

    def _process(self, piece: torch.Tensor, first: int, count: int) -> torch.Tensor:
        wav, self._state = self.model.decode_window(piece.to(self.device), first, first + count, self._state)
        return wav[:, 0].float().cpu()[:, first * self.hop : (first + count) * self.hop]


def encode_chunked(
    model: CodecModel, wav: torch.Tensor, chunk_frames: int | None = None, context: Context | None = None
) -> torch.Tensor:
    """wav [B, 1, T] or [B, T] -> codes [B, n_q, ceil(T / hop)], one chunk in memory at a time."""
    flat = wav.reshape(wav.shape[0], -1)
    enc = ChunkedEncoder(model, flat.shape[-1], chunk_frames, context)
    pieces = enc.feed(flat) + enc.finish()
    return torch.cat(pieces, dim=-1)


def decode_chunked(
    model: CodecModel,
    codes: torch.Tensor,
    length: int | None = None,
    chunk_frames: int | None = None,
    context: Context | None = None,
) -> torch.Tensor:
    """codes [B, n_q, F] -> wav [B, 1, length or F * hop]."""
    dec = ChunkedDecoder(model, codes.shape[-1], chunk_frames, context)
    wav = torch.cat(dec.feed(codes) + dec.finish(), dim=-1)
    return wav[:, None, : length if length is not None else wav.shape[-1]]
