"""Reading eval folders back (for `hificodec report`) and merging several into one comparison.

An eval folder is what `write_report` leaves: summary.json (per-system means), results.csv (per-file
scores) and, unless `--listen 0`, listening.json with the clips under listen/. Systems of several
folders are merged by name: a baseline that appears in more than one folder (the same Opus runs
next to two model releases) is kept once when its results are the same in each (its folder column
names them all), and once per differing run otherwise, named after its folder; a model whose name
repeats is renamed `name (folder)` so both stay in the table. Files are matched by their `file` id.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HificodecError
from .clips import LISTENING_FORMAT, LISTENING_JSON, REFERENCE
from .scoring import ROW_FIELDS

_TEXT_FIELDS = {"file", "system", "kind", "error"}


@dataclass
class EvalFolder:
    path: Path
    label: str
    summary: dict
    rows: list[dict]
    listening: dict | None  # listening.json, or None when the run kept no clips


@dataclass
class Comparison:
    """One or more eval folders merged: what the HTML page shows."""

    folders: list[EvalFolder]
    systems: list[dict]  # summary entries, each with "folder" (label) added
    rows: list[dict]  # per (file, system), system names as in `systems`
    listening: list[dict]  # [{"file", "duration_s", "clips": [{"system", "folder", "path", "audio", ...}]}]
    codecs: list[str]  # how the clips were compressed
    notes: list[str] = field(default_factory=list)  # skipped baselines, merge decisions


def read_eval_folder(path: str | os.PathLike, label: str | None = None) -> EvalFolder:
    """Load an eval folder; a clear HificodecError if `path` is not one."""
    p = Path(path)
    if not p.is_dir():
        raise HificodecError(f"{p}: no such folder")
    hint = f"{p} is not a hificodec eval folder"
    summary = _read_json(p / "summary.json", hint)
    if not isinstance(summary, dict) or not isinstance(summary.get("systems"), list) or "n_files" not in summary:
        raise HificodecError(f"{hint}: summary.json has no per-system summary")
    if not (p / "results.csv").is_file():
        raise HificodecError(f"{hint} (no results.csv)")
    rows = _read_rows(p / "results.csv", hint)
    listening = None
    if (p / LISTENING_JSON).is_file():
        listening = _read_json(p / LISTENING_JSON, hint)
        if not isinstance(listening, dict) or listening.get("format") != LISTENING_FORMAT:
            raise HificodecError(
                f"{p / LISTENING_JSON}: not a listening manifest this hificodec reads (format {LISTENING_FORMAT})"
            )
    return EvalFolder(p, label or p.resolve().name, summary, rows, listening)


def _read_json(path: Path, hint: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HificodecError(f"{hint} (no {path.name}; `hificodec eval ... --out DIR` makes one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HificodecError(f"{path}: cannot read ({e})") from None


def _read_rows(path: Path, hint: str) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "system"} <= set(reader.fieldnames):
                raise HificodecError(f"{hint}: results.csv has no file/system columns")
            return [{k: _value(k, v) for k, v in row.items() if k in ROW_FIELDS} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise HificodecError(f"{path}: cannot read ({e})") from None


def _value(key: str, text: str | None) -> Any:
    if key in _TEXT_FIELDS:
        return text or ""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def compare(folders: list[EvalFolder]) -> Comparison:
    """Merge folders (see the module doc); the first folder's order of systems and files comes first."""
    notes: list[str] = []
    systems: list[dict] = []
    taken: dict[str, str] = {}  # system name -> folder label it came from
    renames: list[dict[str, str | None]] = []  # per folder: original name -> merged name (None: dropped)
    shared = _shared_baselines(folders, notes)
    for k, f in enumerate(folders):
        mine: dict[str, str | None] = {}
        for s in f.summary["systems"]:
            name, label = s["system"], f.label
            if (k, name) in shared:
                name, label = shared[k, name]
                if name is None:  # the same run as in an earlier folder: shown once, from there
                    mine[s["system"]] = None
                    continue
            elif name in taken:
                name = _free(f"{name} ({f.label})", taken)
            taken[name] = label
            mine[s["system"]] = name
            systems.append({**s, "system": name, "folder": label})
        renames.append(mine)
        notes += [f"{f.label}: {n}" if len(folders) > 1 else str(n) for n in f.summary.get("skipped") or []]

    rows = [
        {**r, "system": renames[k][r["system"]]}
        for k, f in enumerate(folders)
        for r in f.rows
        if renames[k].get(r["system"])
    ]
    file_sets = [{r["file"] for r in f.rows} for f in folders]
    if len(folders) > 1 and any(s != file_sets[0] for s in file_sets[1:]):
        common = set.intersection(*file_sets)
        counts = ", ".join(f"{f.label} {len(s)}" for f, s in zip(folders, file_sets, strict=True))
        notes.append(
            f"the folders scored different files ({counts}; {len(common)} in common): their means are not comparable"
        )
    return Comparison(folders, systems, rows, _merge_listening(folders, renames, notes), _codecs(folders), notes)


def _shared_baselines(folders: list[EvalFolder], notes: list[str]) -> dict[tuple[int, str], tuple[str | None, str]]:
    """Baselines that several folders ran (the same Opus settings next to two model releases).

    Runs with the same per-file results are one run: it is shown once (name None for the later
    folders), its folder column naming every folder that has it. Runs that differ (other files,
    another ffmpeg) are all shown, each named after its folders. Returns (folder index, name) ->
    (merged name or None, folder label) for every baseline found in more than one folder."""
    where: dict[str, list[int]] = {}
    for k, f in enumerate(folders):
        for s in f.summary["systems"]:
            if s.get("kind") == "baseline":
                where.setdefault(s["system"], []).append(k)
    out: dict[tuple[int, str], tuple[str | None, str]] = {}
    for name, ks in where.items():
        if len(ks) < 2:
            continue
        groups: list[list[int]] = []  # folders whose runs of `name` agree, in folder order
        for k in ks:
            same = next((g for g in groups if _same_results(folders[g[0]], folders[k], name)), None)
            if same is None:
                groups.append([k])
            else:
                same.append(k)
        labels = [", ".join(folders[k].label for k in g) for g in groups]
        if len(groups) == 1:
            notes.append(f"{name} has the same results in {_and(labels[0])}: shown once")
        else:
            notes.append(f"{name} has other results in {' than in '.join(labels)}: shown once per run, "
                         "named after its folder")  # fmt: skip
        for g, label in zip(groups, labels, strict=True):
            merged = name if len(groups) == 1 else f"{name} ({label})"
            out[g[0], name] = (merged, label)
            out.update({(k, name): (None, label) for k in g[1:]})
    return out


def _and(labels: str) -> str:
    head, _, last = labels.rpartition(", ")
    return f"{head} and {last}" if head else last


def _same_results(a: EvalFolder, b: EvalFolder, system: str) -> bool:
    """Whether two folders' rows of `system` are the same run: the same files with the same scores
    (as results.csv stores them, to 6 significant digits)."""

    def scores(f: EvalFolder) -> dict[str, dict]:
        return {r["file"]: r for r in f.rows if r["system"] == system}

    mine, theirs = scores(a), scores(b)
    if mine.keys() != theirs.keys():
        return False
    keys = [k for k in ROW_FIELDS if k not in _TEXT_FIELDS | {"encode_s", "decode_s"}]  # timings vary run to run
    return all(_close(mine[f].get(k), theirs[f].get(k)) for f in mine for k in keys)


def _close(x: Any, y: Any) -> bool:
    if x is None or y is None:
        return x is y
    return math.isclose(float(x), float(y), rel_tol=1e-5, abs_tol=1e-9)


def _free(name: str, taken: dict[str, str]) -> str:
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name} #{k}"
    return out


def _codecs(folders: list[EvalFolder]) -> list[str]:
    return list(dict.fromkeys(f.listening["codec"] for f in folders if f.listening and f.listening.get("codec")))


def _merge_listening(folders: list[EvalFolder], renames: list[dict[str, str | None]], notes: list[str]) -> list[dict]:
    merged: dict[str, dict] = {}
    for k, f in enumerate(folders):
        if f.listening is None:
            notes.append(f"{f.label} kept no listening clips (eval --listen 0)")
            continue
        for item in f.listening.get("files", []):
            new = {"file": item["file"], "duration_s": item["duration_s"], "clips": []}
            entry = merged.setdefault(item["file"], new)
            have = {c["system"] for c in entry["clips"]}
            for clip in item["clips"]:
                name = REFERENCE if clip["system"] == REFERENCE else renames[k].get(clip["system"])
                if name is None or name in have:
                    continue  # a baseline kept from an earlier folder, or the reference already there
                if not (f.path / clip["audio"]).is_file():
                    notes.append(f"{f.label}: clip {clip['audio']} is missing")
                    continue
                spectrogram = clip.get("spectrogram")
                if spectrogram and not (f.path / spectrogram).is_file():
                    spectrogram = None
                entry["clips"].append({**clip, "system": name, "folder": f, "spectrogram": spectrogram})
                have.add(name)
    for entry in merged.values():  # the reference first, then systems in the table's order
        entry["clips"].sort(key=lambda c: c["system"] != REFERENCE)
    return list(merged.values())
