"""Hybrid-GAN losses (paper sec. 3.5): WGAN-GP critic loss, generator loss, info loss.

L_D    = D(G(z, c, c_info), c) - D(x, c) + lambda_GP * GP            (Gulrajani et al. 2017)
L_G    = -D(G(z, c, c_info), c)
L_info = lambda_info * MSE(Q(D_head(G(z, c, c_info), c)), c_info)    (Chen et al. 2016)
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def gradient_penalty(critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                     real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor,
                     eps: torch.Tensor | None = None) -> torch.Tensor:
    """E[(||grad_x D(x_hat, c)||_2 - 1)^2] on random interpolates x_hat of real and fake samples.

    `critic(x, c)` returns one score per sample. The graph is kept (create_graph) so the penalty
    trains D: that second differentiation is why D's attention must be twice-differentiable.
    """
    if eps is None:  # (B, 1, 1, 1) mixing weights; data-parallel callers pass their share of the batch's
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)  # (B, 3, R, R)
    scores = critic(x_hat, c)
    (grad,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)  # (B,)
    return (norm - 1).square().mean()


def critic_wgan_loss(real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """D(fake) - D(real), averaged: minimising it maximises the Wasserstein estimate."""
    return fake_score.float().mean() - real_score.float().mean()


def generator_loss(fake_score: torch.Tensor) -> torch.Tensor:
    return -fake_score.float().mean()


def info_loss(q: torch.Tensor, c_info: torch.Tensor) -> torch.Tensor:
    """MSE between Q's regression of c_info and the c_info G was given (unweighted)."""
    return F.mse_loss(q.float(), c_info.float())
