"""--threads N on every command that computes: it sets torch's thread count before the command runs;
without it torch's default stays."""

from __future__ import annotations

import pytest
import torch

from hificodec.cli import main

#: each command with arguments that fail fast (a missing input): --threads is applied before the work
COMMANDS = [
    ["encode", "/no/such.wav"],
    ["decode", "/no/such.hfc", "--model", "/no/such/model"],
    ["reconstruct", "/no/such.wav", "--model", "/no/such/model"],
    ["tokenize", "/no/such/data", "--out", "/no/such/out", "--model", "/no/such/model"],
    ["eval", "/no/such/data", "--model", "/no/such/model", "--quiet"],
    ["export-onnx", "/no/such/model", "/no/such/out"],
    ["demo", "--model", "/no/such/model"],
    ["stream", "encode", "/no/such.wav", "--model", "/no/such/model"],
    ["stream", "decode", "/no/such.hfc", "--model", "/no/such/model", "-o", "/no/such.wav"],
]


def _help(argv: list[str], capsys) -> str:
    words = [w for w in argv if not w.startswith("/") and not w.startswith("-")]
    with pytest.raises(SystemExit):
        main([*words, "--help"])
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(w for w in a if not w.startswith(("/", "-"))))
def test_threads_sets_torchs_thread_count_and_is_documented(argv, capsys, monkeypatch):
    assert "--threads N threads for" in _help(argv, capsys) and "torch.set_num_threads" in _help(argv, capsys)
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    assert main(argv) != 0  # fails on the missing input, after the threads were set
    assert calls == []  # no --threads: torch's default stays
    capsys.readouterr()
    assert main([*argv, "--threads", "3"]) != 0
    assert calls[:1] == [3]


def test_threads_must_be_a_positive_count(capsys):
    with pytest.raises(SystemExit) as e:
        main(["encode", "x.wav", "--threads", "0"])
    assert e.value.code == 2 and "--threads: must be at least 1" in capsys.readouterr().err
