"""A compact RQ-VAE (residual-quantised autoencoder) for SIDs: embeddings ``[N, D]`` -> codes ``[N, L]``.

Encoder MLP ``D -> hidden -> latent``, ``L`` residual codebooks of ``K`` latent vectors each, decoder MLP
``latent -> hidden -> D``. Loss = reconstruction MSE + codebook loss + ``beta`` x commitment loss
(VQ-VAE, straight-through gradients). Codebooks start from residual k-means of the untrained encoder's
latents; codes unused over a window are re-seeded onto random current residuals (dead-code restart),
which keeps most of each codebook in use. A few hundred full-batch-ish steps train on CPU in seconds
for a few thousand items. Deterministic given the seed on one machine (the global torch RNG is left
untouched).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RQVAEConfig:
    """Training knobs; the defaults suit a few thousand 384-d sentence embeddings."""

    latent_dim: int = 32
    hidden_dim: int = 256
    steps: int = 300
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = 0.25  # commitment weight, as in VQ-VAE
    restart_every: int = 50  # steps between dead-code restarts (0: never)
    seed: int = 0
    # torch intra-op threads while training (restored afterwards). The model is tiny: on 2 shared cores
    # 2 threads made 80 steps 4x slower than 1 (52 s vs 12 s under load). 0 = leave torch's setting.
    num_threads: int = 1


@dataclass
class RQVAEResult:
    """Codes ``[N, L]``, per-level latent codebooks ``[K, latent]`` and residuals ``[N, latent]`` (the input
    to each level, for collision resolution), the loss per step and the final reconstruction MSE."""

    codes: np.ndarray
    codebooks: list = field(default_factory=list)
    residuals: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    recon_mse: float = 0.0


def _build(dim: int, levels: int, k: int, cfg: RQVAEConfig):
    import torch
    from torch import nn

    class RQVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(dim, cfg.hidden_dim), nn.GELU(),
                                         nn.Linear(cfg.hidden_dim, cfg.latent_dim))
            self.decoder = nn.Sequential(nn.Linear(cfg.latent_dim, cfg.hidden_dim), nn.GELU(),
                                         nn.Linear(cfg.hidden_dim, dim))
            self.codebooks = nn.Parameter(torch.zeros(levels, k, cfg.latent_dim))

        def quantize(self, z):
            """z ``[B, latent]`` -> (codes ``[B, L]``, z_q ``[B, latent]``, vq loss, residuals list)."""
            residual, zq, codes, residuals, vq = z, torch.zeros_like(z), [], [], z.new_zeros(())
            for level in range(levels):
                cb = self.codebooks[level]
                idx = torch.cdist(residual.detach(), cb.detach()).argmin(1)
                e = cb[idx]
                vq = vq + ((residual.detach() - e) ** 2).mean() + cfg.beta * ((residual - e.detach()) ** 2).mean()
                residuals.append(residual)
                codes.append(idx)
                zq = zq + e
                residual = residual - e.detach()
            return torch.stack(codes, 1), zq, vq, residuals

        def forward(self, x):
            z = self.encoder(x)
            codes, zq, vq, _ = self.quantize(z)
            x_hat = self.decoder(z + (zq - z).detach())  # straight-through estimator
            return x_hat, vq, codes

    return RQVAE()


def _kmeans_init(model, x, k: int, seed: int) -> None:
    import torch
    from .quantize import residual_kmeans

    with torch.no_grad():
        z = model.encoder(x).numpy()
        res = residual_kmeans(z, model.codebooks.shape[0], k, balanced=False, n_iter=20, seed=seed)
        model.codebooks.copy_(torch.from_numpy(np.stack(res.codebooks)))


def _restart_dead(model, x, usage, gen) -> int:
    """Re-seed codes unused since the last restart onto random residuals of that level; returns how many."""
    import torch

    n_dead = 0
    with torch.no_grad():
        _, _, _, residuals = model.quantize(model.encoder(x))
        for level, used in enumerate(usage):
            dead = torch.nonzero(used == 0).flatten()
            if dead.numel():
                pick = torch.randint(0, x.shape[0], (dead.numel(),), generator=gen)
                model.codebooks[level, dead] = residuals[level][pick]
                n_dead += dead.numel()
            used.zero_()
    return n_dead


def train_rqvae(emb: np.ndarray, levels: int, k: int, cfg: RQVAEConfig | None = None,
                progress: bool = False) -> RQVAEResult:
    """Train on ``emb [N, D]`` and return every item's codes (computed after training, eval mode)."""
    import torch

    cfg = cfg or RQVAEConfig()
    x = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))
    if not 1 <= k <= x.shape[0]:
        raise ValueError(f"RQ-VAE needs 1 <= codebook size <= N, got {k} for {x.shape[0]} items")
    threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _train(x, levels, k, cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _train(x, levels: int, k: int, cfg: RQVAEConfig, progress: bool) -> RQVAEResult:
    import torch
    from tqdm.auto import tqdm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = _build(x.shape[1], levels, k, cfg)
        _kmeans_init(model, x, k, cfg.seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        usage = [torch.zeros(k, dtype=torch.long) for _ in range(levels)]
        losses = []
        bar = tqdm(range(cfg.steps), desc="rq-vae", unit="step", disable=not progress, leave=False)
        for step in bar:
            idx = torch.randperm(x.shape[0], generator=gen)[:cfg.batch_size]
            x_hat, vq, codes = model(x[idx])
            loss = ((x_hat - x[idx]) ** 2).sum(1).mean() + vq
            opt.zero_grad()
            loss.backward()
            opt.step()
            for level in range(levels):
                usage[level] += torch.bincount(codes[:, level], minlength=k)
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if cfg.restart_every and (step + 1) % cfg.restart_every == 0 and step + 1 < cfg.steps:
                _restart_dead(model, x, usage, gen)
        model.eval()
        with torch.no_grad():
            z = model.encoder(x)
            codes, zq, _, residuals = model.quantize(z)
            recon = float(((model.decoder(zq) - x) ** 2).sum(1).mean())
    return RQVAEResult(codes=codes.numpy().astype(np.int64),
                       codebooks=[c.numpy().copy() for c in model.codebooks.detach()],
                       residuals=[r.numpy() for r in residuals], losses=losses, recon_mse=recon)
