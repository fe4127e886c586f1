"""Model releases: ids, the model hash (config + weights), and files made by another release."""

import shutil

import numpy as np
import pytest

import hificodec
from hificodec.bitstream import ModelMismatchError
from hificodec.checkpoint import installed_release, model_hash, pretrained_dir, stored_model_hash
from hificodec.cli import main
from hificodec.compress import compress, decompress
from hificodec.errors import CheckpointError
from hificodec.releases import add_release, find, read_index, split_id
from tiny_codecs import coding_model, tiny_preset

#: the installed line with a release history (@1-@5, legacy hashes), whichever model is the default
SHIPPED = "hificodec-16k"


@pytest.fixture(scope="module")
def shipped() -> hificodec.CodecModel:
    return hificodec.load(SHIPPED)


def _speechlike(seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_the_installed_folder_is_the_newest_listed_release(shipped):
    listed = read_index()[SHIPPED]
    assert [r.number for r in listed] == list(range(1, len(listed) + 1))
    release = installed_release(SHIPPED)
    assert release is not None and release == listed[-1]
    assert shipped.release == release.id == f"{SHIPPED}@{release.number}"
    assert hificodec.load(release.id).release == release.id  # NAME@N loads the installed release
    # every listed release carries test-split scores and a distinct hash
    assert all("pesq_wb" in r.scores["test"] for r in listed)
    assert len({h for r in listed for h in r.hashes()}) == sum(len(r.hashes()) for r in listed)


def test_an_earlier_or_unknown_release_is_a_clear_error():
    current = installed_release(SHIPPED)
    assert current is not None and current.number > 1
    with pytest.raises(CheckpointError, match=rf"release {SHIPPED}@1 .* is not installed: this hificodec ships "
                                              rf"{current.id}"):
        hificodec.load(f"{SHIPPED}@1")
    with pytest.raises(CheckpointError, match=r"@99 does not exist"):
        hificodec.load(f"{SHIPPED}@99")
    with pytest.raises(CheckpointError, match="positive number"):
        split_id(f"{SHIPPED}@x")


def test_a_copy_of_the_release_folder_is_the_release(tmp_path, shipped):
    copy = shutil.copytree(pretrained_dir() / SHIPPED, tmp_path / "copy")
    assert hificodec.load(copy).release == shipped.release


def test_files_name_the_release_that_made_them(shipped):
    data = compress(shipped, _speechlike(), 16000)
    assert shipped.release is not None and shipped.release.encode() in data[:200]
    audio, sr = decompress(data)  # no model given: the release named in the file is loaded
    assert sr == 16000 and audio.shape == (1, 16000)


def test_a_file_of_another_release_fails_naming_that_release(shipped):
    earlier = read_index()[SHIPPED][-2]
    as_earlier = hificodec.load(SHIPPED)
    setattr(as_earlier, "_model_hash", earlier.model_hash)  # noqa: B010 - what that release's files carry
    as_earlier.release = earlier.id
    data = compress(as_earlier, _speechlike(), 16000)
    with pytest.raises(ModelMismatchError, match=rf"made by release {earlier.id}, not by {shipped.release}"):
        decompress(data, shipped)
    with pytest.raises(CheckpointError, match=rf"made by release {earlier.id}, which is not installed"):
        decompress(data)  # the CLI's path: the release the file names is looked up


def test_files_made_before_release_ids_still_decode(shipped):
    """Such files carry the release's weights-only digest and the bare model name."""
    release = installed_release(SHIPPED)
    assert release is not None and release.legacy_hash is not None
    old = hificodec.load(SHIPPED)
    setattr(old, "_model_hash", release.legacy_hash)  # noqa: B010
    old.release = None
    data = compress(old, _speechlike(), 16000)
    a, _ = decompress(data, shipped)
    b, _ = decompress(compress(shipped, _speechlike(), 16000), shipped)
    assert np.array_equal(a, b)
    with pytest.raises(ModelMismatchError, match=rf"made by release {release.id}, not by 'tiny"):
        decompress(data, coding_model(tiny_preset("tiny-hificodec")))


def test_the_model_hash_covers_the_config_as_well_as_the_weights():
    model = coding_model(tiny_preset("tiny-hificodec"))
    other = hificodec.Codec({**model.config, "latent_norm": "none"}).eval()
    other.load_state_dict(model.state_dict())  # same tensors, a model that computes something else
    assert hificodec.weights_hash(other) == hificodec.weights_hash(model)
    assert model_hash(other) != model_hash(model)
    with pytest.raises(ModelMismatchError):
        decompress(compress(model, _speechlike(0.2), 16000), other)


def test_a_saved_model_keeps_its_hash_and_is_not_a_release(tmp_path):
    model = coding_model(tiny_preset("tiny-hificodec"))
    folder = hificodec.save(model, tmp_path / "m")
    loaded = hificodec.load(folder)
    assert model_hash(loaded) == model_hash(model) == stored_model_hash(folder)
    assert loaded.release is None and find(model_hash(model)) is None


def test_add_release_numbers_on_and_refuses_a_duplicate(tmp_path):
    index = tmp_path / "releases.json"
    first = add_release(index, "m", "aaaa", summary="one", made_by="chain", scores={}, date="2026-01-01")
    second = add_release(index, "m", "bbbb", summary="two", made_by="chain", scores={"valid": {"pesq_wb": 1.5}})
    assert (first.id, second.id) == ("m@1", "m@2")
    assert read_index(index)["m"] == [first, second]
    with pytest.raises(CheckpointError, match="already listed"):
        add_release(index, "m", "aaaa", summary="again", made_by="chain", scores={})


def test_models_command_lists_every_release_with_its_scores(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out.split("Releases")[1]
    listed = read_index()[SHIPPED]
    for r in listed:
        line = next(x for x in out.splitlines() if x.strip().startswith(r.id + " "))
        assert r.date in line and f"{r.scores['test']['pesq_wb']:g}" in line
    assert sum("installed" in x for x in out.splitlines() if x.strip().startswith(SHIPPED + "@")) == 1


def _earlier_release_file(shipped, path):
    """A file as release N-1 (not installed) would have made it."""
    earlier = read_index()[SHIPPED][-2]
    as_earlier = hificodec.load(SHIPPED)
    setattr(as_earlier, "_model_hash", earlier.model_hash)  # noqa: B010
    as_earlier.release = earlier.id
    path.write_bytes(compress(as_earlier, _speechlike(0.5), 16000))
    return earlier


@pytest.mark.parametrize("command", [["decode"], ["stream", "decode"]])
def test_a_file_of_an_uninstalled_release_is_one_sentence_naming_the_file(shipped, tmp_path, capsys, command):
    """It read "this file was made by release X, which is not installed (release X (...) is not installed:
    ... (--model DIR)); pass its model folder (--model DIR)", and did not say which file."""
    path = tmp_path / "old.hfc"
    earlier = _earlier_release_file(shipped, path)
    assert main([*command, str(path), "-o", str(tmp_path / "out.wav")]) == 1
    err = capsys.readouterr().err
    said = err.strip().split("error: ", 1)[1]
    assert said == (f"{path}: this file was made by release {earlier.id}, which is not installed (this hificodec "
                    f"ships {shipped.release}); pass that release's model folder (--model DIR)"), err  # fmt: skip
    assert not (tmp_path / "out.wav").exists()


def test_encoding_and_decoding_work_out_the_identity_once(shipped, monkeypatch):
    """The model hash, the release and the entropy tables are resolved once per encode and per decode
    (into a ModelIdentity), not looked up again by each step that needs one of them."""
    import hificodec.releases as releases
    from hificodec.identity import resolve

    lookups = []
    real = releases.read_index
    monkeypatch.setattr(releases, "read_index", lambda *a, **k: lookups.append(1) or real(*a, **k))
    data = compress(shipped, _speechlike(0.5), 16000)
    assert len(lookups) == 1
    lookups.clear()
    decompress(data, shipped)
    assert len(lookups) == 1

    identity = resolve(shipped)
    assert (identity.name, identity.release, identity.folder) == (shipped.release, installed_release(SHIPPED),
                                                                  pretrained_dir() / SHIPPED)  # fmt: skip
    assert identity.tables is not None and identity.tables.model_hash in identity.accepted_hashes
    header = identity.header(1, 16000, 8000)
    assert header.entropy_id == identity.tables.id and header.model_name == shipped.release
    identity.check(header)
    assert identity.tables_for(header) is identity.tables
