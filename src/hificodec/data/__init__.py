"""Data: manifests, datasets and corpus preparation."""

from .manifest import ManifestEntry, read_entries, read_manifest, write_manifest

__all__ = ["ManifestEntry", "read_entries", "read_manifest", "write_manifest"]
