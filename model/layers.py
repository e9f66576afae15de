"""Building blocks of Hybrid-GAN: minibatch stddev, self-attention, and the conv units of G and D.

Each block is the one the paper's figure captions describe (Fig. 1.2-1.5); the networks that compose
them are in networks.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MinibatchStd(nn.Module):
    """Minibatch standard deviation as one extra channel (Karras et al. 2018, PGGAN), unchanged.

    The paper applies it to D's input images (sec. 3.4). Groups of `group_size` samples share one
    statistic: the stddev of every feature at every location over the group, averaged to a scalar.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N)
        if N % G:  # a ragged last batch: fall back to one group per largest divisor
            G = next(g for g in range(G, 0, -1) if N % g == 0)
        y = x.float().reshape(G, -1, C, H, W)  # (G, M, C, H, W): M groups of G samples
        y = y - y.mean(dim=0)  # (G, M, C, H, W) centred over each group
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # (M, C, H, W) stddev over the group
        y = y.mean(dim=(1, 2, 3))  # (M,) one scalar per group
        y = y.reshape(-1, 1, 1, 1).repeat(G, 1, H, W)  # (N, 1, H, W) sample n gets its group's value
        return torch.cat([x, y.to(x.dtype)], dim=1)  # (N, C+1, H, W)


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019), as the paper uses it unchanged (sec. 3.3).

    beta = softmax(f(x)^T g(x)) over positions; o = v(h(x) beta); y = gamma * o + x, gamma starting
    at 0. f, g project to C/8 channels and h to C/2 (as SAGAN's reference code does).

    Two kernels compute the same thing:
      "naive": explicit (B, HW, HW) attention map; differentiable twice, so the critic's gradient
               penalty can go through it on any device.
      "sdpa":  torch's fused scaled_dot_product_attention (flash / memory-efficient on CUDA, never
               materialising the HW x HW map); used where no double backward is needed (G).
    """

    def __init__(self, channels: int, impl: str = "naive", spectral_norm: bool = False):
        super().__init__()
        k = max(channels // 8, 1)
        v = max(channels // 2, 1)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        self.f = wrap(nn.Conv2d(channels, k, 1, bias=False))  # keys
        self.g = wrap(nn.Conv2d(channels, k, 1, bias=False))  # queries
        self.h = wrap(nn.Conv2d(channels, v, 1, bias=False))  # values
        self.v = wrap(nn.Conv2d(v, channels, 1, bias=False))  # output projection
        self.gamma = nn.Parameter(torch.zeros(()))
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q = self.g(x).flatten(2).transpose(1, 2)  # (B, HW, k)
        k = self.f(x).flatten(2).transpose(1, 2)  # (B, HW, k)
        v = self.h(x).flatten(2).transpose(1, 2)  # (B, HW, v)
        if self.impl == "sdpa":
            # SAGAN uses no 1/sqrt(d) scaling: scale=1.0 keeps the maths identical to "naive".
            o = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1),
                                               scale=1.0).squeeze(1)  # (B, HW, v)
        else:
            attn = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (B, HW_query, HW_key)
            o = attn @ v  # (B, HW, v)
        o = o.transpose(1, 2).reshape(B, -1, H, W)  # (B, v, H, W)
        return x + self.gamma * self.v(o)


class ConvUnitG(nn.Module):
    """G's conv unit (paper Fig. 1.3): 3x3 conv, BatchNorm, activation."""

    def __init__(self, cin: int, cout: int, activation: str = "relu", spectral_norm: bool = False):
        super().__init__()
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)  # BN follows: a bias would be absorbed
        self.conv = nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True) if activation == "relu" else nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ConvBlockG(nn.Module):
    """G's conv block (paper Fig. 1.2): nearest-neighbour 2x upsampling (no transposed conv), then units."""

    def __init__(self, cin: int, cout: int, units: int, activation: str, spectral_norm: bool = False):
        super().__init__()
        self.units = nn.Sequential(*[ConvUnitG(cin if i == 0 else cout, cout, activation, spectral_norm)
                                     for i in range(units)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Nearest 2x upsampling is ~10x faster on channels_last tensors on CPU; the caller keeps that
        # layout, and interpolate preserves it.
        return self.units(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConvUnitD(nn.Module):
    """D's conv unit (paper Fig. 1.5): 3x3 stride-2 conv, LeakyReLU, dropout, then BN (not in the first)."""

    def __init__(self, cin: int, cout: int, slope: float, dropout: float, norm: str,
                 spectral_norm: bool = False):
        super().__init__()
        conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.conv = nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv
        self.act = nn.LeakyReLU(slope)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if norm == "batch":
            self.norm = nn.BatchNorm2d(cout)
        elif norm == "layer":
            self.norm = nn.GroupNorm(1, cout)  # layer norm over (C, H, W), as WGAN-GP recommends
        else:
            self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.drop(self.act(self.conv(x))))
