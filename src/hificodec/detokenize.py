"""Audio from dataset tokens: a `.npy` of codes [num_codebooks, frames] (as `hificodec tokenize` writes
them) decoded with the model that the tokens.json of its folder names, or with a given model, which
must be that model (other weights would decode the codes to noise).

    audio, sr = decode_tokens("tokens/codes/spk1/utt1.npy")         # model from tokens/tokens.json
    decode_tokens_file("tokens/codes/spk1/utt1.npy", "utt1.wav")    # what `hificodec decode x.npy` runs

The audio is F * hop samples at the model's rate (codes do not record the original length or rate;
the token manifest's `duration` does).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from .audio import resample, save_audio
from .bitstream import ModelMismatchError
from .checkpoint import load, model_hash
from .chunked import decode_chunked
from .compress import OutputCheck, check_output_path, check_sample_rate, output_format
from .data.tokens import find_token_info, load_codes, read_token_info
from .errors import CheckpointError, HificodecError
from .identity import identify
from .models.base import CodecModel
from .releases import describe_hash


def tokens_model(
    codes_path: str | os.PathLike, model: CodecModel | str | os.PathLike | None = None, device: str = "cpu"
) -> tuple[CodecModel, dict[str, Any]]:
    """The model for a codes file and the code layout it is checked against: the given model (which must
    be the one its tokens.json records), or the one that tokens.json names."""
    info_path = find_token_info(codes_path)
    if info_path is None:
        if model is None:
            raise HificodecError(f"{codes_path}: no tokens.json in its folder or above to name the model; pass --model")
        chosen = model if isinstance(model, CodecModel) else load(model, device=device)
        return chosen, {"num_codebooks": chosen.max_codebooks, "groups": chosen.codebook_step,
                        "codebook_size": chosen.codebook_size}  # fmt: skip
    info = read_token_info(info_path)
    if model is None:
        reference = info.get("model")
        if not reference:
            raise HificodecError(
                f"{info_path} names no model that hificodec.load can open (the tokens were made by a model built "
                "in memory); pass --model"
            )
        try:
            model = load(reference, device=device)
        except CheckpointError as e:
            raise CheckpointError(f"{info_path} names model {reference}, which cannot be loaded ({e})") from None
    chosen = model if isinstance(model, CodecModel) else load(model, device=device)
    if info.get("model_hash") not in identify(chosen).accepted_hashes:
        loaded = chosen.release or f"'{chosen.name}' (model hash {model_hash(chosen)[:12]})"
        made_by = describe_hash(str(info.get("model_hash")), str(info.get("model_name") or info.get("model")))
        raise ModelMismatchError(
            f"{codes_path}: these tokens were made by {made_by}, not by {loaded}; decoding them with another model "
            "would give noise"
        )
    return chosen, info


@torch.inference_mode()
def decode_tokens(
    codes_path: str | os.PathLike, model: CodecModel | str | os.PathLike | None = None, device: str = "cpu"
) -> tuple[np.ndarray, int]:
    """A codes file -> (audio [samples] float32 at the model's rate, that rate)."""
    chosen, info = tokens_model(codes_path, model, device)
    codes = torch.from_numpy(load_codes(codes_path, info))
    if codes.shape[0] > chosen.max_codebooks or codes.shape[0] % chosen.codebook_step:
        raise HificodecError(f"{codes_path}: {codes.shape[0]} codebooks do not fit model '{chosen.name}'")
    wav = decode_chunked(chosen, codes[None])[0, 0].cpu().numpy()
    check = OutputCheck(chosen)
    check(wav[None])
    check.finish()
    return wav, chosen.sample_rate


def decode_tokens_file(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    model: CodecModel | str | os.PathLike | None = None,
    sample_rate: int | None = None,
    force: bool = False,
    device: str = "cpu",
) -> tuple[float, int]:
    """Write a codes file's audio to `dst` (format from the extension, written atomically); returns
    (seconds, sample rate written)."""
    if sample_rate is not None:
        check_sample_rate(sample_rate, "the output sample rate")
    out = check_output_path(dst, [src], force)
    output_format(out)
    wav, sr = decode_tokens(src, model, device)
    sr_out = sample_rate or sr
    save_audio(out, resample(wav, sr, sr_out), sr_out)
    return len(wav) / sr, sr_out

