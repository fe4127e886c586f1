"""Write an evaluation report: results.csv, summary.json, summary.md and plots (all atomically)."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from ..errors import HificodecError
from ..files import atomic_output, check_output_folder
from .runner import EvalReport
from .scoring import ROW_FIELDS


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def write_results_csv(rows: list[dict], path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(ROW_FIELDS)
        for row in rows:
            w.writerow([_cell(row.get(k)) for k in ROW_FIELDS])


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else str(x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def write_summary_json(summary: dict, path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(_json_safe(summary), f, indent=2)
        f.write("\n")


def _fmt(v, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def summary_markdown(summary: dict) -> str:
    lines = [
        f"# Evaluation: {summary['source']}",
        "",
        f"{summary['n_files']} files"
        + (f", split {summary['split']}" if summary.get("split") else "")
        + f"; hificodec {summary['hificodec_version']}; {summary['created']}",
        "",
        "| system | kbps | coded kbps | PESQ-WB | PESQ-NB | STOI | ESTOI | mel dist. | FFE | SI-SDR (dB) | RTF "
        "| delay (ms) | scored |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary["systems"]:
        m = {k: v["mean"] for k, v in s["metrics"].items()}
        lines.append(
            f"| {s['system']} | {_fmt(s['kbps'])} | {_fmt(s.get('coded_kbps'))} | {_fmt(m['pesq_wb'])} "
            f"| {_fmt(m['pesq_nb'])} "
            f"| {_fmt(m['stoi'], 3)} | {_fmt(m['estoi'], 3)} | {_fmt(m['mel_distance'], 3)} "
            f"| {_fmt(m['f0_frame_error'], 3)} "
            f"| {_fmt(m['si_sdr'], 1)} | {_fmt(s.get('rtf'), 1)} | {_fmt(s['delay_ms_median'], 1)} "
            f"| {s['n_fully_scored']}/{s['n_files']} |"
        )
    models = [s for s in summary["systems"] if s["kind"] == "model"]
    if models:
        lines += [
            "",
            "| model | codebooks | usage (per codebook) | entropy bits/code | entropy kbps | RTF enc | RTF dec |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in models:
            usage = ", ".join(f"{u:.0%}" for u in s["codebook_usage"])
            ent = ", ".join(f"{e:.2f}" for e in s["codebook_entropy_bits"])
            lines.append(
                f"| {s['system']} | {s['num_codebooks']} × {s['codebook_size']} | {usage} | {ent} "
                f"| {_fmt(s['entropy_kbps'])} | {_fmt(s['rtf_encode'], 1)} | {_fmt(s['rtf_decode'], 1)} |"
            )
    lines += ["", "Metrics:", ""] + [f"- `{k}`: {v}" for k, v in summary["metrics"].items()]
    lines += [
        f"- alignment: {summary['alignment']}",
        "- kbps: measured (neural: code bits at the model's frame rate; classical: encoded file size, "
        "container included); coded kbps: a neural codec's codes entropy-coded with its tables, what its .hfc "
        "files cost (– without tables); RTF = audio seconds per wall second (baselines: ffmpeg process time)",
    ]
    if summary["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {n}" for n in summary["skipped"]]
    failed = sum(s["n_with_errors"] for s in summary["systems"])
    if failed:
        lines += [
            "",
            f"{failed} (file, system) pairs have missing metrics: see the `error` column of results.csv.",
        ]
    return "\n".join(lines) + "\n"


#: what `write_report` writes into its folder (spectrogram_NN_*.png besides)
REPORT_FILES = ["results.csv", "summary.json", "summary.md", "rate_quality.png", "listening.json", "listen",
                "index.html"]  # fmt: skip


def check_report_folder(out_dir: str | os.PathLike, source: str | os.PathLike) -> None:
    """Refuse a report folder that would overwrite the evaluated data (the data folder itself, or a
    manifest or file list named as a report file), before any work starts."""
    check_output_folder(out_dir, [source], writes=REPORT_FILES)


def write_report(
    report: EvalReport, out_dir: str | os.PathLike, plots: bool = True, html: bool = True, ffmpeg: str | None = None
) -> list[Path]:
    """Write all report files into `out_dir` (created if needed); returns the paths written.

    Besides the tables and figures: the listening clips of `report.listen_files` (listening.json,
    listen/; `ffmpeg` compresses them) and, with `html`, the page index.html built from the folder
    as `hificodec report` would build it."""
    check_report_folder(out_dir, report.summary["source"])
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HificodecError(f"{out}: cannot create the report folder ({e.strerror})") from None
    written = [out / "results.csv", out / "summary.json", out / "summary.md"]
    write_results_csv(report.rows, written[0])
    write_summary_json(report.summary, written[1])
    with atomic_output(written[2]) as tmp:
        Path(tmp).write_text(summary_markdown(report.summary), encoding="utf-8")
    if plots:
        from .plots import plot_rate_quality, plot_spectrograms

        written.append(plot_rate_quality(report.summary, out / "rate_quality.png"))
        for i, file in enumerate(report.spectrogram_files):
            audios = report.examples[file]
            if len(audios) > 1:
                written.append(plot_spectrograms(file, audios, out / f"spectrogram_{i:02d}_{Path(file).stem}.png"))
    if report.listen_files:
        from .clips import write_listening

        written += write_listening(report, out, ffmpeg=ffmpeg, spectrograms=plots)
    if html:
        from .folder import read_eval_folder
        from .html import build_page

        # Built from what was just written, so that eval's page and `hificodec report`'s are the same.
        page = build_page([read_eval_folder(out)], out, plots=plots, replot=False)
        written += [p for p in page if p not in written]
    return written
