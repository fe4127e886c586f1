"""Training data: random fixed-length mono segments at the model's rate, and a resumable sampler.

Every random choice for an item (segment start, gain, mixing partner) is drawn from a generator
seeded by (seed, epoch, index), so an item is the same whichever worker loads it and whenever
it is loaded: resuming from a checkpoint replays exactly the same data.

Unreadable or empty files are never replaced by noise: the dataset logs them once, skips to the
next entry, and reports how many it skipped with each item (`skipped`), so the trainer can count
them across workers and ranks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..audio import check_finite, resample
from ..errors import AudioError, HificodecError
from .manifest import ManifestEntry, read_entries

log = logging.getLogger(__name__)

# how many following entries to try before giving up when files are unreadable
MAX_CONSECUTIVE_BAD = 50


@dataclass
class SegmentOptions:
    """How training segments are cut and augmented."""

    sample_rate: int
    segment_samples: int
    loudness_db: float | None = None  # RMS normalisation target in dBFS (None: keep the file's level)
    gain_db: tuple[float, float] = (0.0, 0.0)  # random gain range applied after normalisation
    mix_prob: float = 0.0  # SoundStream: add a second random clip with this probability
    seed: int = 0


@dataclass
class SampleKey:
    """What the sampler hands the dataset: the item and the epoch that seeds its randomness."""

    index: int
    epoch: int


@dataclass
class DatasetStats:
    bad_files: set[str] = field(default_factory=set)


class AudioSegmentDataset(Dataset):
    """Random fixed-length segments from a folder, file list or manifest.

    `dataset[SampleKey(i, epoch)]` (or `dataset[i]`, epoch 0) returns
    {"audio": float32 [1, segment_samples], "skipped": number of unreadable files passed over}.
    Clips shorter than a segment are zero-padded at the end.
    """

    def __init__(self, source: str | Sequence[ManifestEntry], options: SegmentOptions):
        self.entries = list(read_entries(source)) if isinstance(source, str) else list(source)
        # entries the manifest already knows to be empty are dropped up front
        self.entries = [e for e in self.entries if e.duration is None or e.duration > 0]
        if not self.entries:
            raise HificodecError(f"{source}: no audio entries to train on")
        self.options = options
        self.stats = DatasetStats()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: SampleKey | int) -> dict:
        if not isinstance(key, SampleKey):
            key = SampleKey(int(key), 0)
        rng = np.random.default_rng([self.options.seed, key.epoch, key.index])
        audio, skipped = self._read_any(key.index, rng)
        if self.options.mix_prob > 0 and rng.random() < self.options.mix_prob:
            other, more = self._read_any(int(rng.integers(len(self.entries))), rng)
            skipped += more
            audio = audio + other
            peak = float(np.abs(audio).max())
            if peak > 1.0:  # keep the mix in range; the target is the mix itself
                audio = audio / peak
        audio = self._gain(audio, rng)
        return {"audio": torch.from_numpy(audio[None].astype(np.float32)), "skipped": skipped}

    # ---- reading -------------------------------------------------------------------------
    def _read_any(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Segment from entry `index`, or from the next readable entry after it."""
        for skipped in range(min(MAX_CONSECUTIVE_BAD, len(self.entries))):
            entry = self.entries[(index + skipped) % len(self.entries)]
            if entry.path in self.stats.bad_files:
                continue
            try:
                return self._read_segment(entry, rng), skipped
            except AudioError as e:
                self.stats.bad_files.add(entry.path)
                log.warning("skipping unreadable audio: %s", e)
        raise HificodecError(
            f"no readable audio among {min(MAX_CONSECUTIVE_BAD, len(self.entries))} consecutive entries "
            f"(starting at {self.entries[index].path}); check the data"
        )

    def _read_segment(self, entry: ManifestEntry, rng: np.random.Generator) -> np.ndarray:
        opts = self.options
        # a header read (cheap) rather than the manifest's fields: its sample_rate is the original
        # recording's, not necessarily the file's
        import soundfile as sf  # here, not at the top: the GPU image has no soundfile

        try:
            info = sf.info(entry.path)
        except Exception as e:
            raise AudioError(f"{entry.path}: not a readable audio file ({str(e).strip()[:200]})") from None
        sr_in, frames = int(info.samplerate), int(info.frames)
        if frames <= 0:
            raise AudioError(f"{entry.path}: the file holds no audio samples")
        # read only the samples the segment needs (+ a margin for the resampler)
        need = math.ceil(opts.segment_samples * sr_in / opts.sample_rate)
        margin = 64 if sr_in != opts.sample_rate else 0
        start = int(rng.integers(0, frames - need + 1)) if frames > need else 0
        stop = min(frames, start + need + margin)
        try:
            data, _ = sf.read(entry.path, start=start, stop=stop, dtype="float32", always_2d=True)
        except Exception as e:
            raise AudioError(f"{entry.path}: not a readable audio file ({str(e).strip()[:200]})") from None
        if data.shape[0] == 0:
            raise AudioError(f"{entry.path}: the file holds no audio samples")
        audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        check_finite(audio, entry.path)
        audio = resample(np.ascontiguousarray(audio), sr_in, opts.sample_rate)[: opts.segment_samples]
        if audio.shape[0] < opts.segment_samples:
            audio = np.pad(audio, (0, opts.segment_samples - audio.shape[0]))
        return audio.astype(np.float32)

    def _gain(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        opts = self.options
        db = 0.0
        if opts.loudness_db is not None:
            rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
            if rms > 1e-6:  # leave silence alone
                db = opts.loudness_db - 20 * math.log10(rms)
        lo, hi = opts.gain_db
        if hi > lo:
            db += float(rng.uniform(lo, hi))
        elif lo:
            db += lo
        if db == 0.0:
            return audio
        out = audio * np.float32(10 ** (db / 20))
        peak = float(np.abs(out).max())
        return out / peak if peak > 1.0 else out


def collate_segments(items: list[dict]) -> dict:
    return {
        "audio": torch.stack([it["audio"] for it in items]),
        "skipped": sum(int(it["skipped"]) for it in items),
    }


class ResumableBatchSampler(Sampler[list[SampleKey]]):
    """Shuffled batches, split across ranks like DistributedSampler, resumable mid-epoch.

    Each epoch is a permutation seeded by (seed, epoch), padded by wrapping around so every rank
    gets the same number of full batches (ranks never disagree on when an epoch ends). Iteration
    starts at `start_batch` of `epoch`; the trainer records how many batches it consumed.
    """

    def __init__(
        self, num_items: int, batch_size: int, seed: int = 0, shuffle: bool = True,
        rank: int = 0, world_size: int = 1,
    ):
        if num_items <= 0 or batch_size <= 0:
            raise HificodecError(f"cannot sample batches of {batch_size} from {num_items} items")
        self.num_items, self.batch_size, self.seed, self.shuffle = num_items, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0

    def batches_per_epoch(self) -> int:
        return math.ceil(self.num_items / (self.batch_size * self.world_size))

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch, self.start_batch = int(epoch), int(batch)

    def _order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        total = self.batches_per_epoch() * self.batch_size * self.world_size
        while len(order) < total:
            order += order[: total - len(order)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        mine = self._order()
        for b in range(self.start_batch, self.batches_per_epoch()):
            chunk = mine[b * self.batch_size : (b + 1) * self.batch_size]
            yield [SampleKey(i, self.epoch) for i in chunk]

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch
