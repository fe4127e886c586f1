"""The frame-rate mel encoder (hificodec.modules.melencoder) and the sub-frame decoder
(hificodec.modules.vocos.FrameUpsample): what they compute, their frame counts, and the hificodec-16k-mel
line's tiny fixture through chunked coding and ONNX export."""

from __future__ import annotations

import pytest
import torch

import hificodec
from hificodec import onnx_backend
from hificodec.chunked import decode_chunked, encode_chunked
from hificodec.dsp.mel import MelResolution, log_mel_spectrogram
from hificodec.modules.melencoder import LogMelFrontend, MelEncoder
from hificodec.modules.vocos import FrameUpsample, ISTFTHead, VocosDecoder
from tiny_codecs import assert_codes_vary, calibration_audio, coding_model, tiny_preset

#: frontend (a DFT convolution) vs dsp.mel's log-mel (torch.stft), float32: measured max abs diff 2.2e-4
#: over calibration seeds 0-9 x 3-300 frames at 1 and 2 threads (log values of -11.5 to 3; the largest
#: where the magnitude is small), 4.5x margin
LOG_MEL_TOLERANCE = 1e-3


@pytest.mark.parametrize("seed,frames", [(0, 1), (1, 7), (2, 100)])
def test_frontend_is_the_centred_log_mel(seed, frames):
    hop = 160
    wav = calibration_audio(16000, seed=seed, clips=1)[..., : frames * hop]
    front = LogMelFrontend(16000, 640, hop, 80)
    ours = front(wav)
    assert ours.shape == (1, 80, frames)
    if frames * hop > 320:  # torch's reflect padding needs more samples than it pads
        reference = log_mel_spectrogram(wav, 16000, MelResolution(640, hop, 640, n_mels=80))
        assert reference.shape[-1] == frames + 1  # a centred STFT has one frame more: the frontend drops it
        assert float((ours - reference[..., :frames]).abs().max()) < LOG_MEL_TOLERANCE


def test_encoder_gives_one_latent_frame_per_hop():
    encoder = MelEncoder(dimension=12, sample_rate=16000, hop_length=320, n_mels=20, dim=16, hidden_dim=32,
                         num_layers=1, post_layers=1)
    for frames in (1, 2, 9):
        assert encoder(torch.randn(2, 1, frames * 320)).shape == (2, 12, frames)
    with pytest.raises(ValueError, match="even factor"):
        MelEncoder(dimension=12, sample_rate=16000, hop_length=320, downsample=3)


def test_frame_upsample_splits_each_frame():
    up = FrameUpsample(4, 2)
    x = torch.randn(1, 4, 3)
    y = up(x)
    assert y.shape == (1, 4, 6)
    # sub-frame j of frame k depends on frame k alone
    x2 = x.clone()
    x2[..., 1] += 1.0
    y2 = up(x2)
    changed = (y2 - y).abs().amax(dim=1)[0] > 0
    assert changed.tolist() == [False, False, True, True, False, False]


def test_upsampled_decoder_hop_and_period():
    head = ISTFTHead(16, 640, 160, phase_advance=True)  # period 4 head frames
    decoder = VocosDecoder(in_channels=8, head=head, dim=16, hidden_dim=32, num_layers=1, upsample=2,
                           upsampled_layers=1)
    assert decoder.hop_length == 320 and decoder.frame_period == 2
    assert decoder(torch.randn(1, 8, 5)).shape == (1, 1, 5 * 320)


@pytest.fixture(scope="module")
def mel_model() -> hificodec.CodecModel:
    return coding_model(tiny_preset("tiny-hificodec-16k-mel"))


def _speechlike(seconds: float, seed: int) -> torch.Tensor:
    clips = calibration_audio(16000, seed=seed, clips=int(seconds) + 1)
    return clips.reshape(1, 1, -1)[..., : int(seconds * 16000)].contiguous()


def test_mel_line_chunked_coding_equals_whole_file(mel_model):
    wav = _speechlike(6.0, seed=5)
    with torch.inference_mode():
        whole = mel_model.encode(wav)
        audio = mel_model.decode(whole)
    assert_codes_vary(whole, min_distinct=16)
    assert torch.equal(encode_chunked(mel_model, wav, chunk_frames=25), whole)
    chunked = decode_chunked(mel_model, whole, chunk_frames=20)
    # windows start at multiples of the 2-frame period: the same frames, phases and oscillator phase
    # (measured max abs diff 2.3e-6 over model seeds 0-3 at 1 and 2 threads; 8x margin)
    assert chunked.shape == audio.shape
    assert float((chunked - audio).abs().max()) < 2e-5


def test_mel_line_bitrates(mel_model):
    assert mel_model.bandwidths == [0.6, 1.2, 1.8]  # 2 groups x 6 bits x 50 Hz per stage
    wav = _speechlike(1.0, seed=6)
    with torch.inference_mode():
        full = mel_model.encode(wav)
        mel_model.set_num_codebooks(2)
        try:
            low = mel_model.encode(wav)
        finally:
            mel_model.set_num_codebooks(4)
    assert torch.equal(low, full[:, :2])  # a lower rate is a prefix of the codes


def test_mel_line_exports_to_onnx(mel_model, tmp_path):
    onnx_backend.export(mel_model, tmp_path / "graphs")
    backend = onnx_backend.load(mel_model, tmp_path / "graphs", threads=1)
    for batch, samples in ((1, 320 * 3 + 5), (2, 8000)):
        wav = _speechlike(samples / 16000 + 1, seed=batch)[..., :samples].expand(batch, 1, samples).contiguous()
        with torch.no_grad():
            codes = mel_model.encode(wav)
            reference = mel_model.decode(codes)
        assert torch.equal(backend.encode(wav), codes)
        # measured 4.8e-7 over model seeds 0-3, batches 1-3, 1 and 2 threads; 20x margin
        assert float((backend.decode(codes) - reference).abs().max()) < 1e-5
