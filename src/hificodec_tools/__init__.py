"""Tooling around the hificodec library, shipped in the same wheel but never imported by it.

`hificodec_tools.corpus` rebuilds the open speech corpus from Debian packages, and
`hificodec_tools.layouts` with `hificodec_tools.holdout` write speaker-held-out manifests for
LibriTTS/VCTK-style folders: data preparation, with its own dependencies on apt and espeak-ng. The
library trains from any manifest and does not need them; only the CLI's `hificodec data build-corpus`
and `hificodec data manifest` import them, lazily.
"""
