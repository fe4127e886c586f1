"""Codebook usage and entropy over an evaluation set (how much of each codebook a model really uses)."""

from __future__ import annotations

import numpy as np
import torch


class CodeStats:
    """Accumulates per-codebook histograms of codes [B, n_q, F] (or [n_q, F])."""

    def __init__(self, codebook_size: int) -> None:
        self.codebook_size = codebook_size
        self.counts: np.ndarray | None = None  # [n_q, codebook_size]

    def update(self, codes: torch.Tensor | np.ndarray) -> None:
        c = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        c = c.reshape(-1, c.shape[-2], c.shape[-1]) if c.ndim == 3 else c[None]
        n_q = c.shape[1]
        if self.counts is None:
            self.counts = np.zeros((n_q, self.codebook_size), dtype=np.int64)
        elif self.counts.shape[0] != n_q:
            raise ValueError(f"codes have {n_q} codebooks, earlier batches had {self.counts.shape[0]}")
        for q in range(n_q):
            self.counts[q] += np.bincount(c[:, q].reshape(-1), minlength=self.codebook_size)

    @property
    def usage(self) -> list[float]:
        """Fraction of each codebook's entries used at least once."""
        if self.counts is None:
            return []
        return [float((row > 0).mean()) for row in self.counts]

    @property
    def entropy_bits(self) -> list[float]:
        """Empirical entropy of each codebook's codes in bits per code (at most log2(codebook_size))."""
        if self.counts is None:
            return []
        out = []
        for row in self.counts:
            p = row[row > 0] / row.sum()
            out.append(float(-(p * np.log2(p)).sum()) if p.size else 0.0)
        return out

    def entropy_kbps(self, frame_rate: float) -> float | None:
        """Bitrate an ideal (context-free) entropy coder would reach with these statistics."""
        return frame_rate * sum(self.entropy_bits) / 1000 if self.counts is not None else None
