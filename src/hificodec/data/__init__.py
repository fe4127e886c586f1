"""Data for training and evaluation: manifests, datasets, packs. Building the open corpus and writing
manifests for LibriTTS/VCTK folders is tooling (hificodec_tools), which this package does not import."""

from .manifest import ManifestEntry, read_entries, read_manifest, write_manifest

__all__ = ["ManifestEntry", "read_entries", "read_manifest", "write_manifest"]
