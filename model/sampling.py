"""Sampling from a trained generator: one `generate` for CLI, API and worker alike.

Reproducibility: image i of a request with seed s is drawn from z = N(0, I) seeded with s + i (and,
when c_info is not given, c_info ~ U(-1, 1) from the same generator), so every image is reproducible
on its own from (class, c_info, seed + i) and the same inputs give the same pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .data import to_uint8
from .networks import Generator


def latent(seed: int, z_dim: int, info_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z (z_dim,), c_info (info_dim,)) for one seed, on the CPU, independent of the device."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(z_dim, generator=g)
    c_info = torch.rand(info_dim, generator=g) * 2 - 1
    return z, c_info


def _device(G: Generator) -> torch.device:
    return next(G.parameters()).device


def class_vector(G: Generator, c: int | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """A class index, or a weight per class (a blend), as a (num_classes,) float vector."""
    n = G.cfg.num_classes
    if isinstance(c, (int, np.integer)):
        if not 0 <= int(c) < n:
            raise ValueError(f"class index {c} out of range 0..{n - 1}")
        v = torch.zeros(n)
        v[int(c)] = 1.0
        return v
    v = torch.as_tensor(c, dtype=torch.float32)
    if v.shape != (n,):
        raise ValueError(f"class weights need {n} values, got {tuple(v.shape)}")
    return v


CHUNK = 8  # rows per generator call; see forward()


@torch.no_grad()
def forward(G: Generator, z: torch.Tensor, c: torch.Tensor, c_info: torch.Tensor) -> torch.Tensor:
    """Run G in eval mode on (B, z_dim), (B, num_classes), (B, info_dim) CPU tensors -> (B, 3, R, R).

    Batch-invariant: conv kernels pick their algorithm by batch size, so the same row can differ in
    the last bit between a batch of 1 and a batch of 40, enough to flip a rounded pixel. G therefore
    always runs on chunks of exactly CHUNK rows (the last one padded), and each image's pixels do not
    depend on what it was batched with: requests can be merged and still give the same bytes.
    """
    was_training = G.training
    G.eval()
    dev = _device(G)
    B = z.shape[0]
    pad = (-B) % CHUNK
    if pad:
        z = torch.cat([z, z[-1:].expand(pad, -1)])
        c = torch.cat([c, c[-1:].expand(pad, -1)])
        c_info = torch.cat([c_info, c_info[-1:].expand(pad, -1)])
    try:
        outs = [G(z[i:i + CHUNK].to(dev), c[i:i + CHUNK].to(dev), c_info[i:i + CHUNK].to(dev)).float().cpu()
                for i in range(0, B + pad, CHUNK)]
    finally:
        G.train(was_training)
    return torch.cat(outs)[:B]


def request_rows(G: Generator, c: int | Sequence[float], c_info: Sequence[float] | None, seed: int,
                 n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generator inputs (z, class vector, c_info) of images seed..seed+n-1: the reproducibility
    rule every caller (CLI, API, worker) shares. c_info None draws it from each image's seed."""
    cfg = G.cfg
    zs, infos = zip(*(latent(seed + i, cfg.z_dim, cfg.info_dim) for i in range(n)))
    if c_info is not None:
        ci = torch.as_tensor(c_info, dtype=torch.float32)
        if ci.shape != (cfg.info_dim,):
            raise ValueError(f"c_info needs {cfg.info_dim} values, got {tuple(ci.shape)}")
        infos = [ci] * n
    return torch.stack(zs), class_vector(G, c).expand(n, -1), torch.stack(infos)


def generate(G: Generator, c: int | Sequence[float], c_info: Sequence[float] | None = None,
             seed: int = 0, n: int = 1) -> torch.Tensor:
    """n images of class c (index or blend weights): (n, 3, R, R) in [-1, 1].

    c_info: one value per info dimension for every image, or None to draw it from each image's seed.
    """
    return forward(G, *request_rows(G, c, c_info, seed, n))


def cinfo_grid(G: Generator, c: int, seed: int = 0, steps: int = 7, dims: tuple[int, int] = (0, 1),
               value_range: tuple[float, float] = (-1.0, 1.0),
               base: Sequence[float] | None = None) -> tuple[torch.Tensor, list[list[float]]]:
    """The paper's Figure 4: one z, c_info dims[0] along rows and dims[1] along columns.

    Returns (steps*steps, 3, R, R) images in row-major order and the c_info of each cell.
    """
    cfg = G.cfg
    z, _ = latent(seed, cfg.z_dim, cfg.info_dim)
    values = torch.linspace(value_range[0], value_range[1], steps)
    base_t = torch.zeros(cfg.info_dim) if base is None else torch.as_tensor(base, dtype=torch.float32)
    cells = []
    for a in values:
        for b in values:
            ci = base_t.clone()
            ci[dims[0]] = a
            if cfg.info_dim > 1:
                ci[dims[1]] = b
            cells.append(ci)
    infos = torch.stack(cells)
    k = len(cells)
    imgs = forward(G, z.expand(k, -1), class_vector(G, c).expand(k, -1), infos)
    return imgs, [[round(float(v), 6) for v in ci] for ci in cells]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation, which keeps Gaussian latents at a typical norm."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def interpolate_seeds(G: Generator, c: int, seed_a: int, seed_b: int, steps: int = 8,
                      c_info: Sequence[float] | None = None) -> torch.Tensor:
    """Frames from seed_a's z to seed_b's z (slerp), class and c_info fixed: (steps, 3, R, R)."""
    cfg = G.cfg
    za, ia = latent(seed_a, cfg.z_dim, cfg.info_dim)
    zb, _ = latent(seed_b, cfg.z_dim, cfg.info_dim)
    ci = ia if c_info is None else torch.as_tensor(c_info, dtype=torch.float32)
    ts = torch.linspace(0, 1, steps).tolist()
    z = torch.stack([slerp(za, zb, t) for t in ts])
    return forward(G, z, class_vector(G, c).expand(steps, -1), ci.expand(steps, -1))


def interpolate_classes(G: Generator, c_a: int, c_b: int, seed: int = 0, steps: int = 8,
                        c_info: Sequence[float] | None = None) -> torch.Tensor:
    """Frames blending the class input from c_a to c_b, z and c_info fixed: (steps, 3, R, R)."""
    cfg = G.cfg
    z, ci = latent(seed, cfg.z_dim, cfg.info_dim)
    if c_info is not None:
        ci = torch.as_tensor(c_info, dtype=torch.float32)
    va, vb = class_vector(G, c_a), class_vector(G, c_b)
    c = torch.stack([(1 - t) * va + t * vb for t in torch.linspace(0, 1, steps).tolist()])
    return forward(G, z.expand(steps, -1), c, ci.expand(steps, -1))


def image_grid(images: torch.Tensor, ncol: int | None = None, pad: int = 2) -> Image.Image:
    """(B, 3, R, R) in [-1, 1] -> one RGB image, ncol per row, on white padding."""
    arr = to_uint8(images)  # (B, R, R, 3)
    B, R = arr.shape[0], arr.shape[1]
    ncol = ncol or math.ceil(math.sqrt(B))
    nrow = math.ceil(B / ncol)
    out = np.full((nrow * (R + pad) + pad, ncol * (R + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(B):
        r, c = divmod(i, ncol)
        out[pad + r * (R + pad):pad + r * (R + pad) + R, pad + c * (R + pad):pad + c * (R + pad) + R] = arr[i]
    return Image.fromarray(out)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, R, R) in [-1, 1] -> a PIL RGB image."""
    return Image.fromarray(to_uint8(image[None])[0])
