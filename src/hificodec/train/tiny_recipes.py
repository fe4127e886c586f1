"""One tiny recipe per model family (a few thousand parameters, 0.2 s clips), for the GPU leg's self-check.

They are built here because the leg runs the library on a borrowed machine and checks that one bf16
step of each family trains; the tiny presets and recipes the tests use live in tests/fixtures/, which
is not part of the library. These mirror them.
"""

from __future__ import annotations

import copy
from typing import Any

_HIFICODEC_MODEL: dict[str, Any] = {
    "extends": "_hificodec", "name": "tiny-hificodec", "sample_rate": 16000, "latent_dim": 16,
    "encoder": {"channels": [4, 4, 8, 8, 16], "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1]],
                "norm_group_size": 4},
    "decoder": {"upsample_initial_channel": 32, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1]]},
    "quantizer": {"codebook_size": 64},
}
_ENCODEC_MODEL: dict[str, Any] = {
    "extends": "_encodec", "name": "tiny-encodec", "sample_rate": 16000, "latent_dim": 16,
    "encoder": {"n_filters": 4, "lstm": 1}, "decoder": {"n_filters": 4, "lstm": 1}, "bandwidths": [0.6, 1.2],
    "quantizer": {"depth": 4, "codebook_size": 64, "kmeans_iters": 5},
}
_HIFICODEC: dict[str, Any] = {
    "model": _HIFICODEC_MODEL,
    "data": {"segment_seconds": 0.2, "batch_size": 2},
    "losses": {"mel": {"resolutions": [
        {"n_fft": 512, "hop_length": 128, "win_length": 512, "n_mels": 40, "weight": 1.0},
        {"n_fft": 128, "hop_length": 32, "win_length": 128, "n_mels": 20, "weight": 1.0},
    ]}},
    "loss_weights": {"mel": 1.0, "l1": 1.0, "adv": 1.0, "feat": 2.0, "commitment": 2.5, "codebook": 10.0},
    "discriminators": {
        "mpd": {"periods": [2, 3], "channels": [4, 8, 8]},
        "msd": {"scales": 2, "channels": 4, "max_channels": 16},
        "msstft": {"n_ffts": [256, 128], "filters": 4},
    },
    "optim": {"generator": {"lr": 1.0e-3}, "discriminator": {"lr": 1.0e-3}},
    "valid": {"every": 4, "max_clips": 2, "metric_clips": 1, "max_seconds": 1.0},
    "train": {"max_steps": 8, "log_every": 2, "checkpoint_every": 4, "progress": False},
}
_ENCODEC_CHANGES: dict[str, Any] = {
    "model": _ENCODEC_MODEL,
    "losses": {
        "mel": {"style": "l1_log_rms", "resolutions": [
            {"n_fft": 256, "hop_length": 64, "win_length": 256, "n_mels": 32, "power": 2.0},
            {"n_fft": 128, "hop_length": 32, "win_length": 128, "n_mels": 16, "power": 2.0},
        ]},
        "adversarial": {"kind": "hinge", "start_step": 2},
        "feature_matching": {"relative": True},
    },
    "loss_weights": {"mel": 1.0, "mse": 10.0, "l1": 0.0, "adv": 1.0, "feat": 1.0, "commitment": 1.0,
                     "codebook": 0.0},
    "optim": {"generator": {"name": "adamw", "lr": 1.0e-3}, "discriminator": {"name": "adamw", "lr": 1.0e-3}},
}


def tiny_recipes() -> dict[str, dict[str, Any]]:
    """family -> a recipe dict for `load_recipe` (fresh copies: callers may change them)."""
    from ..config import deep_merge

    encodec = deep_merge(_HIFICODEC, _ENCODEC_CHANGES)
    encodec["model"] = copy.deepcopy(_ENCODEC_MODEL)  # a whole model, not merged over the HiFi-Codec one
    soundstream = deep_merge(encodec, {"data": {"mix_prob": 0.3}, "loss_weights": {"logits": 1.0}})
    soundstream["model"] = {**copy.deepcopy(_ENCODEC_MODEL), "name": "tiny-soundstream", "family": "soundstream"}
    return {"hificodec": copy.deepcopy(_HIFICODEC), "encodec": encodec, "soundstream": soundstream}
