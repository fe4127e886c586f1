"""Entropy coding of the codes: coded kbps vs the raw rate, and code-level speed on one core.

    python bench/entropy.py                                # the bundled clip (quick; few codes)
    python bench/entropy.py --tokens runs/tokens-test      # a `hificodec tokenize` folder (the real figure)

Each utterance is coded as a .hfc file codes it (frame groups of 256 frames, each coded on its own),
side by side with a per-codebook unigram range coder fitted on the benchmark's own codes (an
optimistic baseline: it has seen the data it codes) and with gzip / xz / zstd of each utterance's
packed payload. Speed is entropy encode + decode of the codes (no neural
network) in multiples of real time, on one thread.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import emit  # noqa: E402

import hificodec  # noqa: E402
from hificodec.bitstream import DEFAULT_GROUP_FRAMES, pack_codes  # noqa: E402
from hificodec.compress import entropy_tables  # noqa: E402
from hificodec.entropy import EntropyTables, load_tables  # noqa: E402


def load_codes(tokens: str | None, model: hificodec.CodecModel) -> tuple[list[np.ndarray], float]:
    """Code arrays [n_q, frames] and the frame rate."""
    if tokens:
        files = sorted((Path(tokens) / "codes").rglob("*.npy"))
        return [np.load(f, allow_pickle=False).astype(np.int64) for f in files], model.frame_rate
    import torch

    from hificodec.audio import load_audio
    from hificodec.demo import bundled_clip

    audio, _ = load_audio(bundled_clip(), sample_rate=model.sample_rate, mono=True)
    with torch.inference_mode():
        codes = model.encode(torch.from_numpy(audio).unsqueeze(0))[0].numpy()
    return [codes], model.frame_rate


def groups(codes: np.ndarray) -> list[np.ndarray]:
    return [codes[:, i : i + DEFAULT_GROUP_FRAMES] for i in range(0, codes.shape[1], DEFAULT_GROUP_FRAMES)]


def unigram_bits(all_codes: list[np.ndarray], size: int) -> float:
    """Bits a per-codebook unigram range coder needs (constriction, fitted on these very codes)."""
    import constriction

    n_q = all_codes[0].shape[0]
    total = 0
    for q in range(n_q):
        counts = np.bincount(np.concatenate([c[q] for c in all_codes]), minlength=size) + 0.5
        model = constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)
        for c in all_codes:
            for g in groups(c):
                enc = constriction.stream.queue.RangeEncoder()
                enc.encode(g[q].astype(np.int32), model)
                total += enc.get_compressed().size * 32
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", help="`hificodec tokenize` output folder (default: the bundled clip)")
    parser.add_argument("--model", default=hificodec.DEFAULT_MODEL)
    parser.add_argument("--tables", help="entropy tables file (default: the model's release tables)")
    args = parser.parse_args()

    model = hificodec.load(args.model)
    tables: EntropyTables | None = load_tables(args.tables) if args.tables else entropy_tables(model)
    if tables is None:
        raise SystemExit(f"{args.model} has no entropy tables; pass --tables")
    all_codes, frame_rate = load_codes(args.tokens, model)
    frames = sum(c.shape[1] for c in all_codes)
    seconds = frames / frame_rate
    raw_kbps = model.frame_rate * all_codes[0].shape[0] * model.bits_per_code / 1000

    tables.probabilities(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64))  # builds the rows
    coded_bytes, t_enc, t_dec, exact = 0, 0.0, 0.0, True
    for codes in all_codes:
        for g in groups(codes):
            t0 = time.perf_counter()
            data = tables.encode(g[None])
            t1 = time.perf_counter()
            back = tables.decode(data, 1, g.shape[1])
            t2 = time.perf_counter()
            t_enc, t_dec = t_enc + t1 - t0, t_dec + t2 - t1
            coded_bytes += len(data)
            exact &= bool(np.array_equal(back[0], g))
    kbps = {"context model (ours)": coded_bytes * 8 / seconds / 1000}
    kbps["unigram range coder"] = unigram_bits(all_codes, model.codebook_size) / seconds / 1000
    packed = [pack_codes(c, model.bits_per_code) for c in all_codes]
    import zstandard

    for name, compress in (("gzip -9", lambda b: gzip.compress(b, 9)), ("xz -9", lambda b: lzma.compress(b, preset=9)),
                           ("zstd -19", lambda b: zstandard.ZstdCompressor(level=19).compress(b))):  # fmt: skip
        kbps[name] = sum(len(compress(p)) for p in packed) * 8 / seconds / 1000

    print(f"{len(all_codes)} utterances, {seconds / 60:.1f} min of audio, {frames} frames; model "
          f"{model.release or model.name}, tables {tables.id}; raw {raw_kbps:g} kbps; 1 thread")  # fmt: skip
    print(f"{'coder':24s} {'kbps':>7s} {'vs raw':>7s}")
    for name, value in kbps.items():
        print(f"{name:24s} {value:7.3f} {100 * (value / raw_kbps - 1):+6.1f} %")
    rtf = {"encode": seconds / t_enc, "decode": seconds / t_dec, "encode+decode": seconds / (t_enc + t_dec)}
    print("speed (x real time): " + ", ".join(f"{k} {v:.0f}" for k, v in rtf.items()) + f"; round trip exact: {exact}")
    emit("entropy", {"raw_kbps": raw_kbps, "kbps": kbps, "rtf": rtf, "exact": exact, "minutes": seconds / 60})
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
