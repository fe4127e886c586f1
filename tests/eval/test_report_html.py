"""The report page (index.html) and `hificodec report`: content, merging, bad folders, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
import soundfile as sf

from hificodec.cli import main
from tiny_codecs import tiny_preset

from .browser import Browser

MODEL = "tiny-hificodec-untrained"


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    """A small eval: 3 files (one at 24 kHz), the tiny untrained model and Opus 8 kbps."""
    from hificodec.eval.baselines import resolve_ffmpeg

    from .conftest import synth_speech

    if resolve_ffmpeg() is None:  # the Opus clips would be missing: say so, not `assert 6 == 9` (a CI failure)
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg): the page's Opus clips need it")

    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    data.mkdir()
    sf.write(data / "a.wav", synth_speech(2.0, 16000, seed=1), 16000)
    sf.write(data / "b.wav", synth_speech(1.5, 24000, seed=2, f0=200.0), 24000)
    sf.write(data / "c.wav", synth_speech(2.5, 16000, seed=3), 16000)
    out = root / "eval"
    args = ["eval", str(data), "--preset", tiny_preset("tiny-hificodec"), "--baselines", "opus:8"]
    args += ["--out", str(out), "--workers", "0", "--quiet", "--spectrograms", "0"]
    assert main(args) == 0
    return out


DURATIONS = {"a.wav": 2.0, "b.wav": 1.5, "c.wav": 2.5}


def test_eval_writes_a_self_contained_page(eval_dir):
    html = (eval_dir / "index.html").read_text()
    listening = json.loads((eval_dir / "listening.json").read_text())
    assert [f["file"].rsplit("/", 1)[-1] for f in listening["files"]] == ["a.wav", "b.wav", "c.wav"]
    assert listening["codec"].startswith("Opus 64 kbps")
    for item in listening["files"]:
        assert [c["system"] for c in item["clips"]] == ["reference", MODEL, "opus-8k"]
        for clip in item["clips"]:
            assert (eval_dir / clip["audio"]).stat().st_size == clip["bytes"] > 1000
            assert (eval_dir / clip["spectrogram"]).stat().st_size < 30_000
            assert f'src="{clip["audio"]}"' in html
    # every link is relative and present: nothing is fetched from the network
    links = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert links and all((eval_dir / link).is_file() for link in links)
    assert "http://" not in html and "https://" not in html
    assert html.count("<audio") == 9 and 'src="rate_quality.png"' in html
    size = sum(p.stat().st_size for p in eval_dir.rglob("*") if p.is_file() and p.name != "results.csv")
    assert size < 500_000, size
    assert re.search(r"Size of this page with its clips and figures: \d+ kB", html)


def test_report_merges_folders_and_keeps_shared_baselines_once(eval_dir, tmp_path, capsys):
    # A second "release" against the same Opus run: the model renamed in a copy of the folder.
    other = tmp_path / "v2"
    shutil.copytree(eval_dir, other)
    for name in ("summary.json", "results.csv", "listening.json"):
        path = other / name
        path.write_text(path.read_text().replace(MODEL, "release-2"))
    for clip in other.glob(f"listen/*/{MODEL}.*"):
        clip.rename(clip.with_name("release-2" + clip.suffix))
    (other / "index.html").unlink()
    out = tmp_path / "compare"
    assert main(["report", str(eval_dir), str(other), "--out", str(out)]) == 0
    assert "report page:" in capsys.readouterr().err
    html = (out / "index.html").read_text()
    assert html.count("<audio") == 12  # reference, model, opus-8k once, release-2 per file
    assert "opus-8k has the same results in eval and v2: shown once" in html
    links = re.findall(r'src="([^"]+)"', html)
    assert any(link.startswith("merged/v2/listen/") for link in links)
    assert all((out / link).is_file() for link in links)
    table = html[html.index('id="summary-table"') : html.index("</table>")]
    assert [m for m in re.findall(r'<tr class="\w+">\s*<td data-v="([^"]+)"', table)] == [MODEL, "opus-8k", "release-2"]


def test_report_rebuilds_a_page_in_place(eval_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(eval_dir, folder)
    (folder / "index.html").unlink()
    assert main(["report", str(folder), "--no-plots"]) == 0
    html = (folder / "index.html").read_text()
    assert html.count("<audio") == 9 and "merged/" not in html


def test_report_rejects_what_is_not_an_eval_folder(eval_dir, tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert main(["report", str(tmp_path / "notes")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hificodec report: error:") and "not a hificodec eval folder" in err
    assert "Traceback" not in err
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{")
    assert main(["report", str(tmp_path / "bad")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["report", str(eval_dir), str(tmp_path / "bad")]) == 1
    assert "give --out" in capsys.readouterr().err
    shutil.copytree(eval_dir, tmp_path / "other")
    assert main(["report", str(eval_dir), str(tmp_path / "other"), "--out", str(eval_dir)]) == 1
    assert "new folder" in capsys.readouterr().err


def test_report_refuses_a_folder_given_twice(eval_dir, tmp_path, capsys):
    """`report r1 r1` used to merge the folder with itself: every system twice, the copy renamed."""
    (tmp_path / "link").symlink_to(eval_dir)
    for argv in ([str(eval_dir), str(eval_dir)], [str(eval_dir), str(tmp_path / "link"), "--out", str(tmp_path / "o")]):
        assert main(["report", *argv]) == 1
        err = capsys.readouterr().err
        assert "is given twice" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_no_html_and_no_listening(tmp_path, speech):
    sf.write(tmp_path / "x.wav", speech(1.0, 16000), 16000)
    out = tmp_path / "rep"
    args = ["eval", str(tmp_path / "x.wav"), "--preset", tiny_preset("tiny-hificodec"), "--out", str(out)]
    assert main(args + ["--workers", "0", "--quiet", "--no-plots", "--no-html", "--listen", "0"]) == 0
    assert not (out / "index.html").exists() and not (out / "listening.json").exists()
    assert main(["report", str(out), "--no-plots"]) == 0
    assert "No listening clips were kept" in (out / "index.html").read_text()


# Real browser: loads the page from file:// in headless Chromium over the DevTools protocol.

AUDIO_STATE = """Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
  const report = () => done({src: a.getAttribute('src'), duration: a.duration, expected: +a.dataset.duration,
                             error: a.error ? a.error.code : null});
  if (a.readyState >= 1 || a.error) report();
  else {
    a.addEventListener('loadedmetadata', report, {once: true});
    a.addEventListener('error', report, {once: true});
  }
})))"""

FIRST_COLUMN = "[...document.querySelectorAll('#summary-table tbody tr')].map(r => r.cells[0].dataset.v)"

CLIP_STATE = """[...document.querySelectorAll('#file-0 audio')].map(a => ({t: a.currentTime, paused: a.paused,
  active: a.closest('tr').classList.contains('active')}))"""


def test_page_in_a_real_browser(eval_dir):
    t0 = time.monotonic()
    with Browser.launch() as browser:
        page = browser.open((eval_dir / "index.html").as_uri())

        audios = page.eval(AUDIO_STATE)
        assert len(audios) == 9
        for a in audios:
            assert a["error"] is None, a
            name = a["src"].split("/")[1].split("_", 1)[1] + ".wav"
            assert abs(a["duration"] - DURATIONS[name]) < 0.1, a

        # sorting: PESQ-WB (4th column, after kbps and coded kbps) first sorts best first, a second click reverses
        assert page.eval(FIRST_COLUMN) == [MODEL, "opus-8k"]
        page.click("#summary-table th:nth-child(4)")
        assert page.eval(FIRST_COLUMN) == ["opus-8k", MODEL]
        assert page.eval("document.querySelector('#summary-table th:nth-child(4)').getAttribute('aria-sort')") == (
            "descending"
        )
        page.click("#summary-table th:nth-child(4)")
        assert page.eval(FIRST_COLUMN) == [MODEL, "opus-8k"]
        page.click("#summary-table th:nth-child(1)")
        assert page.eval(FIRST_COLUMN) == ["opus-8k", MODEL]

        # A/B while playing: the reference plays from 0.8 s; key "2" moves to opus-8k at the same point
        page.eval("(async () => { const a = document.querySelector('#file-0 audio'); a.currentTime = 0.8;"
                  " await a.play(); await new Promise(r => setTimeout(r, 300)); })()")  # fmt: skip
        ref, _, _ = page.eval(CLIP_STATE)
        assert not ref["paused"] and ref["t"] > 0.8
        page.key("2")
        ref, model, opus = page.eval(CLIP_STATE)
        assert ref["paused"] and not opus["paused"] and opus["active"] and not ref["active"]
        assert -0.02 < opus["t"] - ref["t"] < 0.25, (ref, opus)  # seeks land on a decoder frame
        page.eval("new Promise(r => setTimeout(r, 300))")
        assert page.eval(CLIP_STATE)[2]["t"] > opus["t"] + 0.1  # and it plays on from there
        # A/B while paused, with the buttons: the position moves exactly
        opus_audio = "document.querySelectorAll('#file-0 audio')[2]"
        page.eval(f"(() => {{ const a = {opus_audio}; a.pause(); a.currentTime = 1.25; }})()")
        page.click("#file-0 button.switch[data-k='1']")
        ref, model, opus = page.eval(CLIP_STATE)
        assert model["active"] and model["paused"] and abs(model["t"] - 1.25) < 0.02, model
        page.key("0")
        ref, model, opus = page.eval(CLIP_STATE)
        assert ref["active"] and abs(ref["t"] - 1.25) < 0.02, ref

        # every image (spectrograms load lazily) once scrolled into view
        page.eval("window.scrollTo(0, document.body.scrollHeight)")
        images = page.eval("""new Promise(r => setTimeout(r, 300)).then(() =>
            [...document.images].map(i => i.complete && i.naturalWidth > 0))""")
        assert len(images) == 10 and all(images)
        assert page.errors == []
    assert time.monotonic() - t0 < 60
