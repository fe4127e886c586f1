"""argparse `type=` checkers for every number the CLI takes: finite, in range, with a message that says
what is allowed (argparse prints it with the option's name and exits with status 2); and the options
several commands share that are numbers (--threads)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: output sample rates `decode` / `reconstruct --sample-rate` accept (soxr and the audio formats handle these)
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000


def _parse(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        wanted = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {wanted}, got '{text}'") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def number(
    kind: type = float, *, low: float | None = None, high: float | None = None, above: bool = False, unit: str = ""
) -> Callable[[str], float]:
    """A checker for an int or finite float >= `low` (> `low` when `above`) and <= `high`."""
    unit_text = f" {unit}" if unit else ""

    def check(text: str) -> float:
        value = _parse(text, kind)
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and value > high
        if too_low or too_high:
            if low is not None and high is not None:
                wanted = f"between {low:g} and {high:g}{unit_text}"
            elif low is not None:
                wanted = f"{'above' if above else 'at least'} {low:g}{unit_text}"
            else:
                wanted = f"at most {high:g}{unit_text}"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    check.__name__ = kind.__name__  # argparse names the type in some messages
    return check


positive_kbps = number(float, low=0, above=True, unit="kbps")
positive_int = number(int, low=1)
#: frames per .hfc group: its frame count is stored in 16 bits
group_frames = number(int, low=1, high=65535)
non_negative_int = number(int, low=0)
non_negative_float = number(float, low=0)
positive_float = number(float, low=0, above=True)
sample_rate = number(int, low=MIN_SAMPLE_RATE, high=MAX_SAMPLE_RATE, unit="Hz")


def add_threads_arg(
    p: argparse.ArgumentParser, what: str = "the model's", default: str = "torch's default, one per core"
) -> None:
    """--threads N for a command that computes: `hificodec.cli.main` sets torch's thread count (and so the
    --backend onnx sessions') before the command runs; without it torch's default stays."""
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help=f"threads for {what} computation (torch.set_num_threads; with --backend onnx, onnxruntime's "
                   f"too); default: {default}")  # fmt: skip
