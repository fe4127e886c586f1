"""Turn a dataset into codec tokens: one `.npy` (int16) of codes [n_q, frames] per utterance + a manifest.

- Parallel on CPU: `workers` processes each load, resample, encode (one thread each by default) and
  write their own batches; several one-thread processes beat one process with as many threads on
  this model (docs/results.md, "Inference speed"). On a GPU, `workers` processes load audio for the one encoder.
- Batched and padding-exact: utterances are grouped by their frame count at the model's rate, so a
  batch is only ever padded up to the next hop multiple, which is exactly what the model does to a
  lone clip. A clip's codes therefore never depend on what it was batched with, even for models whose
  encoder normalises over time (GroupNorm), where padding would otherwise leak into every frame (up to
  float rounding: another batch size may sum in another order, which flips a code only where two
  codebook entries tie that closely; 3 of the 381,064 codes of the test split, measured).
- Sorted by length (longest first) for throughput; clips longer than `chunk_seconds` are encoded alone
  in bounded memory (hificodec.chunked).
- Resumable: outputs are written atomically (temp file + rename), a rerun skips finished files and
  removes temp files a killed run left behind.
- Shardable: rank r of W (torchrun's RANK / WORLD_SIZE, or arguments) takes every W-th file of the
  path-sorted list and writes `manifest.rank{r}-of-{W}.jsonl` (`manifest.jsonl` when W == 1).
- Audio is downmixed to mono and resampled (soxr) to the model's rate.
- `tokens.json` records the model (`model`: a reference `hificodec.load` opens, its release id or the
  folder it was loaded from) and the code layout (groups, stages, codebook size, frame rate; row k of
  codes is stage k // groups of group k % groups); the manifest keeps each entry's fields, `text`
  and `speaker` included. `hificodec.data.tokens` reads them back (TokenDataset), and
  `hificodec decode x.npy` turns codes into audio (hificodec.detokenize).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .audio import audio_info, load_audio
from .checkpoint import model_hash
from .chunked import encode_chunked
from .compress import resampled_length
from .data.manifest import ManifestEntry, read_entries, write_manifest
from .data.tokens import INFO_FILE
from .errors import HificodecError
from .files import atomic_output, check_output_folder, remove_partial_outputs
from .models.base import CodecModel

CODES_DIR = "codes"
#: audio per model call: on a CPU a call's speed falls as its tensors outgrow the caches (the shipped
#: encoder on one thread: 28x real time for 1.5 s in one clip, 18x for 16 such clips in one batch,
#: 17x for 16 x 10 s), so only short clips are batched, up to about this much; a GPU wants big batches
CPU_BATCH_SECONDS = 2.0
GPU_BATCH_SECONDS = 300.0


@dataclass
class TokenizeStats:
    files: int = 0  # in this shard
    encoded: int = 0  # encoded in this run
    skipped: int = 0  # already done by an earlier run
    failed: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0  # encoded in this run
    wall_seconds: float = 0.0
    batches: int = 0

    @property
    def hours_per_minute(self) -> float:
        """Hours of audio tokenized per minute of wall time (this run)."""
        return (self.audio_seconds / 3600) / (self.wall_seconds / 60) if self.wall_seconds > 0 else 0.0


@dataclass
class _Item:
    entry: ManifestEntry
    out: Path
    key: str
    num_samples: int = 0  # at the model's rate
    num_frames: int = 0


def shard_from_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment, (0, 1) outside it."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise HificodecError("RANK and WORLD_SIZE must be integers") from None
    return rank, world


def codes_dtype(codebook_size: int) -> np.dtype:
    return np.dtype(np.int16) if codebook_size <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


#: what makes two token folders the same tokens (a resumed run must match them; the other fields of
#: tokens.json, e.g. where the model folder now lives, are brought up to date)
IDENTITY = ("model_hash", "sample_rate", "hop_length", "num_codebooks", "codebook_size", "dtype")
CODE_ORDER = "stage-major: row k of codes is stage k // groups of group k % groups (k = stage * groups + group)"


def model_reference(model: CodecModel) -> str | None:
    """What `hificodec.load` opens this model by: its release id, else the folder it was loaded from
    (absolute); None for a model built in memory."""
    return model.release or model.model_dir


def _model_info(model: CodecModel) -> dict[str, Any]:
    groups = model.codebook_step  # GRVQ groups (1 for a plain residual VQ): codebooks come in whole stages
    return {
        "model": model_reference(model), "model_name": model.name, "model_hash": model_hash(model),
        "sample_rate": model.sample_rate, "hop_length": model.hop_length, "frame_rate": model.frame_rate,
        "num_codebooks": model.num_codebooks, "codebook_size": model.codebook_size,
        "dtype": codes_dtype(model.codebook_size).name, "groups": groups, "stages": model.num_codebooks // groups,
        "code_order": CODE_ORDER, "codes_shape": "[num_codebooks, frames]",
    }  # fmt: skip


def _check_info(out_dir: Path, info: dict[str, Any]) -> bool:
    """Whether `out_dir`'s tokens.json is `info` as it stands; raises when it holds other tokens."""
    path = out_dir / INFO_FILE
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        old = None
    if not isinstance(old, dict) or any(old.get(k) != info[k] for k in IDENTITY):
        raise HificodecError(f"{out_dir} holds tokens from another model or setting ({path}); use a new output folder")
    return bool(old == info)


def _write_info(out_dir: Path, info: dict[str, Any]) -> None:
    with atomic_output(out_dir / INFO_FILE) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _utterance_key(path: str, root: Path) -> str:
    """Output name: the audio path relative to the dataset root, without extension."""
    p = Path(path).resolve()
    try:
        rel = p.relative_to(root)
    except ValueError:
        rel = Path(*p.parts[1:])  # outside the root: mirror the absolute path
    return str(rel.with_suffix(""))


def _remove_stale_temps(items: list[_Item]) -> None:
    """Temp files a killed run left next to our outputs (only ours: the folder may hold others)."""
    by_dir: dict[Path, set[str]] = defaultdict(set)
    for it in items:
        by_dir[it.out.parent].add(it.out.name)
    for folder, names in by_dir.items():
        if folder.is_dir():
            remove_partial_outputs(folder, names)


def save_codes(path: Path, codes: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, codes)


class _BatchAudio(torch.utils.data.Dataset):
    """Loads one batch of items (mono, model rate, exact length); errors come back as strings."""

    def __init__(self, batches: list[list[_Item]], sample_rate: int):
        self.batches = batches
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[tuple[_Item, np.ndarray | str]]:
        out: list[tuple[_Item, np.ndarray | str]] = []
        for it in self.batches[i]:
            try:
                audio, _ = load_audio(it.entry.path, sample_rate=self.sample_rate, mono=True)
                a = audio[0, : it.num_samples]
                out.append((it, np.pad(a, (0, it.num_samples - a.shape[0]))))
            except HificodecError as e:
                out.append((it, str(e)))
        return out


def _identity(x: Any) -> Any:
    return x


def plan_batches(items: list[_Item], batch_size: int, max_batch_seconds: float, sample_rate: int) -> list[list[_Item]]:
    """Batches of equal frame count, longest first, each at most `batch_size` items and
    `max_batch_seconds` of audio (but always at least one item)."""
    buckets: dict[int, list[_Item]] = defaultdict(list)
    for it in items:
        buckets[it.num_frames].append(it)
    batches = []
    for frames in sorted(buckets, reverse=True):
        group = buckets[frames]
        seconds = group[0].num_samples / sample_rate
        per_batch = max(1, min(batch_size, int(max_batch_seconds // max(seconds, 1e-9))))
        batches += [group[i : i + per_batch] for i in range(0, len(group), per_batch)]
    return batches


@torch.inference_mode()
def encode_batch(model: CodecModel, audios: list[np.ndarray], chunk_seconds: float) -> list[np.ndarray]:
    """Codes [n_q, frames_i] for mono clips that share one frame count (padding-exact)."""
    n = max(a.shape[0] for a in audios)
    hop = model.hop_length
    if n > chunk_seconds * model.sample_rate:
        return [encode_chunked(model, torch.from_numpy(a)[None])[0].numpy() for a in audios]
    padded = np.zeros((len(audios), 1, -(-n // hop) * hop), dtype=np.float32)
    for i, a in enumerate(audios):
        padded[i, 0, : a.shape[0]] = a
    first = next(model.parameters(), None)  # none in a model run by another backend (onnx_backend): CPU
    device = first.device if first is not None else torch.device("cpu")
    codes = model.encode(torch.from_numpy(padded).to(device)).cpu().numpy()
    return [codes[i, :, : model.num_frames(a.shape[0])] for i, a in enumerate(audios)]


def tokenize(
    model: CodecModel,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 16,
    workers: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    split: str | None = None,
    skip_errors: bool = False,
    max_batch_seconds: float | None = None,
    chunk_seconds: float = 60.0,
    progress: bool = False,
    threads: int | None = None,
) -> TokenizeStats:
    """Write codes for every utterance of `source` (folder, manifest, file list) under `out_dir`.

    workers: processes that load and encode (CPU model; each with `threads` threads, default this
    process's threads shared out) or that load audio for this process's encoder (GPU model); 0: all
    in this process. max_batch_seconds: audio per model call (default CPU_BATCH_SECONDS on a CPU,
    GPU_BATCH_SECONDS on a GPU)."""
    start = time.perf_counter()
    if batch_size < 1 or workers < 0 or (threads is not None and threads < 1):
        raise HificodecError("batch size and threads must be at least 1, workers at least 0")
    env_rank, env_world = shard_from_env()
    rank = env_rank if rank is None else rank
    world = env_world if world_size is None else world_size
    if not (world >= 1 and 0 <= rank < world):
        raise HificodecError(f"invalid shard: rank {rank} of world size {world}")
    src = Path(source)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise HificodecError(f"{out}: exists and is not a folder")
    name = "manifest.jsonl" if world == 1 else f"manifest.rank{rank}-of-{world}.jsonl"
    # codes/, tokens.json and the manifest go into OUT: never over the input (a folder, or a manifest there)
    check_output_folder(out, [src], writes=[CODES_DIR, INFO_FILE, name])
    entries = sorted(read_entries(src, split=split), key=lambda e: e.path)
    root = (src if src.is_dir() else src.parent).resolve()
    info = _model_info(model)
    had_info = (out / INFO_FILE).is_file()
    info_current = out.is_dir() and _check_info(out, info)

    dtype = codes_dtype(model.codebook_size)
    items = [
        _Item(entry=e, out=out / CODES_DIR / f"{key}.npy", key=key)
        for e in entries[rank::world]
        for key in [_utterance_key(e.path, root)]
    ]
    dups = [k for k, n in Counter(it.key for it in items).items() if n > 1]
    if dups:
        dup = dups[0]
        raise HificodecError(f"two inputs map to the same output codes/{dup}.npy (same name, other extension?)")
    stats = TokenizeStats(files=len(items))
    _remove_stale_temps(items)
    pending, done = [], []
    for it in items:
        # Finished files too: their manifest entries need the same duration as in the run that encoded them.
        try:
            sr, _, frames = audio_info(it.entry.path)
            if frames <= 0:
                raise HificodecError(f"{it.entry.path}: the file holds no audio samples")
        except HificodecError as e:
            _fail(stats, str(e), skip_errors)
            continue
        it.num_samples = resampled_length(frames, sr, model.sample_rate)
        if it.out.is_file():
            try:
                it.num_frames = int(np.load(it.out, mmap_mode="r").shape[-1])
                stats.skipped += 1
                done.append(it)
                continue
            except (ValueError, OSError):  # damaged outside hificodec (we write atomically): redo it
                it.out.unlink()
        it.num_frames = model.num_frames(it.num_samples)
        pending.append(it)

    made_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not info_current:
        _write_info(out, info)
    try:
        _encode_pending(model, pending, done, stats, dtype, workers, skip_errors, batch_size, max_batch_seconds,
                        chunk_seconds, progress, threads)  # fmt: skip
    except BaseException:
        if not had_info and not stats.encoded and not stats.skipped:  # nothing to resume: leave no output
            (out / INFO_FILE).unlink(missing_ok=True)
            if made_out and not any(out.iterdir()):
                out.rmdir()
        raise

    write_manifest(out / name, [_manifest_entry(it, out, model) for it in sorted(done, key=lambda i: i.key)])
    stats.wall_seconds = time.perf_counter() - start
    return stats


def _encode_pending(
    model: CodecModel, pending: list[_Item], done: list[_Item], stats: TokenizeStats, dtype: np.dtype, workers: int,
    skip_errors: bool, batch_size: int, max_batch_seconds: float | None, chunk_seconds: float, progress: bool,
    threads: int | None = None,
) -> None:
    # None: no parameters, a model run by another backend (onnxruntime, its own threads in this process)
    first = next(model.parameters(), None)
    device = first.device.type if first is not None else None
    if max_batch_seconds is None:
        max_batch_seconds = CPU_BATCH_SECONDS if device in ("cpu", None) else GPU_BATCH_SECONDS
    batches = plan_batches(pending, batch_size, max_batch_seconds, model.sample_rate)
    bar = tqdm(total=len(pending), unit="file", desc="tokenize", disable=not progress)
    with bar:
        if workers > 0 and device == "cpu" and len(batches) > 1:
            results = _encode_in_processes(model, batches, dtype, chunk_seconds, workers, threads)
        else:
            results = _encode_here(model, batches, dtype, chunk_seconds, workers)
        for batch, errors in results:
            for it, error in zip(batch, errors):
                if error is not None:
                    _fail(stats, error, skip_errors)
                    continue
                stats.encoded += 1
                stats.audio_seconds += it.num_samples / model.sample_rate
                done.append(it)
            stats.batches += any(e is None for e in errors)
            bar.update(len(batch))


#: a batch and, per item, None (codes written) or the reason it failed
_BatchResult = tuple[list[_Item], list[str | None]]


def _encode_here(
    model: CodecModel, batches: list[list[_Item]], dtype: np.dtype, chunk_seconds: float, workers: int
) -> Iterator[_BatchResult]:
    """Encode in this process (a GPU model, or workers=0); `workers` processes load the audio."""
    loader = torch.utils.data.DataLoader(
        _BatchAudio(batches, model.sample_rate), batch_size=None, shuffle=False, num_workers=workers,
        collate_fn=_identity,
    )  # fmt: skip
    for batch, loaded in zip(batches, loader):
        yield batch, _encode_and_save(model, loaded, dtype, chunk_seconds)


def _encode_and_save(
    model: CodecModel, loaded: list[tuple[_Item, np.ndarray | str]], dtype: np.dtype, chunk_seconds: float
) -> list[str | None]:
    good = [(it, a) for it, a in loaded if not isinstance(a, str)]
    if good:
        for (it, _), codes in zip(good, encode_batch(model, [a for _, a in good], chunk_seconds)):
            save_codes(it.out, codes.astype(dtype))
    return [a if isinstance(a, str) else None for _, a in loaded]


# The encoder process's model and settings (set once per process by _start_worker).
_WORKER: dict[str, Any] = {}


def _portable(model: CodecModel) -> tuple[type, dict[str, Any], dict[str, torch.Tensor], int]:
    """What a spawned process rebuilds the model from (parametrised modules do not pickle)."""
    return type(model), model.config, model.state_dict(), model.num_codebooks


def _rebuilt(portable: tuple[type, dict[str, Any], dict[str, torch.Tensor], int]) -> CodecModel:
    cls, config, state, num_codebooks = portable
    model = cls(config)
    model.load_state_dict(state)
    model.set_num_codebooks(num_codebooks)
    return model.eval()


def _start_worker(model: Any, dtype: np.dtype, chunk_seconds: float, threads: int) -> None:
    # the parent handles Ctrl-C and ends the pool; a worker keeps no handler of the CLI's (which would
    # print a traceback when the pool ends its idle workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(threads)
    model = model if isinstance(model, CodecModel) else _rebuilt(model)
    _WORKER.update(model=model, dtype=dtype, chunk_seconds=chunk_seconds)


def _worker_batch(job: tuple[int, list[_Item]]) -> tuple[int, list[str | None]]:
    """(batch index, batch) -> (the index, per item None or why it failed)."""
    index, batch = job
    model: CodecModel = _WORKER["model"]
    loaded = _BatchAudio([batch], model.sample_rate)[0]
    return index, _encode_and_save(model, loaded, _WORKER["dtype"], _WORKER["chunk_seconds"])


def _encode_in_processes(
    model: CodecModel, batches: list[list[_Item]], dtype: np.dtype, chunk_seconds: float, workers: int,
    threads: int | None,
) -> Iterator[_BatchResult]:
    """Batches spread over `workers` processes that each load, encode and save; results in any order.

    Each process runs `threads` threads (default: this process's threads shared out, at least one).
    One-thread processes are forked where the platform allows (the model shared copy-on-write, nothing
    pickled); processes with more threads are spawned, because OpenMP's thread pool does not survive a
    fork once the parent has used it (a forked worker with two threads waits forever)."""
    per_worker = threads or max(1, torch.get_num_threads() // workers)
    methods = multiprocessing.get_all_start_methods()
    fork = per_worker == 1 and "fork" in methods
    context = multiprocessing.get_context("fork" if fork else "spawn")
    shared = model if fork else _portable(model)
    pool = context.Pool(
        min(workers, len(batches)), initializer=_start_worker, initargs=(shared, dtype, chunk_seconds, per_worker)
    )
    try:
        # longest batches first (plan_batches' order) and one at a time, so the pool ends evenly
        for index, errors in pool.imap_unordered(_worker_batch, enumerate(batches), chunksize=1):
            yield batches[index], errors
        pool.close()
    finally:
        pool.terminate()
        pool.join()



def _fail(stats: TokenizeStats, message: str, skip_errors: bool) -> None:
    if not skip_errors:
        raise HificodecError(f"{message} (use --skip-errors to tokenize the other files anyway)")
    stats.failed.append(message)


def _manifest_entry(it: _Item, out: Path, model: CodecModel) -> ManifestEntry:
    extra = dict(it.entry.extra)
    extra["codes"] = str(it.out.relative_to(out))
    extra["num_frames"] = it.num_frames
    e = ManifestEntry(**{**it.entry.__dict__, "extra": extra})
    if e.duration is None and it.num_samples:
        e.duration = round(it.num_samples / model.sample_rate, 4)
    return e
