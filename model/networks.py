"""The Hybrid-GAN generator G and discriminator D (paper sec. 3, Fig. 1.1-1.5).

G(z, c, c_info): V = concat(z, E_G(c_one-hot), c_info) -> Linear (no activation) -> 4x4 map ->
conv blocks (nearest 2x upsampling + 3x3 conv units) -> 1x1 conv to RGB -> tanh.

D(x, c): minibatch stddev channel -> pile of 1x1 conv + LeakyReLU + dropout -> 3x3 stride-2 conv units
(LeakyReLU, dropout, BN except the first) with two SA layers -> E_D(c) tiled and concatenated ->
D_head features -> two Linear heads: the critic score and Q(.) regressing c_info.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import ConvBlockG, ConvUnitD, MinibatchStd, SelfAttention


def g_widths(cfg: ModelConfig) -> dict[int, int]:
    """Channels of G's feature map at each resolution 4, 8, ..., cfg.resolution."""
    n = int(math.log2(cfg.resolution)) - 1  # number of levels from 4x4 to the output size
    return {4 * 2**i: max(cfg.g_channels // 2**i, cfg.g_min_channels) for i in range(n)}


def d_widths(cfg: ModelConfig) -> dict[int, int]:
    """Channels of D's feature map after the stride-2 unit that produces each resolution."""
    out, r, c = {}, cfg.resolution // 2, cfg.d_channels
    while r >= 4:
        out[r] = min(c, cfg.d_max_channels)
        r, c = r // 2, c * 2
    return out


def one_hot(c: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices (B,) -> one-hot float (B, num_classes); float (B, num_classes) passes through,
    so blends of classes (interpolation) go through the same path."""
    if c.dtype.is_floating_point:
        return c
    return F.one_hot(c.long(), num_classes).float()


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        sn = cfg.spectral_norm == "GD"
        widths = g_widths(cfg)
        self.embed = nn.Linear(cfg.num_classes, cfg.class_embed_dim, bias=False)  # E_G: one Linear (sec. 3.1)
        v_dim = cfg.z_dim + cfg.class_embed_dim + cfg.info_dim
        self.fc = nn.Linear(v_dim, widths[4] * 16)  # "a simply matrix multiply ... without activation" (Fig. 1.1)
        attn_impl = "naive" if cfg.attention == "naive" else "sdpa"  # G needs no double backward
        blocks: list[nn.Module] = []
        res = 8
        while res <= cfg.resolution:
            blocks.append(ConvBlockG(widths[res // 2], widths[res], cfg.g_units_per_block, cfg.g_activation, sn))
            if res in cfg.g_attn_resolutions:  # Model2 (Fig. 6) and the failed single-SA try (sec. 4.3)
                blocks.append(SelfAttention(widths[res], attn_impl, sn))
            res *= 2
        if 4 in cfg.g_attn_resolutions:
            blocks.insert(0, SelfAttention(widths[4], attn_impl, sn))
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.Conv2d(widths[cfg.resolution], 3, 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor, c_info: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        V = torch.cat([z, self.embed(one_hot(c, cfg.num_classes)), c_info], dim=1)  # (B, z+e+info)
        x = self.fc(V).view(-1, self.fc.out_features // 16, 4, 4)  # (B, C0, 4, 4)
        if self.to_rgb.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(x)  # (B, C, R, R)
        return torch.tanh(self.to_rgb(x))  # (B, 3, R, R) in [-1, 1]


class Discriminator(nn.Module):
    """The critic with its Q head. forward returns (score (B,), q (B, info_dim))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        sn = cfg.spectral_norm in ("D", "GD")
        wrap = nn.utils.parametrizations.spectral_norm if sn else (lambda m: m)
        widths = d_widths(cfg)
        self.mbstd = MinibatchStd(cfg.mbstd_group_size) if cfg.minibatch_std else None
        cin = 3 + int(cfg.minibatch_std)
        pile: list[nn.Module] = []
        for _ in range(cfg.d_pile_depth):  # "a pile of per pixel convolution, leakyRelu and dropout"
            pile += [wrap(nn.Conv2d(cin, cfg.d_channels, 1)), nn.LeakyReLU(cfg.d_leaky_slope)]
            if cfg.d_dropout > 0:
                pile.append(nn.Dropout(cfg.d_dropout))
            cin = cfg.d_channels
        self.pile = nn.Sequential(*pile)
        # The gradient penalty differentiates twice through D, which fused CUDA attention kernels
        # do not support; "auto" therefore keeps D on the plain path (see SelfAttention).
        attn_impl = "sdpa" if cfg.attention == "sdpa" else "naive"
        # E_D: two Linear layers (Fig. 1.4); its output is tiled to HxW and concatenated (Reed et al.).
        self.embed = nn.Sequential(wrap(nn.Linear(cfg.num_classes, cfg.d_class_embed_dim)),
                                   nn.LeakyReLU(cfg.d_leaky_slope),
                                   wrap(nn.Linear(cfg.d_class_embed_dim, cfg.d_class_embed_dim)))
        self.pre_cond = nn.ModuleList()  # units (and SA layers) before the class joins
        self.post_cond = nn.ModuleList()
        target = self.pre_cond
        first = True
        for res, cout in widths.items():
            if res < cfg.d_cond_resolution and target is self.pre_cond:
                target = self.post_cond
            target.append(ConvUnitD(cin, cout, cfg.d_leaky_slope, cfg.d_dropout,
                                    "none" if first else cfg.d_norm, sn))  # no BN in the first unit
            first = False
            if res in cfg.d_attn_resolutions:  # two SA layers (sec. 3.3)
                target.append(SelfAttention(cout, attn_impl, sn))
            cin = cout
        c_cond = widths[cfg.d_cond_resolution]  # channels of the map the class joins
        # After the concatenation a 1x1 conv + LeakyReLU mixes image and class features, as Reed et al.
        # do. Without it the class would only add a per-class constant to a linear critic score, which
        # cancels in D(fake) - D(real): D could never tell whether an image matches its class.
        self.joint = nn.Sequential(wrap(nn.Conv2d(c_cond + cfg.d_class_embed_dim, c_cond, 1)),
                                   nn.LeakyReLU(cfg.d_leaky_slope))
        self.feat_dim = cin * 16
        self.score = wrap(nn.Linear(self.feat_dim, 1))  # critic head (no activation: WGAN)
        self.q = nn.Linear(self.feat_dim, cfg.info_dim)  # Q head regresses c_info (Chen et al. 2016)
        # Projection term (beyond the paper): score += <V one_hot(c), h>, one row of V per class.
        # Initialised at the critic head's scale, so that the term does not swamp the score at the start.
        self.proj = None
        if cfg.d_projection:
            proj = nn.Linear(cfg.num_classes, self.feat_dim, bias=False)
            nn.init.uniform_(proj.weight, -self.feat_dim ** -0.5, self.feat_dim ** -0.5)
            self.proj = wrap(proj)

    def head_parameters(self):
        """D's parameters except Q, which has its own optimiser and lr_Q (sec. 4.2)."""
        return [p for n, p in self.named_parameters() if not n.startswith("q.")]

    def features(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """D_head(x, c): everything before the two Linear heads -> (B, feat_dim)."""
        if self.mbstd is not None:
            x = self.mbstd(x)  # (B, 4, R, R)
        x = self.pile(x)
        for layer in self.pre_cond:
            x = layer(x)
        e = self.embed(one_hot(c, self.cfg.num_classes))  # (B, d_class_embed_dim)
        e = e[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])  # tiled to (B, E, H, W)
        x = self.joint(torch.cat([x, e.to(x.dtype)], dim=1))  # (B, C, H, W): image and class mixed
        for layer in self.post_cond:
            x = layer(x)
        return x.flatten(1)  # (B, C*4*4)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x, c)
        score = self.score(h).squeeze(1)
        if self.proj is not None:
            score = score + (self.proj(one_hot(c, self.cfg.num_classes).to(h.dtype)) * h).sum(1)
        return score, self.q(h)
