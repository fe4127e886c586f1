import pytest

import hificodec
from hificodec.cli import main
from hificodec.errors import ConfigError
from hificodec.train.replay import load_chain, plan
from tiny_codecs import TINY_RECIPES

from .conftest import RECIPES, write_clips

TINY_CHAIN = TINY_RECIPES / "tiny-chain" / "chain.yaml"


def test_the_dry_run_of_the_release_chain_lists_every_stage_with_its_start(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(RECIPES.parent)  # the chain is found by name from the repository root
    out = tmp_path / "replay"
    assert main(["replay", "hificodec-16k", "--corpus", str(tmp_path / "corpus"), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    for stage in ("1", "2", "3", "4", "5", "6", "disc-warmup", "7"):
        assert f"# stage {stage}: " in printed
    assert "hificodec data build-corpus" in printed and "--synthetic-hours 0.5" in printed
    assert f"--out {out}/stage-2 --resume optim.generator.lr=2.0e-4 train.max_steps=5000" in printed
    assert f"export {out}/stage-2 {out}/stage-3-export --checkpoint best" in printed
    assert f"train.max_steps=11535 train.init_from={out}/stage-5-export" in printed
    assert f"train.max_steps=4755 train.init_from={out}/stage-disc-warmup-export" in printed
    assert "model hificodec-16k-istft" in printed and "batch 64" in printed
    assert not out.exists()  # nothing ran


def test_until_stops_after_a_stage_and_must_name_one(tmp_path):
    chain = load_chain(RECIPES / "hificodec-16k" / "chain.yaml")
    steps = plan(chain, tmp_path / "c", tmp_path / "o", until="4")
    assert steps[-1].argv[:2] == ["export", str(tmp_path / "o" / "stage-4")]
    with pytest.raises(ConfigError, match="no stage '9'"):
        plan(chain, tmp_path / "c", tmp_path / "o", until="9")


def test_a_missing_chain_is_a_one_line_error(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "none"), "--corpus", "c", "--out", "o", "--dry-run"]) == 1
    assert "no chain" in capsys.readouterr().err


def test_a_tiny_chain_replays_resumes_and_exports_a_loadable_model(tmp_path, capsys):
    corpus, out = tmp_path / "corpus", tmp_path / "replay"
    write_clips(corpus / "train")
    args = ["replay", str(TINY_CHAIN), "--corpus", str(corpus), "--out", str(out)]
    assert main([*args, "--until", "1"]) == 0
    assert (out / "stage-1.done").exists() and not (out / "stage-2-export").exists()
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "# skipped (stage-1.done exists)" in printed and f"train.init_from={out}/stage-1-export" in printed
    model = hificodec.load(out / "stage-2-export")
    assert model.name == "tiny-hificodec"
    assert f"release tiny-chained: {out}/stage-2-export" in printed
    assert main(args) == 0  # all done: nothing runs again
    assert capsys.readouterr().out.count("# skipped") == 5
