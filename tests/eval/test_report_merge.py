"""The report page built from hand-made eval folders: the order of the listening clips and how the
systems of several folders are merged. No model runs: each folder is written here as `eval` writes it."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from hificodec.cli import main
from hificodec.eval.clips import LISTENING_FORMAT, LISTENING_JSON
from hificodec.eval.metrics import METRICS
from hificodec.eval.scoring import ROW_FIELDS

FILES = ["a.wav", "b.wav", "c.wav"]


def eval_folder(path: Path, scores: dict[str, tuple[str, dict[str, float]]], clips: dict[str, list[str]]) -> Path:
    """A folder as `hificodec eval --out` leaves it. scores: system -> (kind, {file: PESQ-WB});
    clips: file -> the systems whose clip listening.json lists for it, in that order."""
    path.mkdir(parents=True)
    rows, systems = [], []
    for system, (kind, by_file) in scores.items():
        for file, value in by_file.items():
            rows.append({"file": file, "system": system, "kind": kind, "duration_s": 1.0, "sample_rate": 16000,
                         "kbps": 8.0, **dict.fromkeys(METRICS, value), "error": ""})  # fmt: skip
        mean = sum(by_file.values()) / len(by_file)
        systems.append({"system": system, "kind": kind, "n_files": len(by_file), "n_fully_scored": len(by_file),
                        "n_with_errors": 0, "kbps": 8.0, "delay_ms_median": 0.0,
                        "metrics": {m: {"mean": mean, "std": 0.0, "n": len(by_file)} for m in METRICS}})  # fmt: skip
    summary = {"source": "data", "n_files": len(FILES), "split": None, "hificodec_version": "test",
               "created": "2026-01-01T00:00:00+00:00", "metrics": {}, "alignment": "", "skipped": [],
               "systems": systems}  # fmt: skip
    (path / "summary.json").write_text(json.dumps(summary))
    with open(path / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    items = []
    for i, (file, names) in enumerate(clips.items()):
        entries = []
        for name in names:
            audio = f"listen/{i:02d}_{Path(file).stem}/{name}.flac"
            (path / audio).parent.mkdir(parents=True, exist_ok=True)
            (path / audio).write_bytes(b"fLaC" + bytes(100))
            entries.append({"system": name, "audio": audio, "bytes": 104, "duration_s": 1.0, "spectrogram": None})
        items.append({"file": file, "duration_s": 1.0, "clips": entries})
    listening = {"format": LISTENING_FORMAT, "codec": "FLAC", "files": items}
    (path / LISTENING_JSON).write_text(json.dumps(listening))
    return path


def keys_by_file(html: str) -> dict[str, dict[str, str]]:
    """file -> {system: the key of its row} as the page's listening section gives them."""
    out = {}
    articles = re.findall(r'<article class="item" id="file-\d+" data-file="([^"]+)">(.*?)</article>', html, re.S)
    for file, body in articles:
        rows = re.findall(r'data-system="([^"]+)">\s*<td class="ab"><button type="button" class="switch" '
                          r'data-k="(\d+)"', body)  # fmt: skip
        out[file] = dict(rows)
    return out


def players(html: str, file: str) -> list[str]:
    body = html.split(f'data-file="{file}"')[1].split("</article>")[0]
    return re.findall(r'<audio [^>]*data-k="(\d+)"', body)


def test_keys_play_the_same_system_in_every_file(tmp_path):
    """Clips were listed in the order their scoring finished (another order per file, with a worker
    pool), and a file without some system's clip shifted the keys after it: key 2 played opus in one
    file and the model in the next."""
    scores = {"model": ("model", dict.fromkeys(FILES, 2.0)), "opus-8k": ("baseline", dict.fromkeys(FILES, 3.0))}
    clips = {"a.wav": ["reference", "model", "opus-8k"], "b.wav": ["reference", "opus-8k", "model"],
             "c.wav": ["reference", "opus-8k"]}  # fmt: skip
    folder = eval_folder(tmp_path / "run", scores, clips)
    assert main(["report", str(folder), "--no-plots"]) == 0
    html = (folder / "index.html").read_text()
    keys = keys_by_file(html)
    assert list(keys) == FILES
    assert all(k == {"reference": "0", "model": "1", "opus-8k": "2"} for k in keys.values()), keys
    assert players(html, "c.wav") == ["0", "2"]  # the model's row is there, marked, with no player
    assert "no clip" in html.split('data-file="c.wav"')[1]


ACTIVE = "[...document.querySelectorAll('.item')].map(i => (i.querySelector('tr.clip.active') || {}).dataset)" \
         ".map(d => d ? d.system : null)"


def test_keys_in_a_real_browser_skip_a_missing_clip(tmp_path):
    from .browser import Browser

    scores = {"model": ("model", dict.fromkeys(FILES, 2.0)), "opus-8k": ("baseline", dict.fromkeys(FILES, 3.0))}
    clips = {"a.wav": ["reference", "opus-8k", "model"], "b.wav": ["reference", "model", "opus-8k"],
             "c.wav": ["reference", "opus-8k"]}  # fmt: skip
    folder = eval_folder(tmp_path / "run", scores, clips)
    assert main(["report", str(folder), "--no-plots"]) == 0
    with Browser.launch() as browser:
        page = browser.open((folder / "index.html").as_uri())
        page.key("2")  # the first file is current: key 2 is opus there, though its clip was listed first
        assert page.eval(ACTIVE)[0] == "opus-8k"
        page.click("#file-2 h3")
        page.key("2")
        page.key("1")  # the model has no clip of c.wav: nothing to switch to
        assert page.eval(ACTIVE)[2] == "opus-8k"
        page.key("0")
        assert page.eval(ACTIVE)[2] == "reference"
        page.key("n")  # the next system this file has a clip of
        assert page.eval(ACTIVE)[2] == "opus-8k"


def summary_rows(html: str) -> list[tuple[str, str]]:
    """(system, folder) of each row of the summary table."""
    table = html[html.index('id="summary-table"') : html.index("</table>")]
    return re.findall(r'<tr class="\w+">\s*<td data-v="([^"]+)">[^<]*</td>\s*<td data-v="([^"]+)">', table)


def test_a_baseline_run_found_in_several_folders(tmp_path):
    """`report A B` took a shared baseline from A alone and said nothing of B's run, even when B's
    differed (other files, another ffmpeg)."""
    opus = ("baseline", dict.fromkeys(FILES, 3.0))
    clips = dict.fromkeys(FILES, ["reference", "opus-8k"])
    a = eval_folder(tmp_path / "a", {"m1": ("model", dict.fromkeys(FILES, 2.0)), "opus-8k": opus}, clips)
    b = eval_folder(tmp_path / "b", {"m2": ("model", dict.fromkeys(FILES, 2.5)), "opus-8k": opus}, clips)
    other = ("baseline", {**dict.fromkeys(FILES, 3.0), "c.wav": 1.0})
    c = eval_folder(tmp_path / "c", {"m3": ("model", dict.fromkeys(FILES, 2.2)), "opus-8k": other}, clips)

    assert main(["report", str(a), str(b), "--out", str(tmp_path / "ab"), "--no-plots"]) == 0
    html = (tmp_path / "ab" / "index.html").read_text()
    assert summary_rows(html) == [("m1", "a"), ("opus-8k", "a, b"), ("m2", "b")]
    assert "opus-8k has the same results in a and b: shown once" in html
    assert all(k == {"reference": "0", "opus-8k": "1"} for k in keys_by_file(html).values())

    assert main(["report", str(a), str(b), str(c), "--out", str(tmp_path / "abc"), "--no-plots"]) == 0
    html = (tmp_path / "abc" / "index.html").read_text()
    assert summary_rows(html) == [("m1", "a"), ("opus-8k (a, b)", "a, b"), ("m2", "b"), ("m3", "c"),
                                  ("opus-8k (c)", "c")]  # fmt: skip
    assert "opus-8k has other results in a, b than in c" in html
    assert html.count('src="merged/c/listen/') == 3 and 'src="merged/b/listen/' not in html
