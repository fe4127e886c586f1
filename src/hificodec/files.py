"""Writing outputs atomically: a file or a folder appears whole or not at all (a crash, a kill or an
error leaves the previous content, or nothing, plus at most a hidden temp name that
`remove_partial_outputs` clears), with the permissions plain open/mkdir would have given it; and
never over an input (`is_same_file`, `check_output_folder`)."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import HificodecError

PARTIAL_SUFFIX = ".part"  # `.NAME.XXXX.part`: an `atomic_output` temp file


class atomic_output:
    """Context manager yielding a temp path next to `path`; renamed onto `path` only on success.

    `keep`: asked when the block fails; True renames what was written all the same. For outputs that
    are valid whenever they are cut (a stream written group by group: `stream encode`/`decode` keep
    what they coded of an input that was cut short), and only once they hold something."""

    def __init__(self, path: str | os.PathLike, keep: Callable[[], bool] | None = None):
        self.path = Path(path)
        self.tmp: str | None = None
        self.keep = keep

    def __enter__(self) -> str:
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise HificodecError(f"{self.path}: output folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise HificodecError(f"{self.path}: output folder {parent} is not writable")
        # The name is chosen before the file exists, so that an exception raised by a signal handler
        # (the CLI turns SIGTERM into one) anywhere in here still finds the file to remove: `__exit__`
        # never runs for a failed `__enter__`, and a SIGTERM sent as soon as the file appears hit that.
        while True:
            self.tmp = str(parent / f".{self.path.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
            try:
                os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return self.tmp
            except FileExistsError:
                continue  # another writer's temp file: not ours to remove
            except BaseException:
                if os.path.exists(self.tmp):
                    os.unlink(self.tmp)
                raise

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None or (self.keep is not None and self.keep()):
            # mkstemp creates 0600 files; give the result the usual permissions (0666 minus umask).
            os.chmod(self.tmp, 0o666 & ~_umask())
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes 0700 folders and some writers (safetensors) 0600 files: give a finished folder
    what plain mkdir/open would have (0777/0666 minus the umask)."""
    umask = _umask()
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~umask)


def remove_partial_outputs(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Delete the temp files that `atomic_output` leaves when a run is killed (`.NAME.XXXX.part`),
    under `folder` recursively; with `names`, only those belonging to these output names."""
    wanted = set(names) if names is not None else None
    removed = 0
    for root, _, files in os.walk(os.fspath(folder)):
        for f in files:
            if not (f.startswith(".") and f.endswith(PARTIAL_SUFFIX)):
                continue
            if wanted is not None and f[1:].rsplit(".", 2)[0] not in wanted:
                continue
            os.unlink(os.path.join(root, f))
            removed += 1
    return removed


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to `path`; on success it replaces `path` whole, on error it is deleted.
    A reader never sees a half-written folder (the old one is swapped out, then removed)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        _usual_permissions(tmp)
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def is_same_file(src: str | os.PathLike, out: str | os.PathLike) -> bool:
    """Whether input `src` ("-": standard input, when it is a regular file) is the file or folder `out`
    (under any name: a link, a relative path)."""
    try:
        if str(src) == "-":
            got = os.fstat(sys.stdin.fileno())
            if not stat.S_ISREG(got.st_mode):
                return False
            there = os.stat(out)
            return (got.st_dev, got.st_ino) == (there.st_dev, there.st_ino)
        return Path(src).exists() and Path(out).exists() and os.path.samefile(src, out)
    except (OSError, ValueError, AttributeError):  # stdin closed or replaced in-process: not a file
        return False


def _within(src: str | os.PathLike, folder: Path) -> bool:
    """Whether input `src` is `folder` or lies anywhere under it."""
    if str(src) == "-" or not Path(src).exists() or not folder.is_dir():
        return False
    inner = Path(src).resolve()
    return any(is_same_file(p, folder) for p in (inner, *inner.parents))


def check_output_folder(
    folder: str | os.PathLike, inputs: Sequence[str | os.PathLike], *, writes: Iterable[str] = (),
    replaced: bool = False,
) -> Path:
    """Refuse an output folder that would overwrite an input, whatever --force says (as files do, in
    `compress.check_output_path`): the folder is an input folder itself, a file or folder the command
    writes in it (`writes`: names in the folder) is or holds an input, or the folder is `replaced` as a
    whole (written elsewhere, then swapped in) while it holds an input. Checked before any work starts."""
    out = Path(folder)
    refused = "refused even with --force: write the output elsewhere"
    for src in inputs:
        if is_same_file(src, out):
            raise HificodecError(f"{out}: would overwrite its input: it is the input folder {src} ({refused})")
        if replaced and _within(src, out):
            raise HificodecError(f"{out}: would overwrite its input {src}: the folder is replaced whole ({refused})")
        for name in writes:
            if _within(src, out / name) or is_same_file(src, out / name):
                raise HificodecError(f"{out / name}: would overwrite its input {src} ({refused})")
    return out


def read_safetensors(path: str | os.PathLike, framework: str = "pt") -> tuple[dict[str, str], dict]:
    """(metadata, tensors) of one safetensors file, tensors as `framework` gives them ("pt", "numpy").
    Raises ValueError naming what is wrong (missing, truncated, not safetensors): callers turn it into
    their own error type, with what the file was meant to hold."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise ValueError("no such file")
    try:
        with safe_open(str(path), framework=framework) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(str(e)) from None
    return meta, tensors
