import pytest
import torch

from hificodec.modules.conv import SConv1d, SConvTranspose1d


@pytest.mark.parametrize("length", [1, 7, 160, 161, 333])
@pytest.mark.parametrize("stride,kernel", [(1, 7), (2, 4), (5, 10), (8, 16)])
@pytest.mark.parametrize("causal", [False, True])
def test_strided_conv_gives_ceil_frames(length, stride, kernel, causal):
    conv = SConv1d(2, 3, kernel, stride=stride, causal=causal)
    y = conv(torch.randn(1, 2, length))
    assert y.shape == (1, 3, -(-length // stride))


@pytest.mark.parametrize("stride,kernel", [(2, 4), (5, 11), (8, 16)])
@pytest.mark.parametrize("causal", [False, True])
def test_transposed_conv_gives_stride_samples_per_frame(stride, kernel, causal):
    conv = SConvTranspose1d(3, 2, kernel, stride=stride, causal=causal)
    assert conv(torch.randn(1, 3, 13)).shape == (1, 2, 13 * stride)


def test_causal_conv_ignores_future_samples():
    torch.manual_seed(0)
    conv = SConv1d(1, 4, 7, dilation=2, causal=True)
    x = torch.randn(1, 1, 200)
    x_future_changed = x.clone()
    x_future_changed[..., 120:] = torch.randn(1, 1, 80)
    y, y2 = conv(x), conv(x_future_changed)
    assert torch.equal(y[..., :120], y2[..., :120])
    assert not torch.allclose(y[..., 120:], y2[..., 120:])


def test_non_causal_conv_does_see_the_future():
    conv = SConv1d(1, 1, 7, causal=False)
    x = torch.randn(1, 1, 100)
    x2 = x.clone()
    x2[..., 60:] += 1.0
    assert not torch.allclose(conv(x)[..., 57:60], conv(x2)[..., 57:60])
