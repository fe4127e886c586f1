import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import hificodec
from hificodec.checkpoint import CONFIG_FILE, DIGEST_FILE, WEIGHTS_FILE, read_digest
from tiny_codecs import tiny_preset


@pytest.fixture()
def trained_dir(tmp_path):
    """A saved model without its digest (as older saves left folders), so that the tests that edit its
    files see the structural checks (tests/test_robustness.py covers the digest)."""
    model = hificodec.build(tiny_preset("tiny-encodec"))
    model.train()(torch.randn(2, 1, 3200) * 0.1)  # k-means init changes the codebook buffers
    directory = hificodec.save(model, tmp_path / "ckpt")
    (directory / DIGEST_FILE).unlink()
    return model, directory


def test_save_load_gives_identical_codes(trained_dir):
    model, directory = trained_dir
    assert (directory / WEIGHTS_FILE).is_file() and (directory / CONFIG_FILE).is_file()
    assert yaml.safe_load((directory / CONFIG_FILE).read_text())["format_version"] == 1
    loaded = hificodec.load(directory)
    assert not loaded.training
    wav = torch.randn(1, 1, 4000) * 0.1
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.encode(wav), loaded.encode(wav))
    assert hificodec.weights_hash(loaded) == hificodec.weights_hash(model)


def test_weights_hash_changes_with_weights(trained_dir):
    model, _ = trained_dir
    h = hificodec.weights_hash(model)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert hificodec.weights_hash(model) != h


def test_fp16_storage_loads(tmp_path):
    model = hificodec.build(tiny_preset("tiny-hificodec"))
    d = hificodec.save(model, tmp_path / "half", dtype=torch.float16)
    assert load_file(str(d / WEIGHTS_FILE))["decoder.conv_post.conv.bias"].dtype == torch.float16
    loaded = hificodec.load(d)
    assert next(loaded.parameters()).dtype == torch.float32


def test_wrong_shape_names_the_tensor(trained_dir):
    _, directory = trained_dir
    state = load_file(str(directory / WEIGHTS_FILE))
    name = "decoder.model.0.conv.bias"
    state[name] = torch.zeros(3)
    save_file(state, str(directory / WEIGHTS_FILE))
    with pytest.raises(hificodec.CheckpointError, match=rf"'{name}' has shape \(3,\)"):
        hificodec.load(directory)


def test_missing_tensor_named(trained_dir):
    _, directory = trained_dir
    state = load_file(str(directory / WEIGHTS_FILE))
    del state["quantizer.rvqs.0.layers.1.embed"]
    save_file(state, str(directory / WEIGHTS_FILE))
    with pytest.raises(hificodec.CheckpointError, match="'quantizer.rvqs.0.layers.1.embed' is missing"):
        hificodec.load(directory)


def test_truncated_file_fails_clearly(trained_dir):
    _, directory = trained_dir
    data = (directory / WEIGHTS_FILE).read_bytes()
    (directory / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(hificodec.CheckpointError, match="corrupt or truncated"):
        hificodec.load(directory)


def test_config_mismatch_and_version(trained_dir):
    _, directory = trained_dir
    cfg = yaml.safe_load((directory / CONFIG_FILE).read_text())
    cfg["latent_dim"] = 32
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(cfg))
    with pytest.raises(hificodec.CheckpointError, match="has shape"):
        hificodec.load(directory)
    cfg["format_version"] = 99
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(cfg))
    with pytest.raises(hificodec.CheckpointError, match="format version 99"):
        hificodec.load(directory)


def test_unknown_name_lists_models(tmp_path):
    with pytest.raises(hificodec.CheckpointError, match="neither a checkpoint directory nor a shipped model"):
        hificodec.load(tmp_path / "nope")


def test_sharded_save_loads_the_same_weights(trained_dir, tmp_path):
    model, _ = trained_dir
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    shard_mib = total / 3 / 2**20  # about three shards
    directory = hificodec.save(model, tmp_path / "sharded", shard_mib=shard_mib)
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 3 and not (directory / WEIGHTS_FILE).exists()
    assert all(p.stat().st_size <= shard_mib * 2**20 + 4096 for p in shards)  # + the safetensors header
    assert hificodec.weights_hash(hificodec.load(directory)) == hificodec.weights_hash(model)


def test_a_missing_or_altered_shard_is_an_error(trained_dir, tmp_path):
    model, _ = trained_dir
    directory = hificodec.save(model, tmp_path / "sharded", shard_mib=0.5)
    (directory / DIGEST_FILE).unlink()  # the structural checks, for folders without a digest
    shards = sorted(directory.glob("model-*-of-*.safetensors"))
    first = load_file(str(shards[0]))
    save_file(dict(list(first.items())[:-1]), str(shards[0]))  # one tensor fewer than the index lists
    with pytest.raises(hificodec.CheckpointError, match="other tensors than"):
        hificodec.load(directory)
    save_file(first, str(shards[0]))
    hificodec.load(directory)
    shards[-1].unlink()
    with pytest.raises(hificodec.CheckpointError, match="missing weights file"):
        hificodec.load(directory)


def test_save_keeps_the_chosen_bitrate(trained_dir, tmp_path):
    """`set_num_codebooks` was dropped by save: the reloaded model coded at the full bitrate."""
    model, _ = trained_dir
    model.set_num_codebooks(2)
    loaded = hificodec.load(hificodec.save(model, tmp_path / "two"))
    assert loaded.num_codebooks == 2 and loaded.bitrate == model.bitrate
    wav = torch.randn(1, 1, 4000) * 0.1
    with torch.no_grad():
        assert loaded.encode(wav).shape[1] == 2
    assert hificodec.build(tmp_path / "two" / CONFIG_FILE).num_codebooks == model.max_codebooks
    model.set_num_codebooks(model.max_codebooks)
    assert "active_codebooks" not in (hificodec.save(model, tmp_path / "all") / CONFIG_FILE).read_text()


def test_saving_over_a_model_folder_keeps_what_else_it_holds(tmp_path):
    """Re-saving (e.g. `hificodec.save(hificodec.load(DIR), DIR)` to add checksums) replaces the weights and
    config but keeps entropy tables, a discriminator and the user's own files, and the digest covers them."""
    from hificodec.checkpoint import read_digest

    model = hificodec.build(tiny_preset("tiny-hificodec"))
    folder = hificodec.save(model, tmp_path / "m", shard_mib=0.05)
    assert len(list(folder.glob("model-*.safetensors"))) > 1
    (folder / "NOTES.txt").write_text("mine")
    (folder / "discriminator").mkdir()
    (folder / "discriminator" / "config.yaml").write_text("x: 1\n")
    hificodec.save(hificodec.load(folder), folder)  # unsharded this time: the old shards go
    assert (folder / "NOTES.txt").read_text() == "mine" and (folder / "discriminator" / "config.yaml").is_file()
    assert not list(folder.glob("model-*.safetensors"))
    assert set(read_digest(folder) or {}) == {"config.yaml", "model.safetensors", "NOTES.txt"}
    assert hificodec.weights_hash(hificodec.load(folder)) == hificodec.weights_hash(model)


@pytest.mark.parametrize("shard_mib", [None, 0.5])
def test_a_flipped_bit_in_the_weights_is_caught_by_the_digest(tmp_path, shard_mib):
    """One low mantissa bit flipped in a saved tensor leaves a valid, finite safetensors file that the
    structural checks accept; the SHA-256 digest written by `save` refuses it, naming the file."""
    model = hificodec.build(tiny_preset("tiny-encodec"))
    directory = hificodec.save(model, tmp_path / "ckpt", shard_mib=shard_mib)
    target = sorted(directory.glob("model*.safetensors"))[-1]
    assert target.name in (read_digest(directory) or {})
    data = bytearray(target.read_bytes())
    data[-8] ^= 0x01  # the last tensor's data: the lowest bit of a float32's mantissa
    target.write_bytes(bytes(data))
    assert all(bool(torch.isfinite(t).all()) for t in load_file(str(target)).values())
    with pytest.raises(hificodec.CheckpointError, match=f"{target.name} does not match its SHA-256"):
        hificodec.load(directory)
    (directory / DIGEST_FILE).unlink()  # without the digest the same file loads: only the digest saw it
    assert hificodec.weights_hash(hificodec.load(directory)) != hificodec.weights_hash(model)
