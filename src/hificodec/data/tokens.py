"""Reading what `hificodec tokenize` writes, for language-model training and for decoding tokens.

    from torch.utils.data import DataLoader
    from hificodec.data.tokens import TokenDataset, collate_tokens

    ds = TokenDataset("tokens/", split="train")       # a tokenize folder, or a token manifest inside one
    loader = DataLoader(ds, batch_size=16, shuffle=True, collate_fn=collate_tokens)
    for batch in loader:
        batch.codes     # [B, n_q, T] int64, padded with PAD (-1) after each utterance's `lengths[b]` frames
        batch.texts     # transcripts (None where the data had none), batch.speakers likewise

A tokenize folder holds `tokens.json` (the model and the code layout), `manifest.jsonl` (one entry per
utterance with `codes`, `num_frames` and the source entry's fields: `text`, `speaker`, `split`, ...)
and `codes/**.npy` ([num_codebooks, frames], int16). Row k of codes is codebook k = stage * groups +
group (`info["groups"]`, `info["stages"]`): the first `groups` rows are the coarsest stage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..errors import HificodecError
from .manifest import ManifestEntry, read_manifest

INFO_FILE = "tokens.json"
#: the padding value of `collate_tokens` (never a code: codes are 0 .. codebook_size - 1)
PAD = -1


def find_token_info(path: str | os.PathLike) -> Path | None:
    """The tokens.json of the tokenize folder that holds `path` (a folder, a manifest or a codes file)."""
    p = Path(path).resolve()
    for folder in [p, *p.parents] if p.is_dir() else p.parents:
        if (folder / INFO_FILE).is_file():
            return folder / INFO_FILE
    return None


def read_token_info(path: str | os.PathLike) -> dict[str, Any]:
    """tokens.json as a dict (`path`: the file or its folder), with the code layout filled in for folders
    written before tokens.json recorded it."""
    p = Path(path)
    p = p / INFO_FILE if p.is_dir() else p
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
        n_q, size = int(info["num_codebooks"]), int(info["codebook_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HificodecError(f"{p}: not a readable tokens.json ({e})") from None
    info.setdefault("groups", 1)  # a folder from before the layout was recorded: no grouping known
    info.setdefault("stages", n_q // int(info["groups"]))
    info["num_codebooks"], info["codebook_size"] = n_q, size
    return info


def load_codes(path: str | os.PathLike, info: dict[str, Any]) -> np.ndarray:
    """A codes file as [num_codebooks, frames] int64, checked against its tokens.json."""
    try:
        codes = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise HificodecError(f"{path}: not a readable .npy file ({e})") from None
    if codes.ndim == 3 and codes.shape[0] == 1:  # a batch of one, as model.encode returns it
        codes = codes[0]
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise HificodecError(f"{path}: expected integer codes [codebooks, frames], got {codes.dtype} {codes.shape}")
    if codes.shape[0] > info["num_codebooks"] or codes.shape[0] % int(info.get("groups", 1)):
        raise HificodecError(
            f"{path}: {codes.shape[0]} codebooks, but these tokens have {info['num_codebooks']} in groups of "
            f"{info.get('groups', 1)}"
        )
    if codes.size and (codes.min() < 0 or codes.max() >= info["codebook_size"]):
        raise HificodecError(f"{path}: codes outside 0..{info['codebook_size'] - 1}")
    return codes.astype(np.int64)


class TokenItem(NamedTuple):
    codes: torch.Tensor  # [n_q, frames] int64
    text: str | None
    speaker: str | None


class TokenBatch(NamedTuple):
    codes: torch.Tensor  # [B, n_q, max frames] int64, PAD after each utterance's length
    lengths: torch.Tensor  # [B] frames per utterance
    texts: list[str | None]
    speakers: list[str | None]


class TokenDataset(torch.utils.data.Dataset):
    """The utterances of a tokenize folder as (codes [n_q, frames], text, speaker).

    source: the tokenize output folder (its manifest.jsonl, or all manifest.rankR-of-W.jsonl of a
    sharded run) or a token manifest inside one. split: only entries of this split. num_codebooks:
    keep the first n codebooks (whole stages: a multiple of `info["groups"]`), e.g. the coarse ones.
    """

    def __init__(self, source: str | os.PathLike, split: str | None = None, num_codebooks: int | None = None):
        src = Path(source)
        info_path = find_token_info(src)
        if info_path is None:
            raise HificodecError(f"{src}: not in a `hificodec tokenize` folder (no tokens.json there or above)")
        self.root = info_path.parent
        self.info = read_token_info(info_path)
        if src.is_file():
            manifests = [src]
        else:  # manifest.jsonl, else the shards of a sharded run (each utterance in one of them)
            manifests = [src / "manifest.jsonl"] if (src / "manifest.jsonl").is_file() else sorted(
                src.glob("manifest.rank*-of-*.jsonl"))
        if not manifests:
            raise HificodecError(f"{src}: no token manifest (manifest.jsonl) found")
        entries = [e for m in manifests for e in read_manifest(m)]
        self.entries: list[ManifestEntry] = [e for e in entries if split is None or e.split == split]
        if not self.entries:
            raise HificodecError(f"{src}: no entries" + (f" with split '{split}'" if split else ""))
        missing = next((e for e in self.entries if "codes" not in e.extra), None)
        if missing is not None:
            raise HificodecError(f"{src}: entry for {missing.path} has no 'codes' field (not a token manifest)")
        groups = int(self.info["groups"])
        n = self.info["num_codebooks"] if num_codebooks is None else num_codebooks
        if not 0 < n <= self.info["num_codebooks"] or n % groups:
            raise HificodecError(
                f"num_codebooks must be a multiple of {groups} up to {self.info['num_codebooks']}, got {n}"
            )
        self.num_codebooks = n

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> TokenItem:
        e = self.entries[i]
        codes = load_codes(self.root / e.extra["codes"], self.info)[: self.num_codebooks]
        return TokenItem(torch.from_numpy(codes), e.text, e.speaker)


def collate_tokens(items: list[TokenItem], pad_value: int = PAD) -> TokenBatch:
    """Pad a list of items to the longest one (for a DataLoader's `collate_fn`)."""
    # pad_sequence pads the first axis: frames first, then back to [B, n_q, frames]
    padded = torch.nn.utils.rnn.pad_sequence([it.codes.T for it in items], batch_first=True, padding_value=pad_value)
    return TokenBatch(
        codes=padded.permute(0, 2, 1).contiguous(),
        lengths=torch.tensor([it.codes.shape[-1] for it in items]),
        texts=[it.text for it in items],
        speakers=[it.speaker for it in items],
    )
