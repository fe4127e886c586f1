"""`evaluate()`: run every system (models, classical baselines) over a set of files and score them.

Models run first, in this process and alone (one copy of the weights; their real-time factor is
timed here), writing their outputs to a temporary folder; then metric computation and the ffmpeg
baselines run in a pool of worker processes. Results come back as rows
(one per file x system) plus a per-system summary; `write_report` turns them into files.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..audio import load_audio, resample
from ..data.manifest import ManifestEntry, read_entries
from ..errors import AudioError, HificodecError
from .baselines import BaselineSpec, parse_baselines, unavailable_reason
from .scoring import ScoreJob, ScoreResult, error_row, init_worker, score
from .summary import summarise
from .systems import ModelSystem, load_systems


@dataclass
class EvalConfig:
    """What to evaluate. `source`: a folder of audio, a .jsonl manifest, a file list, or one file."""

    source: str
    models: list[str] = field(default_factory=list)  # shipped names or checkpoint dirs
    presets: list[str] = field(default_factory=list)  # untrained presets (smoke tests only)
    bandwidths: list[float] = field(default_factory=list)  # kbps; empty = each model's default
    baselines: list[str] = field(default_factory=list)  # e.g. ["opus:6,8,12", "codec2:3200"]
    split: str | None = None
    limit: int | None = None
    spread: bool = False  # with `limit`: files evenly spaced over the list instead of the first ones
    workers: int = 2  # 0 = score in this process
    device: str = "cpu"
    ffmpeg: str | None = None
    max_delay_ms: float = 100.0
    spectrogram_files: int = 3
    listen_files: int = 10  # files kept for the report's listening section, spread over the set
    progress: bool = True


@dataclass
class EvalReport:
    rows: list[dict]
    summary: dict
    #: kept audio: file -> {"reference": (audio, sr), system: (audio, sr), ...}
    examples: dict[str, dict[str, tuple[np.ndarray, int]]] = field(default_factory=dict)
    #: files (in `examples`) for spectrogram figures, and for the listening section
    spectrogram_files: list[str] = field(default_factory=list)
    listen_files: list[str] = field(default_factory=list)
    #: input files that could not be read (each has an error row per system)
    unreadable: list[str] = field(default_factory=list)


def evaluate(config: EvalConfig) -> EvalReport:
    entries = read_entries(config.source, split=config.split)
    if config.limit is not None:
        if config.limit < 1:
            raise HificodecError(f"--limit must be at least 1, got {config.limit}")
        if config.spread:
            entries = [entries[i] for i in spread_indices(len(entries), config.limit)]
        else:
            entries = entries[: config.limit]
    specs = parse_baselines(config.baselines)
    if config.workers < 0:
        raise HificodecError(f"--workers must be 0 or more, got {config.workers}")
    systems = load_systems(config.models, config.presets, config.bandwidths, config.device)
    notes: list[str] = []
    runnable: list[BaselineSpec] = []
    for spec in specs:
        reason = unavailable_reason(spec, config.ffmpeg)
        if reason is None:
            runnable.append(spec)
        else:
            notes.append(reason)
            print(f"hificodec eval: {reason}", file=sys.stderr)
    if not systems and not runnable:
        raise HificodecError(
            "nothing to evaluate: give --model, --preset or --baselines" + (f" ({'; '.join(notes)})" if notes else "")
        )
    for s in systems:
        s.warm_up()

    order = [s.name for s in systems] + [b.name for b in runnable]
    # audio kept for the spectrogram figures (first files) and the listening clips (spread over the set)
    keep = set(range(min(config.spectrogram_files, len(entries)))) | set(
        spread_indices(len(entries), config.listen_files)
    )
    examples: dict[str, dict[str, tuple[np.ndarray, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="hificodec-eval-") as tmp:
        # Phase 1: the models alone on the machine, so their real-time factor is not skewed by the pool.
        coded = _code_with_models(config, entries, systems, Path(tmp), keep)
        unreadable: list[str] = []
        # Phase 2: scoring (and the ffmpeg baselines) in worker processes.
        results: list[ScoreResult] = []
        with tqdm(
            total=len(entries) * len(order),
            desc="scoring",
            unit="file",
            disable=not config.progress,
            file=sys.stderr,
        ) as bar:
            jobs = _jobs(config, entries, systems, runnable, coded, examples, keep, unreadable)
            for result in _run(config, jobs):
                results.append(result)
                bar.update(1)
    for r in results:
        if r.audio is not None:
            examples[r.row["file"]][r.row["system"]] = (r.audio, int(r.row["sample_rate"]))
    # results arrive as the pool finishes them, in another order for every file: keep the systems' order
    examples = {file: {name: audios[name] for name in ["reference", *order] if name in audios}
                for file, audios in examples.items()}  # fmt: skip
    rank = {name: i for i, name in enumerate(order)}
    file_rank = {e.path: i for i, e in enumerate(entries)}
    rows = sorted((r.row for r in results), key=lambda row: (rank[row["system"]], file_rank[row["file"]]))
    summary = summarise(rows, order, systems, runnable, notes, config, n_files=len(entries))
    paths = [e.path for e in entries]
    return EvalReport(
        rows,
        summary,
        examples,
        spectrogram_files=[p for p in paths[: config.spectrogram_files] if p in examples],
        listen_files=[paths[i] for i in spread_indices(len(paths), config.listen_files) if paths[i] in examples],
        unreadable=unreadable,
    )


def spread_indices(n: int, k: int) -> list[int]:
    """k indices evenly spaced over range(n) (all of them if k >= n): covers every speaker/source in order."""
    if k <= 0 or n <= 0:
        return []
    if k >= n:
        return list(range(n))
    step = n / k
    return [int(i * step) for i in range(k)]


def _code_with_models(
    config: EvalConfig, entries: list[ManifestEntry], systems: list[ModelSystem], tmp: Path, keep: set[int]
) -> dict[tuple[int, int], ScoreJob | ScoreResult]:
    """Encode + decode every readable file with every model; outputs go to .npy files in `tmp`.

    Returns (file index, system index) -> a job template (no reference yet) or an error result.
    """
    out: dict[tuple[int, int], ScoreJob | ScoreResult] = {}
    if not systems:
        return out
    with tqdm(
        total=len(entries) * len(systems), desc="coding", unit="file", disable=not config.progress, file=sys.stderr
    ) as bar:
        for i, entry in enumerate(entries):
            try:
                audio, sr = load_audio(entry.path, mono=True)
            except AudioError:
                bar.update(len(systems))
                continue  # reported in phase 2
            for j, s in enumerate(systems):
                try:
                    run = s.run(resample(audio[0], sr, s.sample_rate))
                except (RuntimeError, ValueError) as e:  # e.g. input shorter than the receptive field
                    out[i, j] = ScoreResult(error_row(entry.path, s.name, "model", f"model failed: {e}"))
                else:
                    path = tmp / f"{i}_{j}.npy"
                    np.save(path, run.audio)
                    out[i, j] = ScoreJob(
                        entry.path,
                        s.name,
                        "model",
                        np.zeros(0, np.float32),
                        s.sample_rate,
                        degraded_path=str(path),
                        bits=run.bits,
                        coded_bits=run.coded_bits,
                        encode_s=run.encode_seconds,
                        decode_s=run.decode_seconds,
                        max_delay_ms=config.max_delay_ms,
                        keep_audio=i in keep,
                    )
                bar.update(1)
    return out


def _jobs(
    config: EvalConfig,
    entries: list[ManifestEntry],
    systems: list[ModelSystem],
    baselines: list[BaselineSpec],
    coded: dict[tuple[int, int], ScoreJob | ScoreResult],
    examples: dict,
    keep_files: set[int],
    unreadable: list[str],
) -> Iterator[ScoreJob | ScoreResult]:
    """Scoring jobs in file order; files that cannot be read yield error rows directly (and are listed
    in `unreadable`)."""
    for i, entry in enumerate(entries):
        keep = i in keep_files
        try:
            audio, sr = load_audio(entry.path, mono=True)
        except AudioError as e:
            unreadable.append(entry.path)
            for name in [s.name for s in systems] + [b.name for b in baselines]:
                yield ScoreResult(error_row(entry.path, name, "-", str(e)))
            continue
        ref = audio[0]
        if keep:
            examples[entry.path] = {"reference": (ref, sr)}
        for j, s in enumerate(systems):
            job = coded[i, j]
            if isinstance(job, ScoreJob):
                job.reference = resample(ref, sr, s.sample_rate)
            yield job
        for b in baselines:
            yield ScoreJob(
                entry.path,
                b.name,
                "baseline",
                ref,
                sr,
                baseline=b,
                ffmpeg=config.ffmpeg,
                max_delay_ms=config.max_delay_ms,
                keep_audio=keep,
            )


def _run(config: EvalConfig, jobs: Iterator[ScoreJob | ScoreResult]) -> Iterator[ScoreResult]:
    if config.workers == 0:
        for job in jobs:
            yield job if isinstance(job, ScoreResult) else score(job)
        return
    # fork like torch's DataLoader (workers use one thread and no GPU); spawn would re-import the
    # caller's __main__, which breaks scripts without an `if __name__ == "__main__"` guard.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    max_pending = 4 * config.workers  # bounds memory: model outputs wait here for scoring
    with ProcessPoolExecutor(config.workers, mp_context=ctx, initializer=init_worker) as pool:
        pending: set[Future] = set()
        for job in jobs:
            if isinstance(job, ScoreResult):
                yield job
                continue
            pending.add(pool.submit(score, job))
            if len(pending) >= max_pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
