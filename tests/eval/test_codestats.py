import numpy as np
import pytest
import torch

from hificodec.eval.codestats import CodeStats


def test_uniform_codes_use_every_entry_at_full_entropy():
    stats = CodeStats(64)
    codes = torch.arange(64 * 4).remainder(64).reshape(1, 1, -1).repeat(2, 2, 1)  # [B=2, n_q=2, F=256]
    stats.update(codes)
    assert stats.usage == [1.0, 1.0]
    assert stats.entropy_bits == pytest.approx([6.0, 6.0])
    assert stats.entropy_kbps(frame_rate=50) == pytest.approx(50 * 12 / 1000)


def test_collapsed_codebook_has_low_usage_and_zero_entropy():
    stats = CodeStats(1024)
    stats.update(np.stack([np.zeros(100, dtype=np.int64), np.arange(100) % 2]))  # [n_q=2, F]
    stats.update(np.stack([np.zeros(100, dtype=np.int64), np.arange(100) % 2]))
    assert stats.usage == pytest.approx([1 / 1024, 2 / 1024])
    assert stats.entropy_bits == pytest.approx([0.0, 1.0])


def test_codebook_count_must_not_change():
    stats = CodeStats(8)
    stats.update(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="codebooks"):
        stats.update(np.zeros((3, 5), dtype=np.int64))
