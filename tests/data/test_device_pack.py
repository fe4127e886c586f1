import numpy as np
import pytest
import soundfile as sf
import torch

from hificodec.data.dataset import SegmentOptions
from hificodec.data.device_pack import PackAudio, deal_slices, read_device_pack, write_device_pack
from hificodec.data.device_pool import DevicePool
from hificodec.data.manifest import ManifestEntry


def _entries(tmp_path, counts):
    out = []
    for s, n in enumerate(counts):
        for i in range(n):
            path = tmp_path / f"s{s}-{i}.wav"
            t = np.arange(int(16000 * (0.5 + 0.25 * i))) / 16000
            sf.write(path, 0.3 * np.sin(2 * np.pi * (150 + 30 * s) * t).astype(np.float32), 16000)
            out.append(ManifestEntry(path=str(path), duration=t.size / 16000, speaker=f"spk{s}"))
    return out


def test_slices_are_disjoint_cover_everything_and_hold_every_speaker(tmp_path):
    entries = [
        ManifestEntry(path=f"s{s}/{i}.flac", speaker=f"spk{s}") for s, n in enumerate([9, 5, 1]) for i in range(n)
    ]
    parts = deal_slices(entries, 3, seed=7)
    assert all({e.speaker for e in p} == {"spk0", "spk1", "spk2"} for p in parts)
    big = [[e.path for e in p if e.speaker != "spk2"] for p in parts]
    assert sum(len(p) for p in big) == 14 and len({x for p in big for x in p}) == 14  # disjoint, complete
    assert [len(p) for p in big] == [5, 5, 4] or sorted(len(p) for p in big) == [4, 5, 5]
    assert deal_slices(entries, 3, seed=7) == parts  # deterministic
    assert deal_slices(entries, 3, seed=8) != parts


def test_pack_round_trip_keeps_clip_lengths_and_content(tmp_path):
    entries = _entries(tmp_path, [3, 2])
    index = write_device_pack(entries, tmp_path / "pack", sample_rate=16000, kbps=32, streams=2)
    assert len(index["streams"]) == 2 and index["bytes"] > 0
    pack = read_device_pack(tmp_path / "pack", workers=1)
    assert pack.speakers == ["spk0", "spk0", "spk0", "spk1", "spk1"]
    assert pack.lengths.tolist() == [int(e.duration * 16000) for e in entries]
    for e, start, length in zip(entries, pack.starts, pack.lengths):
        ref, _ = sf.read(e.path, dtype="float32")
        got = pack.audio[start:start + length].astype(np.float32) / 32768
        corr = np.corrcoef(ref[400:-400], got[400:-400])[0, 1]  # Opus is lossy: the same tone, not the same bits
        assert corr > 0.95, corr


def test_pack_size_limit_drops_from_the_best_served_speaker(tmp_path):
    entries = _entries(tmp_path, [6, 1])
    full = write_device_pack(entries, tmp_path / "full", sample_rate=16000, kbps=32, streams=1)
    limit = 0.6 * full["bytes"] / 2**20
    small = write_device_pack(entries, tmp_path / "small", sample_rate=16000, kbps=32, streams=1, max_mib=limit)
    assert small["bytes"] <= limit * 2**20
    speakers = [c[3] for c in small["clips"]]
    assert "spk1" in speakers and speakers.count("spk0") < 6


def _pool(lengths, value=1000):
    audio = np.concatenate([np.full(n, value * (i + 1), dtype=np.int16) for i, n in enumerate(lengths)])
    starts = np.cumsum([0] + lengths[:-1])
    return DevicePool(PackAudio(audio, np.array(starts), np.array(lengths), ["a"] * len(lengths), 16000), "cpu")


def test_pool_cuts_segments_inside_one_clip_and_pads_short_ones():
    pool = _pool([100, 5000, 3000])
    opts = SegmentOptions(sample_rate=16000, segment_samples=1000)
    batch = pool.batch(opts, 64, torch.Generator().manual_seed(0))
    assert batch.shape == (64, 1, 1000)
    for row in batch[:, 0]:
        levels = set(torch.unique(row).tolist())
        if 0.0 in levels:  # the 100-sample clip: its samples, then zeros
            assert levels == {0.0, 1000 / 32768} and int((row != 0).sum()) == 100 and row[:100].ne(0).all()
        else:
            assert len(levels) == 1  # never across a clip boundary
    again = pool.batch(opts, 64, torch.Generator().manual_seed(0))
    assert torch.equal(batch, again)


def test_pool_levels_segments_like_the_file_dataset():
    pool = _pool([4000, 4000], value=200)
    opts = SegmentOptions(sample_rate=16000, segment_samples=2000, loudness_db=-20.0, gain_db=(-6.0, 3.0))
    batch = pool.batch(opts, 256, torch.Generator().manual_seed(1))[:, 0]
    db = 20 * torch.log10(batch.pow(2).mean(-1).sqrt())
    assert db.min() >= -26.01 and db.max() <= -16.99 and db.max() - db.min() > 7  # -20 dB + gain in [-6, 3]


def test_pool_refuses_another_sample_rate():
    with pytest.raises(Exception, match="16000 Hz"):
        _pool([1000]).batch(SegmentOptions(sample_rate=24000, segment_samples=100), 2, torch.Generator())
