"""The open speech corpus rebuilt from Debian packages (`hificodec data build-corpus`): download
(apt_fetch), the allowlisted packages (debian_sources), optional MBROLA speech (synthetic),
speaker-disjoint splits (splits) and the build itself (build)."""

from .build import CorpusOptions, CorpusResult, build_corpus

__all__ = ["CorpusOptions", "CorpusResult", "build_corpus"]
