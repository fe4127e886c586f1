import pytest

from hificodec.config import apply_overrides, load_config
from hificodec.errors import ConfigError


def test_extends_deep_merges(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 1\nsub: {x: 1, y: 2}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nsub: {y: 3}\nb: 2\n")
    assert load_config(tmp_path / "child.yaml") == {"a": 1, "b": 2, "sub": {"x": 1, "y": 3}}


def test_preset_inherits_from_preset():
    cfg = load_config("hificodec-24k-240d-8q")
    assert cfg["quantizer"]["depth"] == 4 and cfg["quantizer"]["groups"] == 2
    assert cfg["decoder"]["upsample_rates"] == [8, 5, 3, 2]


def test_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_overrides_parse_yaml_values():
    cfg = apply_overrides({"opt": {"lr": 1.0}}, ["opt.lr=3e-4", "steps=10", "ratios=[2, 4]", "name=x"])
    assert cfg == {"opt": {"lr": 3e-4}, "steps": 10, "ratios": [2, 4], "name": "x"}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["oops"])
