"""apt_fetch with a fake apt-get (serves a locally built .deb) and the real dpkg."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from hificodec.errors import HificodecError
from hificodec_tools.corpus.apt_fetch import apt_fetch

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    pkg = tmp_path / "build"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: fake-speech\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@y>\nDescription: test\n"
    )
    (pkg / "usr/share/fake").mkdir(parents=True)
    (pkg / "usr/share/fake/a.txt").write_text("hello")
    deb = tmp_path / "fake-speech_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(deb)], check=True,
                   capture_output=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "apt.log"
    script = bindir / "apt-get"
    script.write_text(
        f"#!/bin/sh\necho \"$@\" >> {log}\n"
        f"if [ \"$3\" = fake-speech ]; then cp {deb} .; else echo 'E: Unable to locate package' >&2; exit 100; fi\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log


def test_download_unpack_and_skip(fake_apt, tmp_path):
    work = tmp_path / "work"
    root = apt_fetch("fake-speech", work)
    assert (root / "usr/share/fake/a.txt").read_text() == "hello"
    assert [p.name for p in (work / "debs").iterdir()] == ["fake-speech_1.0_all.deb"]
    apt_fetch("fake-speech", work)  # done: neither downloaded nor unpacked again
    assert fake_apt.read_text().count("download") == 1
    # an interrupted unpack (no completion marker) is redone, from the cached .deb
    (root / ".hificodec-unpacked").unlink()
    (root / "usr/share/fake/a.txt").unlink()
    assert (apt_fetch("fake-speech", work) / "usr/share/fake/a.txt").exists()
    assert fake_apt.read_text().count("download") == 1


def test_unknown_package_is_a_clear_error(fake_apt, tmp_path):
    with pytest.raises(HificodecError, match="cannot download Debian package nope.*Unable to locate"):
        apt_fetch("nope", tmp_path / "work")
