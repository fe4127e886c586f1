import torch

from hificodec.quantization import VectorQuantizer


def _clusters(n=512, dim=8, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, dim, generator=g) * 3
    idx = torch.randint(0, k, (n,), generator=g)
    x = centres[idx] + 0.05 * torch.randn(n, dim, generator=g)
    return x.t().unsqueeze(0), centres  # [1, dim, n]


def test_codes_in_range_and_decode_matches_forward():
    vq = VectorQuantizer(8, 16).eval()
    x, _ = _clusters()
    out = vq(x)
    assert out.codes.dtype == torch.long and out.codes.shape == (1, 1, 512)
    assert 0 <= int(out.codes.min()) and int(out.codes.max()) < 16
    assert torch.equal(vq.encode(x), out.codes[:, 0])
    assert torch.allclose(vq.decode(out.codes[:, 0]), out.quantized, atol=1e-6)


def test_straight_through_gradient_reaches_input():
    vq = VectorQuantizer(8, 16)
    x = torch.randn(2, 8, 10, requires_grad=True)
    out = vq(x)
    out.quantized.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_codebook_loss_trains_codebook_by_gradient():
    vq = VectorQuantizer(8, 4)
    x, _ = _clusters()
    opt = torch.optim.SGD(vq.parameters(), lr=0.5)
    first = None
    for _ in range(100):
        loss = vq(x).losses["codebook"]
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(vq(x).losses["codebook"]) < 0.5 * first


def test_kmeans_init_finds_clusters():
    vq = VectorQuantizer(8, 4, kmeans_init=True, kmeans_iters=20, ema=True)
    x, centres = _clusters()
    assert not bool(vq.initialized)
    vq.train()(x)
    assert bool(vq.initialized)
    # every true centre has a codebook entry close to it
    d = torch.cdist(centres, vq.embed)
    assert float(d.min(dim=1).values.max()) < 0.5


def test_ema_moves_codebook_towards_data():
    torch.manual_seed(1)
    vq = VectorQuantizer(8, 4, ema=True, ema_decay=0.8).train()
    x, _ = _clusters()
    before = float(vq(x).losses["commitment"])
    for _ in range(30):
        out = vq(x)
    assert "codebook" not in out.losses  # EMA codebooks take no gradient loss
    assert float(out.losses["commitment"]) < 0.2 * before


def test_dead_code_restart_revives_unused_codes():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 32, dead_code_steps=3).train()
    with torch.no_grad():
        vq.embed.data[:] = 100.0  # all codes far away ...
        vq.embed.data[0] = 0.0  # ... except one, which takes every input
    x, _ = _clusters()
    assert float(vq(x).usage) == 1 / 32
    for _ in range(3):
        vq(x)
    # after 3 unused steps every dead entry was re-seeded from inputs: many codes are used again
    out = vq(x)
    assert float(out.usage) > 0.1
    assert float(vq.embed.abs().max()) < 50


def test_perplexity_and_usage():
    vq = VectorQuantizer(2, 4).eval()
    with torch.no_grad():
        vq.embed.data = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    x = torch.tensor([[0.0, 10.0, 0.0, 10.0], [0.0, 0.0, 10.0, 10.0]]).unsqueeze(0)
    out = vq(x)
    assert torch.allclose(out.perplexity, torch.tensor([4.0]))
    assert float(out.usage) == 1.0
    out = vq(torch.zeros(1, 2, 8))
    assert torch.allclose(out.perplexity, torch.tensor([1.0])) and float(out.usage) == 0.25


def test_factorised_normalised_lookup():
    vq = VectorQuantizer(16, 32, codebook_dim=4, normalize=True).eval()
    x = torch.randn(2, 16, 20)
    out = vq(x)
    assert out.quantized.shape == x.shape
    assert torch.allclose(vq.decode(vq.encode(x)), out.quantized, atol=1e-5)
