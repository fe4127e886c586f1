import torch

from hificodec.quantization import GroupResidualVQ, ResidualVQ


def _latent(seed=0):
    return torch.randn(2, 8, 50, generator=torch.Generator().manual_seed(seed))


def test_residual_error_falls_with_depth():
    torch.manual_seed(0)
    rvq = ResidualVQ(8, 4, 64, kmeans_init=True).train()
    x = _latent()
    rvq(x)  # k-means init of every stage
    rvq.eval()
    errors = []
    for d in range(1, 5):
        rvq.set_active_depth(d)
        errors.append(float((rvq.decode(rvq.encode(x)) - x).pow(2).mean()))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors


def test_eval_forward_matches_encode_decode():
    rvq = ResidualVQ(8, 3, 16).eval()
    x = _latent()
    out = rvq(x)
    assert torch.equal(out.codes, rvq.encode(x))
    assert torch.allclose(out.quantized, rvq.decode(out.codes), atol=1e-5)


def test_group_with_one_group_equals_rvq():
    torch.manual_seed(0)
    rvq = ResidualVQ(8, 3, 16)
    grvq = GroupResidualVQ(8, 1, 3, 16)
    grvq.rvqs[0].load_state_dict(rvq.state_dict())
    x = _latent()
    for mode in (False, True):
        rvq.train(mode)
        grvq.train(mode)
        a, b = rvq(x), grvq(x)
        assert torch.equal(a.codes, b.codes)
        assert torch.allclose(a.quantized, b.quantized)
        assert torch.allclose(a.losses["commitment"], b.losses["commitment"])
    assert torch.equal(rvq.encode(x), grvq.encode(x))


def test_group_code_order_is_stage_major():
    grvq = GroupResidualVQ(8, 2, 2, 16).eval()
    x = _latent()
    codes = grvq.encode(x)
    g0, g1 = (rvq.encode(c) for rvq, c in zip(grvq.rvqs, x.chunk(2, dim=1)))
    assert torch.equal(codes, torch.stack([g0[:, 0], g1[:, 0], g0[:, 1], g1[:, 1]], dim=1))
    assert torch.allclose(grvq.decode(codes), grvq(x).quantized, atol=1e-5)


def test_group_fewer_codebooks_keeps_prefix():
    grvq = GroupResidualVQ(8, 2, 3, 16).eval()
    x = _latent()
    full = grvq.encode(x)
    grvq.set_num_codebooks(4)
    assert torch.equal(grvq.encode(x), full[:, :4])
    try:
        grvq.set_num_codebooks(3)
    except ValueError as e:
        assert "multiple of 2" in str(e)
    else:
        raise AssertionError("odd codebook count accepted")


def test_quantizer_dropout_uses_same_depth_in_every_group():
    torch.manual_seed(0)
    grvq = GroupResidualVQ(8, 2, 4, 16, quantizer_dropout=1.0).train()
    x = torch.randn(64, 8, 5)
    out = grvq(x)
    assert out.codes.shape == (64, 8, 5)  # every stage runs in training
    # reconstruct what each sample's stage count should give and find it among 1..4 stages
    grvq.eval()
    seen = set()
    for b in range(64):
        matches = [
            d
            for d in range(1, 5)
            if torch.allclose(grvq.decode(out.codes[b : b + 1, : 2 * d]), out.quantized[b : b + 1], atol=1e-5)
        ]
        assert matches, f"sample {b} matches no stage count"
        seen.add(matches[0])
    assert len(seen) > 1  # different samples used different bitrates
