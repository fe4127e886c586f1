import json

import numpy as np
import pytest
import soundfile as sf
import torch

from hificodec.data.dataset import (
    AudioSegmentDataset,
    ResumableBatchSampler,
    SampleKey,
    SegmentOptions,
    collate_segments,
)
from hificodec.errors import HificodecError


def _tone(path, seconds, sr, freq=220.0, channels=1, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([x] * channels, axis=1).astype(np.float32), sr)


def _opts(**kw):
    return SegmentOptions(**{"sample_rate": 16000, "segment_samples": 1600, **kw})


def test_segments_are_mono_resampled_and_fixed_length(tmp_path):
    _tone(tmp_path / "stereo48k.flac", 0.5, 48000, channels=2)
    _tone(tmp_path / "short.wav", 0.05, 16000)
    ds = AudioSegmentDataset(str(tmp_path), _opts())
    items = [ds[SampleKey(i, 0)] for i in range(len(ds))]
    for it in items:
        assert it["audio"].shape == (1, 1600) and it["audio"].dtype == torch.float32
    # the 0.05 s clip is zero-padded at the end, not repeated or filled with noise
    short = items[[i for i, e in enumerate(ds.entries) if e.path.endswith("short.wav")][0]]["audio"][0]
    assert short[800:].abs().max() == 0 and short[:700].abs().max() > 0.2
    # 48 kHz stereo downmixed and resampled: still a 220 Hz tone at 16 kHz
    stereo = items[[i for i, e in enumerate(ds.entries) if e.path.endswith(".flac")][0]]["audio"][0].numpy()
    peak_hz = np.argmax(np.abs(np.fft.rfft(stereo))) * 16000 / len(stereo)
    assert abs(peak_hz - 220) < 15


def test_items_are_deterministic_per_epoch_and_index(tmp_path):
    _tone(tmp_path / "a.wav", 2.0, 16000)
    ds = AudioSegmentDataset(str(tmp_path), _opts(gain_db=(-6.0, 0.0)))
    a, b = ds[SampleKey(0, 3)]["audio"], ds[SampleKey(0, 3)]["audio"]
    assert torch.equal(a, b)
    assert not torch.equal(a, ds[SampleKey(0, 4)]["audio"])  # another epoch, another segment/gain


def test_corrupt_and_empty_files_are_skipped_and_counted(tmp_path):
    _tone(tmp_path / "good.wav", 0.5, 16000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    ds = AudioSegmentDataset(str(tmp_path), _opts())
    batch = collate_segments([ds[SampleKey(i, 0)] for i in range(len(ds))])
    # items 0 (bad) and 1 (empty) each fall through to the next readable entry: 2 + 1 passes over
    assert batch["skipped"] == 3
    # what is returned instead is the real file's audio, never noise
    assert all(torch.allclose(x, batch["audio"][0]) or x.abs().max() > 0.2 for x in batch["audio"])
    assert len(ds.stats.bad_files) == 2


def test_all_files_unreadable_is_an_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    ds = AudioSegmentDataset(str(tmp_path), _opts())
    with pytest.raises(HificodecError, match="no readable audio"):
        ds[0]


def test_manifest_durations_are_used(tmp_path):
    _tone(tmp_path / "a.wav", 1.0, 16000)
    _tone(tmp_path / "z.wav", 1.0, 16000)
    lines = [{"path": "a.wav", "duration": 1.0, "sample_rate": 16000}, {"path": "z.wav", "duration": 0.0}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    ds = AudioSegmentDataset(str(tmp_path / "m.jsonl"), _opts())
    assert len(ds) == 1  # the zero-duration entry is dropped up front
    assert ds[0]["audio"].abs().max() > 0.2


def test_loudness_normalisation_and_mixing(tmp_path):
    _tone(tmp_path / "a.wav", 1.0, 16000, amp=0.01)
    _tone(tmp_path / "b.wav", 1.0, 16000, freq=440, amp=0.01)
    ds = AudioSegmentDataset(str(tmp_path), _opts(loudness_db=-20.0))
    rms = float(ds[0]["audio"].pow(2).mean().sqrt())
    assert abs(20 * np.log10(rms) + 20) < 0.5
    mixed = AudioSegmentDataset(str(tmp_path), _opts(mix_prob=1.0))
    spec = np.abs(np.fft.rfft(mixed[0]["audio"][0].numpy()))
    bins = np.argsort(spec)[-2:] * 10  # 1600 samples at 16 kHz: 10 Hz per bin
    assert sorted(bins.tolist()) == [220, 440]  # both clips are in the mix


def test_sampler_splits_ranks_and_resumes_mid_epoch():
    full = ResumableBatchSampler(10, batch_size=2, seed=5, world_size=2, rank=0)
    other = ResumableBatchSampler(10, batch_size=2, seed=5, world_size=2, rank=1)
    assert full.batches_per_epoch() == other.batches_per_epoch() == 3
    a = [[k.index for k in b] for b in full]
    b = [[k.index for k in b] for b in other]
    seen = sorted(i for batch in a + b for i in batch)
    assert set(seen) == set(range(10)) and len(seen) == 12  # padded by wrapping, every item once or more
    full.set_position(0, 2)
    assert [[k.index for k in b] for b in full] == a[2:]
    full.set_position(1, 0)
    assert [[k.index for k in b] for b in full] != a  # a new epoch reshuffles
