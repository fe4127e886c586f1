"""Every command that writes a file refuses to write over its input, even with --force (the input would
be gone: `stream encode a.wav -o a.wav --force` used to leave nothing), and refuses an existing output
without --force (`entropy fit -o EXISTING` used to replace tables that coded files still need)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

import hificodec
from hificodec.checkpoint import model_hash
from hificodec.cli import main
from hificodec.entropy import load_tables
from tiny_codecs import calibration_audio, coding_model, tiny_preset

SRC = str(Path(hificodec.__file__).parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs")
    hificodec.save(coding_model(tiny_preset("tiny-hificodec-16k-causal")), root / "tiny")
    sf.write(root / "clip.wav", calibration_audio(16000, seed=7, clips=1).reshape(-1).numpy()[:8000], 16000)
    assert main(["encode", str(root / "clip.wav"), "--model", str(root / "tiny"), "-o", str(root / "clip.hfc"),
                 "--no-entropy", "-q"]) == 0  # fmt: skip
    return root


def _refused(argv: list[str], path: Path, capsys) -> None:
    """The command exits 1 with one line saying so, and `path` is byte for byte what it was."""
    before = path.read_bytes()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "would overwrite its input" in err and len(err.strip().splitlines()) == 1, err
    assert path.read_bytes() == before


WRITERS = [
    ["encode", "{wav}", "-o", "{wav}"],
    ["decode", "{hfc}", "-o", "{hfc}"],
    ["reconstruct", "{wav}", "-o", "{wav}"],
    ["stream", "encode", "{wav}", "-o", "{wav}"],
    ["stream", "decode", "{hfc}", "-o", "{hfc}"],
]
#: the demos take no --force (they write their output whatever is there), but never over their input
DEMOS = [["stream", "demo", "--fast", "--input", "{wav}", "-o", "{wav}"], ["demo", "--input", "{wav}", "-o", "{wav}"]]


CASES = [(c, f) for c in WRITERS for f in (False, True)] + [(c, False) for c in DEMOS]


@pytest.mark.parametrize("command, force", CASES)
def test_the_input_is_never_the_output(setup, capsys, command, force):
    root = setup
    names = {"wav": str(root / "clip.wav"), "hfc": str(root / "clip.hfc")}
    argv = [a.format(**names) for a in command] + ["--model", str(root / "tiny")] + (["--force"] * force)
    _refused(argv, Path(names["hfc"] if "{hfc}" in command else names["wav"]), capsys)


def test_a_link_to_the_input_is_the_input(setup, tmp_path, capsys):
    link = tmp_path / "link.wav"
    link.symlink_to(setup / "clip.wav")
    hard = tmp_path / "hard.wav"
    os.link(setup / "clip.wav", hard)
    for out in (link, hard):
        _refused(["encode", str(setup / "clip.wav"), "-o", str(out), "--force", "--model", str(setup / "tiny")],
                 setup / "clip.wav", capsys)  # fmt: skip


def test_stream_encode_from_stdin_redirected_from_the_output(setup):
    """`stream encode - -o a.wav --force < a.wav`: standard input is the output file."""
    wav = setup / "clip.wav"
    before = wav.read_bytes()
    with open(wav, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "hificodec", "stream", "encode", "-", "-o", str(wav), "--force",
                               "--model", str(setup / "tiny")], stdin=stdin, capture_output=True, env=ENV,
                              timeout=120)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "would overwrite its input" in err and "Traceback" not in err, err
    assert wav.read_bytes() == before


def test_entropy_fit_refuses_an_existing_file_without_force(setup, tmp_path, capsys):
    tokens = tmp_path / "tokens"
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"{i}.wav", calibration_audio(16000, seed=i, clips=1).reshape(-1).numpy(), 16000)
    assert main(["tokenize", str(audio), "--out", str(tokens), "--model", str(setup / "tiny"), "--workers", "0",
                 "-q"]) == 0  # fmt: skip
    out = tmp_path / "entropy.safetensors"
    out.write_bytes(b"tables that coded files still need")
    code = main(["entropy", "fit", str(tokens), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "already exists (use --force to overwrite)" in err and "Traceback" not in err, err
    assert out.read_bytes() == b"tables that coded files still need"
    assert main(["entropy", "fit", str(tokens), "-o", str(out), "--force"]) == 0
    assert load_tables(out).model_hash == model_hash(hificodec.load(setup / "tiny"))  # the new tables
    capsys.readouterr()
    # the fit's own inputs are never its output
    _refused(["entropy", "fit", str(tokens), "-o", str(tokens / "tokens.json"), "--force"], tokens / "tokens.json",
             capsys)  # fmt: skip


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _folder_refused(argv: list[str], folder: Path, capsys) -> str:
    """The command exits 1 with one line saying so, and `folder` holds exactly what it held."""
    before = _tree(folder)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "would overwrite its input" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(folder) == before
    return err


def test_folder_outputs_are_never_their_inputs(setup, tmp_path, capsys):
    """Outputs that are folders (`tokenize --out`, `eval --out`, `export`) lacked the check files have:
    `tokenize data --out data` wrote its codes and manifest into the data, `tokenize data/manifest.jsonl
    --out data` replaced the manifest it read, and `export RUN RUN` replaced the run with the export."""
    data = tmp_path / "data"
    data.mkdir()
    sf.write(data / "a.wav", calibration_audio(16000, seed=1, clips=1).reshape(-1).numpy()[:8000], 16000)
    (data / "manifest.jsonl").write_text(f'{{"path": "{data / "a.wav"}"}}\n')
    model = ["--model", str(setup / "tiny")]
    _folder_refused(["tokenize", str(data), "--out", str(data), *model, "-q"], data, capsys)
    err = _folder_refused(["tokenize", str(data / "manifest.jsonl"), "--out", str(data), *model, "-q"], data, capsys)
    assert f"{data / 'manifest.jsonl'}: would overwrite its input" in err
    (tmp_path / "link").symlink_to(data)
    _folder_refused(["eval", str(data), "--out", str(tmp_path / "link"), *model, "--quiet"], data, capsys)
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    for out in (run, tmp_path / "runs"):
        _folder_refused(["export", str(run), str(out)], tmp_path / "runs", capsys)
    # a folder next to the input, or inside it, is fine
    assert main(["tokenize", str(data), "--out", str(data / "tokens"), *model, "--workers", "0", "-q"]) == 0
