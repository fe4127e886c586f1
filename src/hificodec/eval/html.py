"""The report page: `index.html` built from one or more eval folders with a Jinja2 template.

The page is self-contained: styles and the few lines of script (sorting, A/B switching) are inlined
from `templates/`, media are relative links to files in the same folder, so it works from file://
and from any static server with no network. Clips of folders other than the output folder are
copied under `merged/<label>/`.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import HificodecError
from ..files import atomic_output
from .clips import REFERENCE
from .folder import Comparison, EvalFolder, compare

INDEX = "index.html"
RATE_QUALITY = "rate_quality.png"

#: summary table columns: (key, label, digits, better: "higher" | "lower" | None, tooltip)
COLUMNS: list[tuple[str, str, int, str | None, str]] = [
    ("kbps", "kbps", 2, "lower", "measured bitrate (the cost: lowest is marked); neural codecs: the raw code rate"),
    ("coded_kbps", "coded kbps", 2, "lower", "neural codecs: the codes entropy-coded with the model's tables, what "
     "its .hfc files cost (– without tables)"),
    ("pesq_wb", "PESQ-WB", 2, "higher", "PESQ wide-band MOS-LQO"),
    ("pesq_nb", "PESQ-NB", 2, "higher", "PESQ narrow-band MOS-LQO"),
    ("stoi", "STOI", 3, "higher", "short-time objective intelligibility"),
    ("estoi", "ESTOI", 3, "higher", "extended STOI"),
    ("si_sdr", "SI-SDR (dB)", 1, "higher", "scale-invariant SDR"),
    ("mel_distance", "mel dist.", 3, "lower", "multi-resolution log-mel L1"),
    ("f0_frame_error", "FFE", 3, "lower", "F0 frame error"),
    ("rtf", "RTF", 1, "higher", "real-time factor: audio seconds per wall second"),
    ("delay_ms_median", "delay (ms)", 1, None, "median delay, compensated before scoring (not ranked)"),
]
#: per-clip scores shown in the listening section
CLIP_SCORES = [("kbps", "kbps", 1), ("pesq_wb", "PESQ-WB", 2), ("stoi", "STOI", 3), ("si_sdr", "SI-SDR", 1)]


def build_page(
    folders: list[EvalFolder], out_dir: str | os.PathLike, plots: bool = True, replot: bool = True
) -> list[Path]:
    """Write `out_dir/index.html` (+ the rate-quality figure and copied clips); returns the paths written.

    `replot=False`: use `out_dir/rate_quality.png` if it is there (eval has just drawn it)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HificodecError(f"{out}: cannot create the report folder ({e.strerror})") from None
    if len(folders) > 1 and any(_same(f.path, out) for f in folders):
        raise HificodecError(f"{out}: write a comparison of several folders to a new folder, not into one of them")
    comparison = compare(folders)
    written: list[Path] = []
    plot = None
    if plots and not replot and (out / RATE_QUALITY).is_file():
        plot = RATE_QUALITY
    elif plots and any(s.get("kbps") is not None for s in comparison.systems):
        from .plots import plot_rate_quality

        n_files = max(int(f.summary["n_files"]) for f in folders)
        written.append(plot_rate_quality({"systems": comparison.systems, "n_files": n_files}, out / RATE_QUALITY))
        plot = RATE_QUALITY
    listening, media_bytes = _place_media(comparison, out, written)
    context = _context(comparison, listening, plot)
    media_bytes += _plot_bytes(out, plot)
    context["media_bytes"] = media_bytes
    # The page states the folder's size, its own included: render once to measure, then for real.
    html = _render(context | {"page_bytes": media_bytes})
    html = _render(context | {"page_bytes": media_bytes + len(html.encode())})
    path = out / INDEX
    with atomic_output(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    written.append(path)
    return written


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _plot_bytes(out: Path, plot: str | None) -> int:
    return (out / plot).stat().st_size if plot else 0


def _place_media(comparison: Comparison, out: Path, written: list[Path]) -> tuple[list[dict], int]:
    """Clips as the page links them (relative to `out`), copying those of other folders; total bytes."""
    total = 0
    items = []
    for item in comparison.listening:
        clips = []
        for clip in item["clips"]:
            folder: EvalFolder = clip["folder"]
            links: dict[str, str | None] = {}
            for key in ("audio", "spectrogram"):
                rel = clip.get(key)
                if not rel:
                    links[key] = None
                    continue
                target = rel if _same(folder.path, out) else f"merged/{_safe_label(folder.label)}/{rel}"
                if target != rel:
                    (out / target).parent.mkdir(parents=True, exist_ok=True)
                    with atomic_output(out / target) as tmp:
                        shutil.copyfile(folder.path / rel, tmp)
                    written.append(out / target)
                total += (out / target).stat().st_size
                links[key] = target
            clips.append({**clip, **links})
        items.append({**item, "clips": clips})
    return items, total


def _safe_label(label: str) -> str:
    from .clips import _safe

    return _safe(label)


def _context(c: Comparison, listening: list[dict], plot: str | None) -> dict[str, Any]:
    table = []
    for s in c.systems:
        values = {key: _system_value(s, key) for key, *_ in COLUMNS}
        table.append({"name": s["system"], "kind": s.get("kind", ""), "folder": s["folder"], "values": values,
                      "scored": (s.get("n_fully_scored"), s.get("n_files")), "best": set()})  # fmt: skip
    for key, _, _, better, _ in COLUMNS:
        present = [row["values"][key] for row in table if row["values"][key] is not None]
        if better and len(present) > 1:
            best = max(present) if better == "higher" else min(present)
            for row in table:
                if row["values"][key] == best:
                    row["best"].add(key)
    by_pair = {(r["file"], r["system"]): r for r in c.rows}
    files = []
    slots = _slots(c.systems, listening)
    for i, item in enumerate(listening):
        have = {clip["system"]: clip for clip in item["clips"]}
        clips = []
        for k, name in enumerate(slots):
            scored = by_pair.get((item["file"], name)) or {}  # none for the reference
            scores = [(label, scored.get(key), d) for key, label, d in CLIP_SCORES] if scored else []
            error = scored.get("error") or ""
            # a system without a clip of this file keeps its row (and its key), marked as missing
            clip = have.get(name) or {"system": name, "audio": None, "spectrogram": None, "folder": None,
                                      "missing": True, "error": error or "no clip of this file"}  # fmt: skip
            clips.append({"missing": False, "error": error, **clip, "key": k, "is_reference": name == REFERENCE,
                          "scores": scores})  # fmt: skip
        files.append({"index": i, "file": item["file"], "name": Path(item["file"]).name,
                      "duration_s": item["duration_s"], "clips": clips})  # fmt: skip
    first = c.folders[0].summary
    return {
        "title": "Evaluation: " + ", ".join(dict.fromkeys(str(f.summary.get("source", "?")) for f in c.folders)),
        "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "folders": c.folders,
        "columns": COLUMNS,
        "table": table,
        "plot": plot,
        "files": files,
        "n_clips": sum(not clip["missing"] for f in files for clip in f["clips"]),
        "codecs": c.codecs,
        "notes": c.notes,
        "errors": [r for r in c.rows if r.get("error")],
        "metrics": first.get("metrics", {}),
        "alignment": first.get("alignment"),
    }


def _slots(systems: list[dict], listening: list[dict]) -> list[str]:
    """The clip rows every file shows, in one order: the reference, then the systems in the summary
    table's order that have a clip of any file. Key k plays the same system in every file (the order
    clips were written in follows when each system's scoring finished, which differs from file to file)."""
    with_clips = {clip["system"] for item in listening for clip in item["clips"]}
    return [REFERENCE] * (REFERENCE in with_clips) + [s["system"] for s in systems if s["system"] in with_clips]


def _system_value(s: dict, key: str) -> float | None:
    if key in s.get("metrics", {}):
        v = s["metrics"][key].get("mean")
    else:
        v = s.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def _render(context: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError:
        raise HificodecError("the HTML page needs jinja2: pip install 'hificodec[eval]' (or eval --no-html)") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hificodec.eval", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["size"] = _size
    return env.get_template("report.html.j2").render(**context)


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def write_page(result_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, plots: bool = True) -> list[Path]:
    """`hificodec report`: read eval folders and build their page into `out_dir`."""
    from .folder import read_eval_folder

    check_distinct(result_dirs)
    labels: dict[str, int] = {}
    folders = []
    for d in result_dirs:
        name = Path(d).resolve().name or "eval"
        labels[name] = labels.get(name, 0) + 1
        folders.append(read_eval_folder(d, name if labels[name] == 1 else f"{name}#{labels[name]}"))
    return build_page(folders, out_dir, plots=plots)


def check_distinct(result_dirs: list[str | os.PathLike]) -> None:
    """Refuse a folder given twice (under any name): merging it with itself would show every system
    twice, the second time renamed as if it were another run."""
    seen: dict[Path, str] = {}
    for d in result_dirs:
        key = Path(d).resolve()
        if key in seen:
            same = "" if os.fspath(d) == seen[key] else f" (as {seen[key]})"
            raise HificodecError(f"{os.fspath(d)}: this eval folder is given twice{same}; give each folder once")
        seen[key] = os.fspath(d)
