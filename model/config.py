"""Typed configuration and named presets for Hybrid-GAN.

Every hyperparameter of the paper (../shared/paper/hybrid-gan.md, "the paper" below) is a named field
here with the section it comes from. Nothing in the training loop is a literal.

A config has three parts:
  ModelConfig  -- the architecture; saved inside every checkpoint so a generator rebuilds from its file
  TrainConfig  -- losses, optimisers, schedule, logging
  DataConfig   -- where the images come from and how they are prepared

Presets are named override sets. A preset name may combine a base with modifiers joined by "+",
e.g. "cpu+no-sa" is the CPU preset with self-attention removed from D (an ablation).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class ModelConfig:
    resolution: int = 64  # output side in px; a power of two >= 8. The paper does not state it.
    num_classes: int = 3  # paper: 12 (dataset1) or 5 (dataset2); our photos carry 3
    z_dim: int = 128  # noise z ~ N(0, I) (paper sec. 3.2)
    info_dim: int = 2  # c_info ~ U(-1, 1), "two components" (paper sec. 3.2, Fig. 4)
    class_embed_dim: int = 64  # width of E_G(c_one-hot), one Linear, no activation (paper sec. 3.1)
    # Generator widths: channels at the 4x4 map and at each later resolution, halving as the map
    # doubles, never below g_min_channels. The paper's figures (with its widths) are missing; these
    # follow DCGAN (Radford et al. 2015), which the paper builds on (sec. 2.3).
    g_channels: int = 512
    g_min_channels: int = 64
    g_units_per_block: int = 2  # 3x3 conv units after each nearest-neighbour upsample (Fig. 1.2, 1.3)
    g_activation: str = "relu"  # conv unit = conv, BN, activation (Fig. 1.3); DCGAN uses ReLU in G
    g_attn_resolutions: tuple[int, ...] = ()  # SA layers in G: none in Model1, two in Model2 (Fig. 6)
    # Discriminator widths: channels after the first stride-2 unit, doubling as the map halves.
    d_channels: int = 64
    d_max_channels: int = 512
    d_pile_depth: int = 2  # "a pile of per pixel convolution, leakyRelu and dropout" (Fig. 1.4)
    d_dropout: float = 0.2  # dropout in D's 1x1 pile and conv units (Fig. 1.4, 1.5); rate not given
    d_leaky_slope: float = 0.2  # LeakyReLU slope (DCGAN default; not given by the paper)
    d_norm: str = "batch"  # "batch" as the paper (Fig. 1.5), or "none"/"layer" (beyond the paper)
    d_attn_resolutions: tuple[int, ...] = (16, 8)  # two SA layers in D (paper sec. 3.3; Zhang et al. 2019)
    d_class_embed_dim: int = 64  # E_D: two Linear layers (Fig. 1.4), tiled to HxW (Reed et al. 2016)
    d_cond_resolution: int = 4  # the map E_D(c) is concatenated to (Reed et al. 2016 use 4x4)
    # Beyond the paper: add a projection term <embed(c), features> to the critic score (Miyato &
    # Koyama 2018), beside the paper's concatenation. It lets D judge "is this a sandal" directly.
    d_projection: bool = False
    minibatch_std: bool = True  # PGGAN minibatch stddev on the input images (sec. 3.4; Karras et al. 2018)
    mbstd_group_size: int = 4  # PGGAN's group size
    spectral_norm: str = "none"  # "none" | "D" | "GD": the failed try of sec. 4.3
    # Attention kernel: "auto" uses fused SDPA where the graph allows it (G; D without double backward
    # on CUDA) and the plain matmul-softmax path in D, whose gradient penalty differentiates twice.
    attention: str = "auto"  # "auto" | "naive" | "sdpa"

    def __post_init__(self) -> None:
        self.g_attn_resolutions = tuple(int(r) for r in self.g_attn_resolutions)
        self.d_attn_resolutions = tuple(int(r) for r in self.d_attn_resolutions)

    def validate(self) -> None:
        r = self.resolution
        if r < 8 or r & (r - 1):
            raise ConfigError(f"model.resolution must be a power of two >= 8, got {r}")
        for name in ("num_classes", "z_dim", "info_dim", "class_embed_dim", "g_channels",
                     "g_min_channels", "g_units_per_block", "d_channels", "d_max_channels",
                     "d_class_embed_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_pile_depth < 0:
            raise ConfigError("model.d_pile_depth must be >= 0")
        if not 0.0 <= self.d_dropout < 1.0:
            raise ConfigError(f"model.d_dropout must be in [0, 1), got {self.d_dropout}")
        levels = {4 * 2**i for i in range(int(math.log2(r)) - 1)}
        for name in ("g_attn_resolutions", "d_attn_resolutions"):
            bad = [a for a in getattr(self, name) if a not in levels]
            if bad:
                raise ConfigError(f"model.{name} {bad} are not feature-map sizes of a {r}px model "
                                  f"({sorted(levels)})")
        if self.d_cond_resolution not in levels or self.d_cond_resolution >= r:
            raise ConfigError(f"model.d_cond_resolution must be one of {sorted(levels - {r})}")
        _choice("model.g_activation", self.g_activation, ("relu", "lrelu"))
        _choice("model.d_norm", self.d_norm, ("batch", "layer", "none"))
        _choice("model.spectral_norm", self.spectral_norm, ("none", "D", "GD"))
        _choice("model.attention", self.attention, ("auto", "naive", "sdpa"))


@dataclass
class TrainConfig:
    batch_size: int = 32  # paper sec. 4.2
    epochs: float = 200.0  # paper sec. 4.2 (fractions allowed for short runs)
    lr_g: float = 6e-5  # paper sec. 4.2: lr of G and Q
    lr_q: float = 6e-5  # paper sec. 4.2
    lr_d_mult: float = 4.0  # paper sec. 4.2: lr_D = 4 x lr_G
    betas: tuple[float, float] = (0.5, 0.999)  # paper sec. 4.2
    gp_weight: float = 10.0  # lambda_GP; "should be exactly 10" (sec. 3.5; Gulrajani et al. 2017)
    gp_every: int = 1  # lazy regularisation (StyleGAN2): penalty every k critic steps, scaled by k
    info_weight: float = 10.0  # lambda_infoloss (sec. 3.5; Chen et al. 2016)
    n_critic: int = 1  # critic steps per G step; the paper's 4x TTUR lr implies 1
    mismatch_weight: float = 0.0  # real image + wrong label as extra fake (Reed et al.); failed try 4.3
    ema_beta: float = 0.0  # EMA of G's weights (beyond the paper); 0 disables
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: str = "auto"  # "auto" (bf16 on CUDA, off on CPU) | "bf16" | "off"
    channels_last: bool = True  # NHWC kernels: ~10x faster nearest upsampling on CPU
    num_threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default
    # torch.compile of G's forward ("g") or none ("off"). Measured on the 2-core CPU: no gain, and the
    # critic step cannot be compiled at all (the penalty's double backward), so only G is offered. A
    # compile that fails falls back to eager with a warning instead of failing the run.
    compile: str = "off"
    # Data-parallel processes in one job (torchrun; one per GPU, or gloo on CPU). batch_size stays
    # the global batch: N processes take exactly the step one process takes (model/distributed.py).
    nproc: int = 1
    log_every: int = 20  # steps between metrics.jsonl lines
    sample_every: int = 500  # steps between sample grids (and at the end)
    ckpt_every: int = 1000  # steps between checkpoints (and at the end or a stop)
    keep_checkpoints: int = 5  # newest servable checkpoints kept; 0 keeps all
    samples_per_class: int = 8  # fixed z per class in sample grids
    grid_steps: int = 7  # c_info grid side (paper Fig. 4)
    divergence_threshold: float = 1e5  # |loss| above this (or non-finite) stops the run (sec. 4.3)
    divergence_patience: int = 3  # consecutive bad checks before stopping

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    @property
    def lr_d(self) -> float:
        return self.lr_g * self.lr_d_mult

    def validate(self) -> None:
        if self.batch_size < 2:
            raise ConfigError("train.batch_size must be >= 2 (minibatch stddev and BN need a batch)")
        if not self.epochs > 0:
            raise ConfigError(f"train.epochs must be > 0, got {self.epochs}")
        for name in ("lr_g", "lr_q", "lr_d_mult"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise ConfigError(f"train.{name} must be a positive number, got {v}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas must be in [0, 1), got {self.betas}")
        for name in ("gp_weight", "info_weight", "mismatch_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0")
        for name in ("gp_every", "n_critic", "log_every", "sample_every", "ckpt_every",
                     "samples_per_class", "grid_steps", "divergence_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1")
        if not 0 <= self.ema_beta < 1:
            raise ConfigError("train.ema_beta must be in [0, 1)")
        if self.nproc < 1 or self.batch_size % self.nproc:
            raise ConfigError(f"train.nproc must be >= 1 and divide train.batch_size ({self.batch_size}), "
                              f"got {self.nproc}")
        _choice("train.amp", self.amp, ("auto", "bf16", "off"))
        _choice("train.compile", self.compile, ("off", "g"))


@dataclass
class DataConfig:
    path: str = ""  # a .zip (with manifest.csv, or class folders inside), or a folder tree
    layout: str = "auto"  # "auto" | "manifest" | "folders" | "utzap50k-hard" | "utzap50k-easy"
    holdout_fraction: float = 0.1  # held out by a hash of the image bytes; training never sees it
    hflip: bool = True  # horizontal flip augmentation (the paper flips dataset1, sec. 4.1)
    cache_dir: str = ""  # where the decoded uint8 cache lives; "" = <HYBRIDGAN_HOME>/cache

    def validate(self) -> None:
        if not 0 <= self.holdout_fraction < 1:
            raise ConfigError("data.holdout_fraction must be in [0, 1)")
        _choice("data.layout", self.layout,
                ("auto", "manifest", "folders", "utzap50k-hard", "utzap50k-easy"))


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    preset: str = "paper"

    def validate(self) -> "Config":
        self.model.validate()
        self.train.validate()
        self.data.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        return cls(model=_build(ModelConfig, d.get("model", {}), "model"),
                   train=_build(TrainConfig, d.get("train", {}), "train"),
                   data=_build(DataConfig, d.get("data", {}), "data"),
                   preset=str(d.get("preset", "custom")))


class ConfigError(ValueError):
    """A config or override that cannot be used; the message says which field and why."""


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _build(cls, d: dict[str, Any], section: str):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown {section} field(s): {sorted(unknown)}")
    return cls(**d)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """Rebuild a ModelConfig from a checkpoint's metadata, refusing unknown fields."""
    return _build(ModelConfig, d, "model")


# --- presets -----------------------------------------------------------------------------------
# Bases set the scale; modifiers switch the paper's tricks and failed tries on or off.
BASES: dict[str, dict[str, dict[str, Any]]] = {
    # Unit tests: 16 px, narrow, runs a step in milliseconds.
    "tiny": {"model": dict(resolution=16, z_dim=16, class_embed_dim=8, g_channels=32, g_min_channels=16,
                           g_units_per_block=1, d_channels=16, d_max_channels=32, d_pile_depth=1,
                           d_class_embed_dim=8, d_attn_resolutions=(8, 4), mbstd_group_size=2),
             "train": dict(batch_size=8, epochs=1.0, log_every=1, sample_every=10, ckpt_every=10,
                           samples_per_class=2, grid_steps=3)},
    # 2 CPU cores: 32 px and narrow widths; recognisable shoes of each class within about an hour.
    "cpu": {"model": dict(resolution=32, z_dim=64, class_embed_dim=32, g_channels=256, g_min_channels=64,
                          g_units_per_block=1, d_channels=64, d_max_channels=256, d_pile_depth=1,
                          d_class_embed_dim=32, d_attn_resolutions=(16, 8)),
            "train": dict(epochs=15.0, log_every=20, sample_every=500, ckpt_every=500)},
    # 2 CPU cores at 64 px, narrow: several hours for a useful model.
    "cpu64": {"model": dict(resolution=64, z_dim=64, class_embed_dim=32, g_channels=256, g_min_channels=32,
                            g_units_per_block=1, d_channels=32, d_max_channels=256, d_pile_depth=1,
                            d_class_embed_dim=32, d_attn_resolutions=(16, 8)),
              "train": dict(epochs=40.0, sample_every=500, ckpt_every=500)},
    # The paper's Model1 at 128 px with DCGAN-like widths, batch 32, 200 epochs (sec. 4.2). For GPUs.
    "paper": {"model": dict(resolution=128, d_attn_resolutions=(32, 16)), "train": dict()},
}
MODIFIERS: dict[str, dict[str, dict[str, Any]]] = {
    # Model2: two SA layers in G as well (paper Fig. 6): at the two largest maps below the output.
    "sa-g": {"model": dict(g_attn_resolutions="two-largest")},
    # Failed try of sec. 4.3: a single SA layer in G.
    "sa-g1": {"model": dict(g_attn_resolutions="largest")},
    "gp3": {"train": dict(gp_weight=3.0)},  # failed try of sec. 4.3: lambda_GP = 3 explodes
    "mismatch": {"train": dict(mismatch_weight=1.0)},  # failed try of sec. 4.3 (Reed et al. 2016)
    "spectral-norm": {"model": dict(spectral_norm="GD")},  # failed try of sec. 4.3
    "no-sa": {"model": dict(d_attn_resolutions=())},  # ablation: sec. 3.3
    "no-mbstd": {"model": dict(minibatch_std=False)},  # ablation: sec. 3.4
    "no-info": {"train": dict(info_weight=0.0)},  # ablation: sec. 3.2
    # Plain conditional WGAN-GP: no SA, no minibatch stddev, no info loss.
    "plain": {"model": dict(d_attn_resolutions=(), minibatch_std=False), "train": dict(info_weight=0.0)},
    "lazy-gp": {"train": dict(gp_every=4)},  # beyond the paper: StyleGAN2's lazy regularisation
    "ema": {"train": dict(ema_beta=0.999)},  # beyond the paper: EMA of G's weights
    "proj": {"model": dict(d_projection=True)},  # beyond the paper: projection discriminator term
    "cond8": {"model": dict(d_cond_resolution=8)},  # the class joins D one block earlier (8x8 map)
}
ALIASES = {"model1": "paper", "model2": "paper+sa-g"}


def preset_names() -> list[str]:
    return sorted(BASES) + sorted(ALIASES) + [f"<base>+{m}" for m in sorted(MODIFIERS)]


def get_preset(name: str) -> Config:
    """Build the Config of a preset name such as "cpu", "model2" or "cpu+no-sa+gp3"."""
    full = ALIASES.get(name, name)
    base, *mods = full.split("+")
    if base not in BASES:
        raise ConfigError(f"unknown preset base {base!r}; choose from {sorted(BASES) + sorted(ALIASES)}")
    cfg = Config(preset=name)
    _apply(cfg, BASES[base])
    for m in mods:
        if m not in MODIFIERS:
            raise ConfigError(f"unknown preset modifier {m!r}; choose from {sorted(MODIFIERS)}")
        _apply(cfg, MODIFIERS[m])
    return cfg.validate()


def _apply(cfg: Config, overrides: dict[str, dict[str, Any]]) -> None:
    for section, values in overrides.items():
        sub = getattr(cfg, section)
        for k, v in values.items():
            if k == "g_attn_resolutions" and isinstance(v, str):
                # The largest feature maps of G below the output size (where SA costs the most).
                r = sub.resolution
                v = (r // 2,) if v == "largest" else (r // 4, r // 2)
            setattr(sub, k, v)
        sub.__post_init__()


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    """Apply "section.field=value" strings, each parsed as its field's declared type."""
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in ("model", "train", "data"):
            raise ConfigError(f"override {item!r} must look like model.resolution=64 or train.epochs=5")
        sub = getattr(cfg, section)
        types = {f.name: f.type for f in fields(sub)}
        if name not in types:
            raise ConfigError(f"unknown field {section}.{name}; fields are {sorted(types)}")
        setattr(sub, name, _parse_value(key, types[name], raw.strip()))
        if hasattr(sub, "__post_init__"):
            sub.__post_init__()
    return cfg.validate()


def _parse_value(key: str, typ: str, raw: str) -> Any:
    try:
        if typ == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        if typ == "int":
            return int(raw)
        if typ == "float":
            v = float(raw)
            if not math.isfinite(v):
                raise ValueError
            return v
        if typ.startswith("tuple"):
            inner = "int" if "int" in typ else "float"
            parts = [p for p in raw.strip("()[]").split(",") if p.strip()]
            return tuple(_parse_value(key, inner, p.strip()) for p in parts)
        return raw
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a valid {typ}") from None
