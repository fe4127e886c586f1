import os

import pytest

from hificodec.errors import HificodecError
from hificodec.files import atomic_directory, atomic_output, remove_partial_outputs


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_output_appears_whole_with_the_usual_permissions(tmp_path, umask_022):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_output(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"new")
        assert target.read_bytes() == b"old"  # not replaced until the block succeeds
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_failed_atomic_output_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with pytest.raises(HificodecError, match="does not exist"), atomic_output(tmp_path / "nowhere" / "x"):
        pass


def test_an_interrupt_while_the_temp_file_is_made_leaves_no_temp(tmp_path, monkeypatch):
    """SIGTERM becomes an exception (the CLI's handler); landing right after the temp file exists, inside
    `__enter__`, it left a `.part` file, since `__exit__` does not run for a failed `__enter__`."""
    real_close = os.close

    def interrupted(fd):
        real_close(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "close", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "out.wav"):
        pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_a_folder_whole(tmp_path, umask_022):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["stale"]  # the failed write changed nothing
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("new")
    assert [p.name for p in target.iterdir()] == ["weights"]
    assert target.stat().st_mode & 0o777 == 0o755 and (target / "weights").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or .old folder left


def test_remove_partial_outputs_clears_what_a_killed_run_left(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in (".a.wav.x1y2.part", "sub/.b.hfc.z3.part", "a.wav", ".hidden"):
        (tmp_path / name).write_text("")
    assert remove_partial_outputs(tmp_path, names=["b.hfc"]) == 1
    assert remove_partial_outputs(tmp_path) == 1
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [".hidden", "a.wav", "sub"]
