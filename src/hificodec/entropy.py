"""Lossless entropy coding of codec codes: a small context model and a range coder (`constriction`).

The context model predicts each code from two neighbours: the same codebook's code in the previous
frame, and (for codebooks that have one) a *parent* codebook's code in the same frame (the one that
tells most about it on the fitting data: a residual stage's lower stage, or the other group's code).
Each neighbour enters through its *class* (codes whose successors are distributed alike share one;
k-means on the rows of the co-occurrence counts), so the tables stay small. The two conditional
distributions are combined as a product of experts with per-codebook weights, relative to the
codebook's unigram, and smoothed so that every code keeps a non-zero probability: any code array
round-trips exactly.

Coding must be bit-exact on every machine, so rows are computed with integers only: log-probabilities
are stored as fixed-point integers, combined with integer weights, and turned into frequencies through
an exponential table stored with them; the range coder gets frequency / total, the same floats
everywhere. Frame groups are coded independently (the first frame of a group uses a "start" row), so a
reader needs only the groups it has. Everything here works on integer codes, with no model and no
torch: tables are bound to a model through the model hash they were fitted for.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import HificodecError
from .files import read_safetensors

#: file name of a model's entropy tables, next to its weights
TABLES_FILE = "entropy.safetensors"
PREVIOUS_CLASSES = 16
PARENT_CLASSES = 64
SMOOTHING = 50.0
#: held-out codes scored per codebook when choosing the experts' weights
WEIGHT_FIT_CODES = 8000
#: bits per code a parent must save (on held-out frames) to be used
MIN_PARENT_GAIN = 0.05
#: fixed point: log-probabilities in 1/LOG_UNITS bit, expert weights in 1/WEIGHT_UNITS
LOG_UNITS = 64
WEIGHT_UNITS = 8
#: the exponential table spans this many bits below a row's most likely code (beyond: frequency 1)
EXP_BITS = 30
#: decoding may not produce more codes than this many per byte of coded data (plus a small allowance),
#: so that a crafted file cannot make the decoder work far beyond its size; the writer pads a group that
#: compresses better than that (only near-constant groups do)
MAX_SYMBOLS_PER_BYTE = 64
_MIN_BYTES_FREE = 8
_TENSORS = ("previous_class", "previous_log", "parent", "parent_class", "parent_log", "unigram_log", "weights",
            "exp_table")  # fmt: skip


class EntropyError(HificodecError):
    """Entropy tables that cannot be used: missing, corrupt, or fitted for another model."""


@dataclass(frozen=True)
class EntropyTables:
    """The context model, all integers (shapes: n_q codebooks of V codes).

    model_hash:     the codec model the tables were fitted for (its `model_hash`)
    previous_class: [n_q, V] class of the previous frame's code; row K1 of `previous_log` is the start
    previous_log:   [n_q, K1 + 1, V] log2 P(code | previous class), in 1/LOG_UNITS bit
    parent:         [n_q] the parent codebook in the same frame, -1 for none (parents come first)
    parent_class:   [n_q, V] class of the parent's code
    parent_log:     [n_q, K2, V] log2 P(code | parent class), in 1/LOG_UNITS bit
    unigram_log:    [n_q, V] log2 P(code), in 1/LOG_UNITS bit
    weights:        [n_q, 2] the experts' weights (previous, parent), in 1/WEIGHT_UNITS
    exp_table:      [EXP_BITS * LOG_UNITS] frequency for a code that many 1/LOG_UNITS bits below the best
    """

    model_hash: str
    previous_class: np.ndarray
    previous_log: np.ndarray
    parent: np.ndarray
    parent_class: np.ndarray
    parent_log: np.ndarray
    unigram_log: np.ndarray
    weights: np.ndarray
    exp_table: np.ndarray

    def __post_init__(self) -> None:
        n_q, size = self.previous_class.shape
        shapes_ok = (
            self.previous_log.ndim == 3 and self.previous_log.shape[0] == n_q and self.previous_log.shape[2] == size
            and self.parent.shape == (n_q,) and self.parent_class.shape == (n_q, size)
            and self.parent_log.ndim == 3 and self.parent_log.shape[::2] == (n_q, size)
            and self.unigram_log.shape == (n_q, size) and self.weights.shape == (n_q, 2)
            and self.exp_table.ndim == 1 and self.exp_table.size > 0
        )  # fmt: skip
        if not shapes_ok:
            raise EntropyError("entropy tables: the arrays' shapes do not fit together")
        k1, k2 = self.previous_log.shape[1] - 1, self.parent_log.shape[1]
        ranges_ok = (
            self.previous_class.min() >= 0 and self.previous_class.max() < k1
            and self.parent_class.min() >= 0 and self.parent_class.max() < k2
            and all(-1 <= p < q for q, p in enumerate(self.parent.tolist()))
            and self.weights.min() >= 0 and self.weights.max() <= 4 * WEIGHT_UNITS
            and self.exp_table.min() >= 1 and self.exp_table.max() < 2**40
            and max(np.abs(t).max() for t in (self.previous_log, self.parent_log, self.unigram_log)) < 2**20
        )  # fmt: skip
        if not ranges_ok:
            raise EntropyError("entropy tables: a class, parent, weight or table value is out of range")

    @property
    def num_codebooks(self) -> int:
        return int(self.previous_class.shape[0])

    @property
    def codebook_size(self) -> int:
        return int(self.previous_class.shape[1])

    @property
    def id(self) -> str:
        """16 hex digits over the tables: what a coded file names, so that it is decoded with the same ones."""
        h = hashlib.sha256(b"hificodec-entropy\0" + self.model_hash.encode("ascii"))
        for name in _TENSORS:
            h.update(np.ascontiguousarray(getattr(self, name), dtype="<i8").tobytes())
        return h.hexdigest()[:16]

    @property
    def levels(self) -> list[np.ndarray]:
        """Codebooks in decoding order: level 0 has no parent, level k's parents are in level k - 1."""
        depth = np.zeros(self.num_codebooks, dtype=np.int64)
        for q, p in enumerate(self.parent.tolist()):
            depth[q] = 0 if p < 0 else depth[p] + 1
        return [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]

    # ---- probabilities ----------------------------------------------------------------------
    @functools.cached_property
    def _row_cache(self) -> np.ndarray:
        """Every row the model can give: [n_q, (K1 + 1) * K2, V], indexed by previous class * K2 + parent
        class (computed once; coding then only gathers rows)."""
        k_prev, k_par = self.previous_log.shape[1], self.parent_log.shape[1]
        prev_idx, par_idx = np.divmod(np.arange(k_prev * k_par), k_par)
        out = np.empty((self.num_codebooks, k_prev * k_par, self.codebook_size))
        for q in range(self.num_codebooks):
            w_par = self.weights[q, 1] if self.parent[q] >= 0 else 0
            out[q] = _mix(
                self.previous_log[q, prev_idx], self.parent_log[q, par_idx], self.unigram_log[q][None],
                int(self.weights[q, 0]), int(w_par), self.exp_table,
            )  # fmt: skip
        return out

    def probabilities(self, codebooks: np.ndarray, previous: np.ndarray, parent_codes: np.ndarray) -> np.ndarray:
        """Rows [N, V] of P(code) for N codes of `codebooks` [N], given the previous frame's code
        (-1 at a group's start) and the parent's code in the same frame (ignored without a parent),
        each [N]. Integer arithmetic up to the last division, so every machine gets the same floats."""
        q = np.asarray(codebooks, dtype=np.int64)
        k_start, k_par = self.previous_log.shape[1] - 1, self.parent_log.shape[1]
        prev = np.asarray(previous, dtype=np.int64)
        prev_class = np.where(prev < 0, k_start, self.previous_class[q, np.maximum(prev, 0)])
        has_parent = self.parent[q] >= 0
        par_class = np.where(has_parent, self.parent_class[q, np.where(has_parent, parent_codes, 0)], 0)
        return self._row_cache[q, prev_class * k_par + par_class]

    # ---- coding -----------------------------------------------------------------------------
    def _order(self, channels: int, codebooks: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(channel, codebook) index pairs of one frame, level by level: the decoder's order. Only the
        first `codebooks` are coded (a model set to fewer codebooks uses a prefix of them; parents come
        first, so a prefix has its parents)."""
        out = []
        for level in self.levels:
            level = level[level < codebooks]
            if not level.size:
                continue
            ch, cb = np.meshgrid(np.arange(channels), level, indexing="ij")
            out.append((ch.reshape(-1), cb.reshape(-1)))
        return out

    def _in_coding_order(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """codes [channels, n_q, frames] -> (symbols [N], their probability rows [N, V]) in the order the
        decoder recovers them: frame by frame, and within a frame level by level."""
        channels, n_q, frames = codes.shape
        previous = np.concatenate([np.full((channels, n_q, 1), -1), codes[:, :, :-1]], axis=2)
        parents = codes[:, np.maximum(self.parent[:n_q], 0), :]
        order = self._order(channels, n_q)
        ch_frame, cb_frame = np.concatenate([c for c, _ in order]), np.concatenate([b for _, b in order])
        ch, cb = np.tile(ch_frame, frames), np.tile(cb_frame, frames)
        t = np.repeat(np.arange(frames), ch_frame.size)
        return codes[ch, cb, t], self.probabilities(cb, previous[ch, cb, t], parents[ch, cb, t])

    def encode(self, codes: np.ndarray) -> bytes:
        """codes [channels, n_q, frames] (n_q: all the tables' codebooks or a prefix of them) -> coded bytes
        (a whole number of 32-bit words)."""
        import constriction

        symbols, rows = self._in_coding_order(self._check(codes))
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(symbols.astype(np.int32), constriction.stream.model.Categorical(perfect=False), rows)
        data = encoder.get_compressed().astype("<u4").tobytes()
        floor = max_symbols_floor(symbols.size)
        return data + bytes(-(-max(floor - len(data), 0) // 4) * 4)

    def decode(self, data: bytes, channels: int, frames: int, codebooks: int | None = None) -> np.ndarray:
        """Inverse of `encode`: codes [channels, codebooks, frames] int64 (default: all the codebooks)."""
        import constriction

        n_q = self.num_codebooks if codebooks is None else codebooks
        if not 0 < n_q <= self.num_codebooks:
            raise EntropyError(f"the entropy tables code up to {self.num_codebooks} codebooks, not {n_q}")
        count = channels * n_q * frames
        if len(data) % 4:
            raise EntropyError("entropy-coded data is not a whole number of 32-bit words")
        if len(data) < max_symbols_floor(count):
            raise EntropyError(f"entropy-coded group of {len(data)} bytes claims {count} codes: too many")
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        family = constriction.stream.model.Categorical(perfect=False)
        out = np.empty((channels, n_q, frames), dtype=np.int64)
        previous = np.full((channels, n_q), -1, dtype=np.int64)
        parent = np.maximum(self.parent[:n_q], 0)
        order = self._order(channels, n_q)
        try:
            for t in range(frames):
                for ch, cb in order:
                    rows = self.probabilities(cb, previous[ch, cb], out[ch, parent[cb], t])
                    out[ch, cb, t] = np.asarray(decoder.decode(family, rows), dtype=np.int64)
                previous = out[:, :, t]
        except (ValueError, RuntimeError, AssertionError) as e:
            raise EntropyError(f"entropy-coded data does not decode ({e})") from None
        return out

    def _check(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.ndim != 3 or not 0 < codes.shape[1] <= self.num_codebooks:
            raise EntropyError(f"the entropy tables code up to {self.num_codebooks} codebooks, got codes {codes.shape}")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise EntropyError(f"codes must lie in [0, {self.codebook_size})")
        return codes.astype(np.int64)

    def bits_per_code(self, codes: Iterable[np.ndarray]) -> float:
        """Mean ideal code length (bits per code) of code arrays [n_q, frames], each coded as one group."""
        bits, count = 0.0, 0
        for c in codes:
            symbols, rows = self._in_coding_order(self._check(np.asarray(c)[None]))
            bits += float(-np.log2(rows[np.arange(symbols.size), symbols]).sum())
            count += symbols.size
        return bits / max(count, 1)

    # ---- files ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the tables as safetensors (atomically: temp file, then rename)."""
        from safetensors.numpy import save_file

        from .files import atomic_output

        out = Path(path)
        meta = {"format": "hificodec-entropy", "version": "1", "model_hash": self.model_hash, "id": self.id}
        tensors = {name: np.ascontiguousarray(getattr(self, name)) for name in _TENSORS}
        tensors = {k: v.astype(np.int64 if k == "exp_table" else np.int32) for k, v in tensors.items()}
        with atomic_output(out) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return out


def _mix(
    previous_log: np.ndarray, parent_log: np.ndarray, unigram_log: np.ndarray, w_prev: np.ndarray | int,
    w_par: np.ndarray | int, exp_table: np.ndarray,
) -> np.ndarray:
    """Rows of P(code) from the two experts' log rows [N, V] and the unigram's, all in 1/LOG_UNITS bit:
    score = w_prev log P(c | previous) + w_par log P(c | parent) - (w_prev + w_par - 1) log P(c), then
    frequencies from the exponential table. Integers up to the last division (bit-exact everywhere)."""
    score = (
        np.asarray(w_prev, dtype=np.int64) * previous_log.astype(np.int64)
        + np.asarray(w_par, dtype=np.int64) * parent_log.astype(np.int64)
        - (np.asarray(w_prev, dtype=np.int64) + w_par - WEIGHT_UNITS) * unigram_log.astype(np.int64)
    )  # in 1/(LOG_UNITS * WEIGHT_UNITS) bit
    below = (score.max(axis=1, keepdims=True) - score) // WEIGHT_UNITS
    freq = exp_table[np.minimum(below, exp_table.size - 1)].astype(np.int64)
    return freq / freq.sum(axis=1, keepdims=True)


def max_symbols_floor(count: int) -> int:
    """Fewest coded bytes a group of `count` codes may have (see MAX_SYMBOLS_PER_BYTE)."""
    return max(0, -(-count // MAX_SYMBOLS_PER_BYTE) - _MIN_BYTES_FREE)


def load_tables(path: str | os.PathLike) -> EntropyTables:
    """Read tables written by `EntropyTables.save`, with a clear error for anything else."""
    p = Path(path)
    if not p.is_file():
        raise EntropyError(f"{p}: no such entropy tables file")
    try:
        meta, tensors = read_safetensors(p, framework="numpy")
    except ValueError as e:
        raise EntropyError(f"{p}: unreadable entropy tables ({e})") from None
    if meta.get("format") != "hificodec-entropy" or set(tensors) != set(_TENSORS):
        raise EntropyError(f"{p}: not a hificodec entropy tables file")
    arrays = {k: tensors[k].astype(np.int64) for k in _TENSORS}
    tables = EntropyTables(model_hash=str(meta.get("model_hash", "")), **arrays)
    if meta.get("id") != tables.id:
        raise EntropyError(f"{p}: corrupt entropy tables (their digest does not match)")
    return tables


# ---- fitting -----------------------------------------------------------------------------------
def _log_units(p: np.ndarray) -> np.ndarray:
    return np.round(np.log2(p) * LOG_UNITS).astype(np.int64)


def _exp_table() -> np.ndarray:
    """Frequencies 2^(30 - i / LOG_UNITS) for i 1/LOG_UNITS-bit steps below the best code, at least 1."""
    steps = np.arange(EXP_BITS * LOG_UNITS)
    return np.maximum(np.round(np.exp2(30 - steps / LOG_UNITS)), 1).astype(np.int64)


def fit(
    codes: Iterable[np.ndarray],
    codebook_size: int,
    model_hash: str,
    previous_classes: int = PREVIOUS_CLASSES,
    parent_classes: int = PARENT_CLASSES,
    smoothing: float = SMOOTHING,
    held_out: float = 0.1,
    seed: int = 0,
) -> EntropyTables:
    """Fit tables on code arrays [n_q, frames] (one per utterance) made by the model `model_hash`.

    For each codebook: the classes of both neighbours and the tables on the rest, then the parent and
    the experts' weights, chosen on a held-out share of the utterances."""
    arrays = [np.asarray(c, dtype=np.int64) for c in codes]
    arrays = [a for a in arrays if a.ndim == 2 and a.shape[1] > 1]
    if len(arrays) < 2:
        raise EntropyError("too few code arrays to fit entropy tables on (need at least 2 of 2+ frames)")
    n_q = arrays[0].shape[0]
    if any(a.shape[0] != n_q for a in arrays):
        raise EntropyError("the code arrays have different numbers of codebooks")
    if min(int(a.min()) for a in arrays) < 0 or max(int(a.max()) for a in arrays) >= codebook_size:
        raise EntropyError(f"codes must lie in [0, {codebook_size})")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays))
    cut = max(1, int(round(len(arrays) * held_out)))
    held, train = [arrays[i] for i in order[:cut]], [arrays[i] for i in order[cut:]]
    size = codebook_size
    tables: dict[str, np.ndarray] = {
        "previous_class": np.zeros((n_q, size), np.int64),
        "previous_log": np.zeros((n_q, previous_classes + 1, size), np.int64),
        "parent": np.full(n_q, -1, np.int64), "parent_class": np.zeros((n_q, size), np.int64),
        "parent_log": np.zeros((n_q, parent_classes, size), np.int64), "unigram_log": np.zeros((n_q, size), np.int64),
        "weights": np.zeros((n_q, 2), np.int64), "exp_table": _exp_table(),
    }  # fmt: skip
    for q in range(n_q):
        unigram = np.bincount(np.concatenate([a[q] for a in train]), minlength=size) + 0.5
        unigram /= unigram.sum()
        tables["unigram_log"][q] = _log_units(unigram)
        # the previous frame's code
        prev = np.concatenate([a[q, :-1] for a in train])
        nxt = np.concatenate([a[q, 1:] for a in train])
        labels = _classes(prev, nxt, size, unigram, previous_classes, rng)
        counts = np.zeros((previous_classes + 1, size))
        np.add.at(counts, (labels[prev], nxt), 1.0)
        np.add.at(counts[previous_classes], np.array([a[q, 0] for a in train]), 1.0)  # first frames
        tables["previous_class"][q] = labels
        tables["previous_log"][q] = _log_units(_smoothed(counts, unigram, smoothing))
        tables["weights"][q] = (WEIGHT_UNITS, 0)
        if q == 0:
            continue
        # the parent: the earlier codebook whose same-frame code codes the held-out frames in the fewest
        # bits (on its own), if it saves more than MIN_PARENT_GAIN bits over the unigram
        here, h_here = np.concatenate([a[q] for a in train]), np.concatenate([a[q] for a in held])
        best = (float(-np.log2(unigram[h_here]).mean()) - MIN_PARENT_GAIN, -1, labels, counts)
        for p in range(q):
            given, h_given = np.concatenate([a[p] for a in train]), np.concatenate([a[p] for a in held])
            p_labels = _classes(given, here, size, unigram, parent_classes, rng)
            p_counts = np.zeros((parent_classes, size))
            np.add.at(p_counts, (p_labels[given], here), 1.0)
            bits = float(-np.log2(_smoothed(p_counts, unigram, smoothing)[p_labels[h_given], h_here]).mean())
            best = min(best, (bits, p, p_labels, p_counts), key=lambda x: x[0])
        _, parent, labels, counts = best
        if parent < 0:
            continue
        tables["parent"][q] = parent
        tables["parent_class"][q] = labels
        tables["parent_log"][q] = _log_units(_smoothed(counts, unigram, smoothing))
        # the experts' weights: the pair that codes (a sample of) the held-out frames in the fewest bits
        h_here = np.concatenate([a[q, 1:] for a in held])
        pick = rng.permutation(h_here.size)[:WEIGHT_FIT_CODES]
        h_prev = np.concatenate([a[q, :-1] for a in held])[pick]
        h_given = np.concatenate([a[parent, 1:] for a in held])[pick]
        prev_rows = tables["previous_log"][q, tables["previous_class"][q, h_prev]]
        par_rows = tables["parent_log"][q, labels[h_given]]
        target = h_here[pick]
        best_bits, best_pair = np.inf, (WEIGHT_UNITS, 0)
        for pair in ((a, b) for a in range(1, WEIGHT_UNITS + 1) for b in range(0, WEIGHT_UNITS + 1)):
            rows = _mix(prev_rows, par_rows, tables["unigram_log"][q], pair[0], pair[1], tables["exp_table"])
            bits = float(-np.log2(rows[np.arange(target.size), target]).mean())
            if bits < best_bits:
                best_bits, best_pair = bits, pair
        tables["weights"][q] = best_pair
    return EntropyTables(model_hash=model_hash, **tables)


def _smoothed(counts: np.ndarray, unigram: np.ndarray, smoothing: float) -> np.ndarray:
    return (counts + smoothing * unigram) / (counts.sum(axis=1, keepdims=True) + smoothing)


def _classes(
    given: np.ndarray, target: np.ndarray, size: int, unigram: np.ndarray, classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Group the values of `given` whose `target` distributions are alike: weighted k-means on the
    Hellinger embedding (square roots of the smoothed rows of the co-occurrence counts)."""
    counts = np.bincount(given * size + target, minlength=size * size).reshape(size, size).astype(np.float64)
    weight = counts.sum(axis=1)
    rows = np.sqrt((counts + unigram) / (weight[:, None] + 1.0))
    k = min(classes, int((weight > 0).sum()) or 1)
    chosen = rng.choice(size, size=k, replace=False, p=(weight + 1e-9) / (weight + 1e-9).sum())
    centres = rows[chosen].copy()
    labels = np.zeros(size, dtype=np.int64)
    for _ in range(20):
        distances = (rows**2).sum(1)[:, None] - 2 * rows @ centres.T + (centres**2).sum(1)[None]
        labels = distances.argmin(axis=1)
        for c in range(k):
            members = labels == c
            mass = weight[members].sum()
            if mass > 0:
                centres[c] = (rows[members] * weight[members, None]).sum(axis=0) / mass
    return labels


def fit_from_tokens(tokens_dir: str | os.PathLike, **kwargs: float | int) -> tuple[EntropyTables, int]:
    """Fit tables on a `hificodec tokenize` output folder (its tokens.json names the model); returns the
    tables and the number of frames they were fitted on."""
    root = Path(tokens_dir)
    info_path = root / "tokens.json"
    if not info_path.is_file():
        raise EntropyError(f"{root}: not a `hificodec tokenize` folder (no tokens.json)")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        model_hash, codebook_size = str(info["model_hash"]), int(info["codebook_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EntropyError(f"{info_path}: unreadable ({e})") from None
    files = sorted((root / "codes").rglob("*.npy"))
    if not files:
        raise EntropyError(f"{root / 'codes'}: no code files")
    arrays = [np.load(f, allow_pickle=False) for f in files]
    return fit(arrays, codebook_size, model_hash, **kwargs), sum(a.shape[-1] for a in arrays)  # type: ignore[arg-type]
