"""Build the open speech corpus from Debian packages (plus optional MBROLA synthetic speech).

    build_corpus(CorpusOptions(out_dir="corpus/16k", sample_rate=16000))

Steps, each resumable: fetch + unpack every allowlisted package (`apt_fetch`, injectable), select its
speech files (`debian_sources`), drop exact duplicates (SHA-1 of the file bytes, first one kept in
package order), drop clips shorter than `min_seconds` and near-silent ones, convert the rest to mono
16-bit FLAC at the target rate (stereo averaged, soxr resampling), then split speaker-disjointly and
write manifests and a summary. Every file is written atomically; a finished package is recorded in
`.parts/<package>.jsonl` and skipped on the next run, and a finished FLAC is never converted twice.

Layout of OUT_DIR:
    audio/<source>/<speaker>/<name>-<sha1[:8]>.flac
    manifest.jsonl  train.jsonl  valid.jsonl  test.jsonl  summary.json
    licenses/<package>.copyright
    _work/ (downloaded .deb files and unpacked trees; safe to delete once built)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hificodec.audio import audio_info, load_audio, save_audio
from hificodec.data.manifest import ManifestEntry, read_manifest, write_manifest
from hificodec.errors import AudioError, HificodecError
from hificodec.files import atomic_output, remove_partial_outputs

from .apt_fetch import Fetcher, apt_fetch
from .debian_sources import REAL_SPEECH_PACKAGES, PackageSpec, SourceClip, copyright_file
from .splits import SPLITS, SplitUnit, speaker_disjoint_split, split_order, write_split_manifests

SILENCE_PEAK = 1e-3  # about -60 dBFS: a clip whose peak stays below this holds no usable speech


@dataclass
class CorpusOptions:
    out_dir: str | os.PathLike
    sample_rate: int = 16000
    synthetic_hours: float = 0.0
    jobs: int = 1
    min_seconds: float = 0.5  # shorter clips are dropped (not joined: joins would splice two voices)
    test_minutes: float = 25.0
    valid_minutes: float = 10.0
    seed: int = 0
    packages: Sequence[PackageSpec] = REAL_SPEECH_PACKAGES
    fetch: Fetcher = apt_fetch
    work_dir: str | os.PathLike | None = None  # default OUT_DIR/_work
    progress: bool = True
    # Synthetic speech generator (hours, out_audio_dir, options) -> entries; default: MBROLA.
    synthesize: Callable[..., list[ManifestEntry]] | None = None


@dataclass
class SourceStats:
    selected: int = 0
    duplicates: int = 0
    short: int = 0
    silent: int = 0
    unreadable: int = 0
    kept: int = 0


@dataclass
class CorpusResult:
    entries: list[ManifestEntry]
    stats: dict[str, SourceStats]
    warnings: list[str] = field(default_factory=list)
    summary: str = ""


@dataclass(frozen=True)
class ConvertJob:
    src: str
    dst: str
    sample_rate: int
    min_seconds: float


@dataclass(frozen=True)
class ConvertResult:
    status: str  # ok / short / silent / unreadable
    seconds: float = 0.0
    orig_sample_rate: int = 0
    orig_channels: int = 0


def convert_clip(job: ConvertJob) -> ConvertResult:
    """Convert one source file to mono FLAC at the target rate (skipped if the FLAC already exists)."""
    try:
        sr, channels, frames = audio_info(job.src)
    except AudioError:
        return ConvertResult("unreadable")
    if frames < job.min_seconds * sr:
        return ConvertResult("short", frames / sr, sr, channels)
    if os.path.exists(job.dst):  # written atomically, so an existing file is complete
        out_sr, _, out_frames = audio_info(job.dst)
        return ConvertResult("ok", out_frames / out_sr, sr, channels)
    try:
        audio, _ = load_audio(job.src, sample_rate=job.sample_rate, mono=True)
    except AudioError:
        return ConvertResult("unreadable")
    if audio.shape[1] < job.min_seconds * job.sample_rate:  # header length can differ from decoded
        return ConvertResult("short", audio.shape[1] / job.sample_rate, sr, channels)
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        return ConvertResult("silent", audio.shape[1] / job.sample_rate, sr, channels)
    os.makedirs(os.path.dirname(job.dst), exist_ok=True)
    save_audio(job.dst, audio, job.sample_rate, subtype="PCM_16")
    return ConvertResult("ok", audio.shape[1] / job.sample_rate, sr, channels)


def file_sha1(path: str | os.PathLike) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_corpus(opts: CorpusOptions) -> CorpusResult:
    if opts.sample_rate not in (16000, 24000):
        raise HificodecError(f"--sample-rate must be 16000 or 24000, got {opts.sample_rate}")
    if opts.jobs < 1:
        raise HificodecError(f"--jobs must be at least 1, got {opts.jobs}")
    if opts.synthetic_hours < 0:
        raise HificodecError(f"--synthetic-hours must be >= 0, got {opts.synthetic_hours}")
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(opts.work_dir) if opts.work_dir is not None else out / "_work"
    work.mkdir(parents=True, exist_ok=True)
    for d in ("audio", ".parts", "licenses"):
        (out / d).mkdir(exist_ok=True)
    remove_partial_outputs(out)  # temp files of a killed run

    entries: list[ManifestEntry] = []
    stats: dict[str, SourceStats] = {}
    seen: dict[str, str] = {}  # sha1 -> source that kept it
    pool = ProcessPoolExecutor(max_workers=opts.jobs) if opts.jobs > 1 else None
    try:
        for spec in opts.packages:
            pkg_entries, pkg_stats = _build_package(spec, opts, out, work, seen, pool)
            entries += pkg_entries
            stats[spec.package] = pkg_stats
    finally:
        if pool is not None:
            pool.shutdown()

    warnings: list[str] = []
    if opts.synthetic_hours > 0:
        from .synthetic import synthesize_mbrola

        synth = opts.synthesize or synthesize_mbrola
        syn_entries = synth(
            hours=opts.synthetic_hours, out_dir=out, sample_rate=opts.sample_rate, seed=opts.seed,
            jobs=opts.jobs, progress=opts.progress,
        )
        entries += syn_entries
        stats["mbrola (synthetic)"] = SourceStats(selected=len(syn_entries), kept=len(syn_entries))

    split = speaker_disjoint_split(
        [SplitUnit(_group(e), e.source or "", e.duration or 0.0, bool(e.synthetic)) for e in entries],
        test_minutes=opts.test_minutes, valid_minutes=opts.valid_minutes, seed=opts.seed,
    )
    warnings += split.warnings
    for e in entries:
        e.split = split.split_of[_group(e)]
    entries.sort(key=split_order)
    write_split_manifests(out, entries)
    summary = format_summary(entries, stats)
    with atomic_output(out / "summary.json") as tmp:
        Path(tmp).write_text(json.dumps(summary_dict(entries, stats, opts), indent=2) + "\n")
    return CorpusResult(entries, stats, warnings, summary)


def _group(e: ManifestEntry) -> str:
    return str(e.extra.get("group") or e.speaker or e.path)


def _build_package(
    spec: PackageSpec,
    opts: CorpusOptions,
    out: Path,
    work: Path,
    seen: dict[str, str],
    pool: ProcessPoolExecutor | None,
) -> tuple[list[ManifestEntry], SourceStats]:
    part = out / ".parts" / f"{spec.package}.jsonl"
    part_stats = out / ".parts" / f"{spec.package}.stats.json"
    rate_tag = out / ".parts" / "sample_rate"
    _check_rate(rate_tag, opts.sample_rate)
    if part.exists() and part_stats.exists():  # finished in an earlier run
        entries = read_manifest(part)
        for e in entries:
            seen.setdefault(e.extra["sha1"], spec.package)
        return entries, SourceStats(**json.loads(part_stats.read_text()))

    root = Path(opts.fetch(spec.package, work))
    clips = spec.select(root)
    if not clips:
        raise HificodecError(f"{spec.package}: no speech files found in {root} (package layout changed?)")
    cfile = copyright_file(root, spec.package)
    if cfile.exists():
        shutil.copyfile(cfile, out / "licenses" / f"{spec.package}.copyright")

    stats = SourceStats(selected=len(clips))
    todo: list[tuple[SourceClip, str, ConvertJob]] = []
    for clip in clips:
        digest = file_sha1(clip.path)
        if digest in seen:
            stats.duplicates += 1
            continue
        seen[digest] = spec.package
        dst = out / "audio" / spec.package / clip.speaker / f"{_safe_stem(clip.path)}-{digest[:8]}.flac"
        todo.append((clip, digest, ConvertJob(str(clip.path), str(dst), opts.sample_rate, opts.min_seconds)))

    results = _map(convert_clip, [t[2] for t in todo], pool, desc=spec.package, progress=opts.progress)
    entries = []
    for (clip, digest, job), res in zip(todo, results):
        if res.status != "ok":
            setattr(stats, res.status, getattr(stats, res.status) + 1)
            continue
        extra: dict = {"orig": clip.path.relative_to(root).as_posix(), "orig_sample_rate": res.orig_sample_rate,
                       "orig_channels": res.orig_channels, "sha1": digest}
        if clip.group != clip.speaker:
            extra["group"] = clip.group
        entries.append(ManifestEntry(
            path=job.dst, duration=round(res.seconds, 4), speaker=clip.speaker, language=clip.language,
            source=spec.package, license=spec.license, synthetic=False,
            sample_rate=opts.sample_rate, channels=1, extra=extra,
        ))
    stats.kept = len(entries)
    write_manifest(part, entries)
    with atomic_output(part_stats) as tmp:
        Path(tmp).write_text(json.dumps(stats.__dict__) + "\n")
    return entries, stats


def _check_rate(tag: Path, sample_rate: int) -> None:
    # One OUT_DIR holds one sample rate: resuming at another rate would mix rates silently.
    if tag.exists():
        if int(tag.read_text().strip()) != sample_rate:
            raise HificodecError(
                f"{tag.parent.parent} was built at {tag.read_text().strip()} Hz; use another folder for "
                f"{sample_rate} Hz"
            )
    else:
        with atomic_output(tag) as tmp:
            Path(tmp).write_text(f"{sample_rate}\n")


def _map(fn, jobs: list, pool: ProcessPoolExecutor | None, desc: str, progress: bool) -> Iterator:
    it: Iterable = pool.map(fn, jobs, chunksize=8) if pool is not None else map(fn, jobs)
    return iter(tqdm(it, total=len(jobs), desc=desc, unit="file", disable=not progress, mininterval=2.0))


def _safe_stem(path: Path) -> str:
    stem = path.name.split(".")[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:80] or "clip"


# ---------------------------------------------------------------- summary


def summary_dict(entries: list[ManifestEntry], stats: dict[str, SourceStats], opts: CorpusOptions) -> dict:
    def hours(key) -> dict[str, float]:
        acc: dict[str, float] = defaultdict(float)
        for e in entries:
            acc[key(e)] += (e.duration or 0.0) / 3600
        return {k: round(v, 4) for k, v in sorted(acc.items())}

    return {
        "sample_rate": opts.sample_rate,
        "min_seconds": opts.min_seconds,
        "files": len(entries),
        "hours": round(sum(e.duration or 0.0 for e in entries) / 3600, 4),
        "hours_per_source": hours(lambda e: e.source),
        "hours_per_split": hours(lambda e: e.split),
        "hours_per_split_and_kind": hours(lambda e: f"{e.split}{' (synthetic)' if e.synthetic else ''}"),
        "hours_per_language": hours(lambda e: e.language or "?"),
        "speakers_per_split": {s: len({e.speaker for e in entries if e.split == s}) for s in SPLITS},
        "files_per_source": {k: v.__dict__ for k, v in stats.items()},
    }


def format_summary(entries: list[ManifestEntry], stats: dict[str, SourceStats]) -> str:
    lines = []

    def table(title: str, key, extra_cols: Callable[[str], str] | None = None, header: str = "") -> None:
        acc: dict[str, list[ManifestEntry]] = defaultdict(list)
        for e in entries:
            acc[key(e)].append(e)
        lines.append(f"{title:<28} {'hours':>7} {'files':>7} {'speakers':>8}{header}")
        for k in sorted(acc):
            es = acc[k]
            h = sum(e.duration or 0.0 for e in es) / 3600
            spk = len({e.speaker for e in es})
            lines.append(f"  {k:<26} {h:7.2f} {len(es):7d} {spk:8d}{extra_cols(k) if extra_cols else ''}")
        lines.append("")

    def dropped(src: str) -> str:
        s = stats.get(src)
        return f"  {s.duplicates:>5} {s.short:>5} {s.silent:>6} {s.unreadable:>5}" if s else ""

    table("source", lambda e: e.source or "?", dropped, "   dups short silent unrd")
    table("split", lambda e: f"{e.split}{' (synthetic)' if e.synthetic else ''}")
    table("language", lambda e: e.language or "?")
    total = sum(e.duration or 0.0 for e in entries) / 3600
    lines.append(f"total: {total:.2f} h in {len(entries)} files, {len({e.speaker for e in entries})} speakers")
    return "\n".join(lines)
