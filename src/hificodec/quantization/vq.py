"""Vector quantization: nearest-code lookup with a straight-through estimator.

Codebook learning is either by gradient (codebook loss) or by exponential moving averages (EMA).
Optional k-means initialisation from the first training batch and dead-code restarts keep every
entry in use. Under torch.distributed, code counts and EMA sums are all-reduced, k-means runs on the
union of all ranks' data, and restart samples are broadcast from rank 0, so every rank holds an
identical codebook; all decisions derive from reduced statistics, so every rank runs the same
collectives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import all_reduce_sum, broadcast
from ..modules.cache import DerivedCache
from .base import QuantizerOutput

# Rows of inputs compared against the codebook at once: bounds memory for hour-long inputs.
_NEAREST_BLOCK = 16384


def code_counts(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each entry was chosen (float32 [codebook_size]); unlike `torch.bincount` on CUDA, this
    does not wait for the device to find the largest code."""
    ones = torch.ones(codes.numel(), device=codes.device)
    return torch.zeros(codebook_size, device=codes.device).index_add_(0, codes.reshape(-1), ones)


class VectorQuantizer(nn.Module):
    """Quantize [B, dim, F] latents against one codebook of `codebook_size` entries.

    Args:
        dim: input channels.
        codebook_size: number of entries.
        codebook_dim: look up in a lower-dimensional space (factorised codes, as in DAC); None = dim.
        normalize: l2-normalise inputs and entries (lookup, losses and output live on the unit sphere:
            the latent's scale cannot drift away from the codebook, a cause of early collapse).
        ema: learn the codebook by EMA of assigned inputs (no codebook loss) instead of by gradient.
        ema_decay, eps: EMA decay and Laplace smoothing.
        kmeans_init: initialise the codebook by k-means on the first training batch.
        kmeans_iters: k-means iterations.
        dead_code_steps: restart entries unused for this many training steps (0 = off).
        dead_code_threshold: with EMA, also restart entries whose EMA count falls below this (0 = off).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        normalize: bool = False,
        ema: bool = False,
        ema_decay: float = 0.99,
        eps: float = 1e-5,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_steps: int = 0,
        dead_code_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.normalize = normalize
        self.ema = ema
        self.ema_decay = ema_decay
        self.eps = eps
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.dead_code_steps = dead_code_steps
        self.dead_code_threshold = dead_code_threshold
        self._codebook_cache: DerivedCache[torch.Tensor] = DerivedCache()
        factorised = self.codebook_dim != dim
        self.project_in: nn.Module = nn.Linear(dim, self.codebook_dim) if factorised else nn.Identity()
        self.project_out: nn.Module = nn.Linear(self.codebook_dim, dim) if factorised else nn.Identity()

        # buffers (and `embed`, a parameter without EMA), declared for type checkers
        self.embed: torch.Tensor
        self.cluster_size: torch.Tensor
        self.embed_sum: torch.Tensor
        self.initialized: torch.Tensor
        self.unused_steps: torch.Tensor
        init = torch.empty(codebook_size, self.codebook_dim)
        nn.init.kaiming_uniform_(init)
        if ema:
            self.register_buffer("embed", init)
            self.register_buffer("cluster_size", torch.zeros(codebook_size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.embed = nn.Parameter(init)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))

    # ---- lookup --------------------------------------------------------------------------
    def _nearest(self, z: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        """Index of the closest entry for each row of z [N, d]."""
        e_sq = embed.pow(2).sum(-1)
        out = []
        # one block in an ONNX export: the traced number of blocks would be frozen into the graph
        for block in [z] if torch.onnx.is_in_onnx_export() else z.split(_NEAREST_BLOCK):
            # ||z||^2 is constant per row: argmin of ||e||^2 - 2 z.e is the nearest entry.
            dist = torch.addmm(e_sq.unsqueeze(0), block, embed.t(), alpha=-2.0)
            out.append(dist.argmin(dim=-1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=z.device)

    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        """[B, dim, F] -> projected rows [B*F, codebook_dim] in float32 (lookups are precision-sensitive)."""
        rows = self.project_in(x.transpose(1, 2).reshape(-1, self.dim).float())
        return F.normalize(rows, dim=-1) if self.normalize else rows

    def _codebook(self) -> torch.Tensor:
        """The entries as used for lookup and output (unit vectors when `normalize`).

        Kept between calls while no gradient is recorded (keyed on the tensor's version, so training
        updates and loaded weights renew it): a stream looks up one frame at a time, and normalising
        the codebook every time cost about as much as the lookup."""
        if torch.is_grad_enabled() or torch.onnx.is_in_onnx_export():
            return self._compute_codebook()
        return self._codebook_cache.get([self.embed], self._compute_codebook)

    def _compute_codebook(self) -> torch.Tensor:
        embed = self.embed.float()
        return F.normalize(embed, dim=-1) if self.normalize else embed

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, dim, F] -> codes [B, F]."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            codes = self._nearest(self._flatten(x), self._codebook())
        return codes.view(x.shape[0], x.shape[2])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, F] -> [B, dim, F]."""
        q = self.project_out(F.embedding(codes, self._codebook()))
        return q.transpose(1, 2)

    # ---- training-time codebook maintenance ----------------------------------------------
    def _known_initialized(self) -> bool:
        """Whether the codebook is initialised, read from the device once: after that, a flag on the host.

        Reading the buffer at every forward would make each training step wait for the GPU.
        """
        if not getattr(self, "_initialized_seen", False):
            self._initialized_seen = bool(self.initialized)
        return self._initialized_seen

    @torch.no_grad()
    def _run_kmeans(self, z: torch.Tensor) -> None:
        k = self.codebook_size
        idx = torch.randint(0, z.shape[0], (k,), device=z.device)
        centroids = broadcast(z[idx].contiguous())
        counts = torch.zeros(k, device=z.device)
        for _ in range(self.kmeans_iters):
            codes = self._nearest(z, centroids)
            counts = all_reduce_sum(code_counts(codes, k))
            sums = all_reduce_sum(torch.zeros_like(centroids).index_add_(0, codes, z))
            centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
        self.embed.data.copy_(centroids)
        if self.ema:
            self.cluster_size.copy_(counts)
            self.embed_sum.copy_(centroids * counts[:, None])
        self.initialized.fill_(True)
        self._initialized_seen = True

    @torch.no_grad()
    def _update_ema(self, z: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        sums = all_reduce_sum(torch.zeros_like(self.embed_sum).index_add_(0, codes, z))
        self.cluster_size.mul_(self.ema_decay).add_(counts, alpha=1 - self.ema_decay)
        self.embed_sum.mul_(self.ema_decay).add_(sums, alpha=1 - self.ema_decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead_codes(self, z: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Replace dead entries by random inputs; returns how many were restarted (a tensor).

        Written without data-dependent branches, so a training step never waits for the device.
        """
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = torch.zeros_like(counts, dtype=torch.bool)
        if self.dead_code_steps > 0:
            dead |= self.unused_steps >= self.dead_code_steps
        if self.ema and self.dead_code_threshold > 0:
            dead |= self.cluster_size < self.dead_code_threshold
        idx = torch.randint(0, z.shape[0], (self.codebook_size,), device=z.device)
        samples = broadcast(z[idx].contiguous())  # identical on every rank: `dead` is too (reduced counts)
        column = dead[:, None]
        self.embed.data.copy_(torch.where(column, samples.to(self.embed.dtype), self.embed.data))
        if self.ema:
            self.cluster_size.copy_(torch.where(dead, torch.ones_like(self.cluster_size), self.cluster_size))
            self.embed_sum.copy_(torch.where(column, samples, self.embed_sum))
        self.unused_steps.masked_fill_(dead, 0)
        return dead.sum()

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._initialized_seen = False  # the loaded `initialized` buffer decides again
        super()._load_from_state_dict(*args, **kwargs)

    # ---- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        b, _, f = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self._flatten(x)
            if self.training and not self._known_initialized():
                self._run_kmeans(z.detach())
            codebook = self._codebook()
            codes = self._nearest(z.detach(), codebook.detach())
            q = F.embedding(codes, codebook)
            counts = code_counts(codes, self.codebook_size)
            losses = {"commitment": F.mse_loss(z, q.detach())}
            if not self.ema:
                losses["codebook"] = F.mse_loss(q, z.detach())
            if self.training:
                counts = all_reduce_sum(counts)
                if self.ema:
                    self._update_ema(z.detach(), codes, counts)
                if self.dead_code_steps > 0 or self.dead_code_threshold > 0:
                    self._restart_dead_codes(z.detach(), counts)
            q = z + (q - z).detach()  # straight-through estimator
            out = self.project_out(q).view(b, f, self.dim).transpose(1, 2)
        probs = counts / counts.sum().clamp(min=1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum())
        usage = (counts > 0).float().mean()
        return QuantizerOutput(
            quantized=out.to(x.dtype),
            codes=codes.view(b, f).unsqueeze(1),
            losses=losses,
            perplexity=perplexity.view(1),
            usage=usage.view(1),
        )
