"""Fetch and unpack a Debian package (`apt-get download` + `dpkg -x`), resumably.

The corpus builder takes any callable `fetch(package, work_dir) -> unpacked_root`; this is the real
one. Tests pass a fake that lays out a tiny tree instead (no network).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from hificodec.errors import HificodecError

_DONE = ".hificodec-unpacked"


class Fetcher(Protocol):
    def __call__(self, package: str, work_dir: Path) -> Path: ...


def apt_fetch(package: str, work_dir: Path) -> Path:
    """Download `package` into work_dir/debs and unpack it into work_dir/unpacked/<package>.

    Both steps are skipped when already done; an interrupted unpack is redone from scratch.
    """
    unpacked = work_dir / "unpacked" / package
    if (unpacked / _DONE).exists():
        return unpacked
    deb = _download(package, work_dir / "debs")
    tmp = work_dir / "unpacked" / f".{package}.partial"
    for stale in (tmp, unpacked):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    _run(["dpkg", "-x", str(deb), str(tmp)], f"cannot unpack {deb.name}")
    (tmp / _DONE).touch()
    tmp.rename(unpacked)
    return unpacked


def _download(package: str, debs: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    existing = sorted(debs.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    if shutil.which("apt-get") is None:
        raise HificodecError("apt-get not found: the corpus builder needs a Debian/Ubuntu system")
    # Download into a temp folder, then move: a killed download never looks like a finished .deb.
    with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as tmp:
        _run(
            ["apt-get", "download", "-q", package],
            f"cannot download Debian package {package} (run `apt-get update`; is the package in the "
            "configured apt sources?)",
            cwd=tmp,
        )
        got = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not got:
            raise HificodecError(f"apt-get download {package} produced no .deb file")
        dest = debs / got[-1].name
        got[-1].rename(dest)
    return dest


def _run(cmd: list[str], message: str, cwd: str | Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise HificodecError(f"{message}: {e.strerror}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise HificodecError(f"{message}: {detail[-1] if detail else f'exit status {proc.returncode}'}")
