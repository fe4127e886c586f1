"""What limits a model's quality: its score at each bitrate, with the quantizer bypassed, and on training
speakers against unseen ones.

    python scripts/rate_ladder.py MODEL [MODEL ...] --manifest corpus/16k/test.jsonl [--clips 300]
    python scripts/rate_ladder.py MODEL --manifest corpus/16k/train.jsonl --clips 300   # training speakers
    python scripts/rate_ladder.py runs/snap-* --manifest corpus/16k/test.jsonl --clips 60 --codebooks 4 \
        --no-unquantized    # one rate over a run's periodic exports: quality against training time

For each model, the same clips (spread over the manifest, at least --min-seconds long) are coded at
every bandwidth the model has, and once more with the decoder fed the encoder's continuous latent
("unquantized": every residual stage's projection without the choice of an entry, as with codebooks
of unlimited size; all stages).
If the unquantized score is far above the coded ones, bits (or the quantizer) hold quality down; if
it is close, the encoder/decoder (or their training) do. Scores are the evaluation's PESQ-WB and STOI
(hificodec.eval.metrics), printed as a Markdown table row per model and rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hificodec
from hificodec.audio import load_audio
from hificodec.data.manifest import read_entries
from hificodec.eval.metrics import MetricError, pesq_wb, stoi
from hificodec.eval.runner import spread_indices


def _unsnapped(quantizer, latent: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    """GRVQ with every stage's lookup replaced by its input: each stage still projects its residual into
    its (normalised, factorised) code space and back, but no entry is chosen, as with codebooks of
    unlimited size. The decoder was trained on snapped values, so this bounds what more bits per stage
    could give, not what a model trained without a quantizer would."""
    parts = []
    for rvq, chunk in zip(quantizer.rvqs, latent.chunk(quantizer.groups, dim=1)):
        residual, out = chunk, torch.zeros_like(chunk)
        for layer in rvq.layers:
            b, d, f = residual.shape
            stage = layer.project_out(layer._flatten(residual)).view(b, f, d).transpose(1, 2)
            out, residual = out + stage, residual - stage
        parts.append(out)
    return torch.cat(parts, dim=1)


@torch.inference_mode()
def unquantized(model: hificodec.CodecModel, wav: torch.Tensor) -> torch.Tensor:
    """The decoder on every stage's un-snapped projection (`_unsnapped`), the pitch head reading it."""
    m: Any = model
    q = _unsnapped(m.quantizer, m.latent(wav))
    pitch = m.pitch.predict(q) if m.decoder_uses_excitation and m.pitch is not None else None
    audio, _ = m._synthesize(q, pitch, 0, 0, None)
    return audio[..., : wav.shape[-1]]


@torch.inference_mode()
def coded(model: hificodec.CodecModel, wav: torch.Tensor, n_q: int) -> torch.Tensor:
    model.set_num_codebooks(n_q)
    return model.decode(model.encode(wav), wav.shape[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model names, release ids or folders")
    p.add_argument("--manifest", required=True)
    p.add_argument("--clips", type=int, default=300)
    p.add_argument("--min-seconds", type=float, default=0.5)
    p.add_argument("--codebooks", type=int, nargs="+", default=None,
                   help="only these codebook counts (default: every count the model has)")
    p.add_argument("--no-unquantized", action="store_true", help="skip the un-snapped row")
    p.add_argument("--label", default=None, help="the clip set's name in the table (default: the manifest's)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    entries = [e for e in read_entries(args.manifest) if e.duration >= args.min_seconds and not e.synthetic]
    if not entries:
        print(f"rate_ladder: no clips of at least {args.min_seconds} s in {args.manifest}", file=sys.stderr)
        return 1
    picked = [entries[i] for i in spread_indices(len(entries), min(args.clips, len(entries)))]
    label = args.label or Path(args.manifest).stem
    print("| model | clips | rate | kbps | PESQ-WB | STOI |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        model = hificodec.load(name)
        clips = [load_audio(e.path, sample_rate=model.sample_rate, mono=True)[0][0] for e in picked]
        variants: list[tuple[str, float | None, int | None]] = [] if args.no_unquantized else [
            ("unquantized", None, None)]
        step = model.codebook_step
        counts = range(step, model.max_codebooks + 1, step)
        unknown = sorted(set(args.codebooks or []) - set(counts))
        if unknown:
            print(f"rate_ladder: {name} codes {list(counts)} codebooks, not {unknown}", file=sys.stderr)
            return 1
        for n_q in args.codebooks or counts:
            variants.append((f"{n_q} codebooks", n_q * model.bits_per_code * model.frame_rate / 1000, n_q))
        for what, kbps, n_q in variants:
            pesqs, stois = [], []
            for audio in clips:
                wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).view(1, 1, -1)
                out = unquantized(model, wav) if n_q is None else coded(model, wav, n_q)
                deg = out.reshape(-1).numpy().astype(np.float64)
                try:
                    pesqs.append(pesq_wb(audio, deg, model.sample_rate))
                    stois.append(stoi(audio, deg, model.sample_rate))
                except MetricError:
                    continue
            rate = "-" if kbps is None else f"{kbps:g}"
            print(f"| {name} | {len(pesqs)} ({label}) | {what} | {rate} | {statistics.mean(pesqs):.3f} | "
                  f"{statistics.mean(stois):.3f} |", flush=True)
        model.set_num_codebooks(model.max_codebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
