import pytest
import torch
import torch.nn.functional as F

from hificodec.dsp.padding import pad1d


def test_reflect_padding_wider_than_input():
    x = torch.arange(3.0).view(1, 1, 3)
    y = pad1d(x, 5, 5, "reflect")
    assert y.shape[-1] == 13
    assert torch.equal(y[..., 5:8], x)


@pytest.mark.parametrize("left,right", [(0, 0), (3, 0), (0, 4), (6, 1), (9, 9)])
def test_reflect_padding_matches_torch_values_and_gradients(left: int, right: int):
    x = torch.randn(2, 3, 10, dtype=torch.float64, requires_grad=True)
    ours = pad1d(x, left, right, "reflect")
    reference = F.pad(x, (left, right), mode="reflect")
    assert torch.equal(ours, reference)
    weights = torch.randn_like(reference)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), x)
    assert torch.allclose(grad_ours, grad_reference)
