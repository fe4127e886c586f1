"""Training audio held on the accelerator: segments are cut, levelled and batched there.

On a GPU a DataLoader reading files in the main process would starve the step. A `DevicePool` holds
the decoded audio of a device pack (`data.device_pack`) as one int16 tensor on the device (2.9 h of
16 kHz speech is 0.33 GB) and cuts each batch with one gather: no host work, no host synchronisation.
The augmentation is the file dataset's (`data.dataset.AudioSegmentDataset`): a random segment per clip,
zero-padded past a clip's end, RMS normalisation to `loudness_db`, a random gain, optional mixing.
"""

from __future__ import annotations

import torch

from ..errors import HificodecError
from .dataset import SegmentOptions
from .device_pack import PackAudio


class DevicePool:
    def __init__(self, pack: PackAudio, device: torch.device | str) -> None:
        if pack.lengths.size == 0:
            raise HificodecError("the pack holds no clips")
        self.device = torch.device(device)
        self.sample_rate = pack.sample_rate
        self.audio = torch.from_numpy(pack.audio).to(self.device)
        self.starts = torch.from_numpy(pack.starts).to(self.device)
        self.lengths = torch.from_numpy(pack.lengths).to(self.device)
        self.seconds = pack.seconds

    def __len__(self) -> int:
        return int(self.starts.numel())

    def batch(self, options: SegmentOptions, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """[batch_size, 1, segment_samples] float32 on the device, drawn with `generator` (on the device)."""
        if options.sample_rate != self.sample_rate:
            raise HificodecError(f"the pack is at {self.sample_rate} Hz, the model at {options.sample_rate} Hz")
        audio = self._segments(options.segment_samples, batch_size, generator)
        if options.mix_prob > 0:
            other = self._segments(options.segment_samples, batch_size, generator)
            mix = torch.rand(batch_size, 1, generator=generator, device=self.device) < options.mix_prob
            audio = audio + other * mix
            audio = audio / audio.abs().amax(-1, keepdim=True).clamp(min=1.0)  # keep the mix in range
        return self._gain(audio, options, generator)[:, None]

    def _segments(self, samples: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        clip = torch.randint(0, len(self), (batch_size,), generator=generator, device=self.device)
        length, start = self.lengths[clip], self.starts[clip]
        room = (length - samples).clamp(min=0)
        draw = torch.rand(batch_size, generator=generator, device=self.device)
        offset = torch.minimum((draw * (room + 1)).long(), room)  # uniform over the room a clip leaves
        position = offset[:, None] + torch.arange(samples, device=self.device)
        inside = position < length[:, None]  # past a clip's end: zeros, as the file dataset pads
        index = torch.where(inside, start[:, None] + position, 0)
        return self.audio[index].float().mul_(1 / 32768) * inside

    def _gain(self, audio: torch.Tensor, options: SegmentOptions, generator: torch.Generator) -> torch.Tensor:
        db = torch.zeros(audio.shape[0], device=self.device)
        if options.loudness_db is not None:
            rms = audio.double().pow(2).mean(-1).sqrt().float()
            db = torch.where(rms > 1e-6, options.loudness_db - 20 * torch.log10(rms.clamp(min=1e-6)), db)
        lo, hi = options.gain_db
        db = db + lo + (hi - lo) * torch.rand(audio.shape[0], generator=generator, device=self.device)
        out = audio * torch.pow(10.0, db / 20)[:, None]
        return out / out.abs().amax(-1, keepdim=True).clamp(min=1.0)
