"""`hificodec` command line: a thin layer over the Python API.

Each subcommand lives in its own module under `hificodec.cli` and exposes
`register(subparsers) -> None`, which adds its parser and sets `func=handler(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import HificodecError, HificodecWarning, UsageError

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES: list[str] = [
    "hificodec.cli.models_cmd",
    "hificodec.cli.codec_cmd",
    "hificodec.cli.stream_cmd",
    "hificodec.cli.entropy_cmd",
    "hificodec.cli.tokenize_cmd",
    "hificodec.cli.data_cmd",
    "hificodec.cli.eval_cmd",
    "hificodec.cli.report_cmd",
    "hificodec.cli.train_cmd",
    "hificodec.cli.replay_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hificodec",
        description="Neural audio codecs: HiFi-Codec (group-residual VQ), Encodec, SoundStream.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised like KeyboardInterrupt so that temp files and folders are removed on
    the way out (a BaseException: `except Exception` must not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Terminated` (the default would kill the process at once
    and leave `.part` files behind); the previous handlers are restored afterwards."""
    old: dict[int, object] = {}
    try:
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                old[sig] = signal.signal(sig, _raise_terminated)
    except ValueError:  # not the main thread: signals go to the main thread anyway
        pass
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    threads = getattr(args, "threads", None)
    if threads is not None:  # --threads of a command that computes (cli.numbers.add_threads_arg)
        import torch

        torch.set_num_threads(threads)
    try:
        with terminate_as_exception(), warnings.catch_warnings():
            warnings.simplefilter("always", HificodecWarning)
            warnings.showwarning = _warning_printer(args.command)
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        if not _stdout_closed():
            print(f"hificodec {args.command}: error: broken pipe", file=sys.stderr)
            return 1
        return 128 + signal.SIGPIPE  # as a tool killed by SIGPIPE (`... | head`), without a message
    except HificodecError as e:
        print(f"hificodec {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except KeyboardInterrupt:
        print(f"hificodec {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"hificodec {args.command}: terminated ({signal.Signals(e.signum).name})", file=sys.stderr)
        return 128 + e.signum


def _warning_printer(command: str) -> Callable[..., None]:
    """Our warnings as one stderr line each (`hificodec encode: warning: ...`); others as Python prints them."""
    default = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *rest: Any, **kw: Any) -> None:
        if issubclass(category, HificodecWarning):
            print(f"hificodec {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, *rest, **kw)

    return show


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone (`hificodec models | head -2`: the write end of the pipe polls
    as an error); if so, stdout is pointed at /dev/null so that the unwritten rest is dropped at exit
    instead of raising again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced in-process: nothing to redirect
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poller.poll(0)):
            return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return True


def _version() -> str:
    from .. import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
