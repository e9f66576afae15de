"""Hybrid-GAN in pure PyTorch: config and presets, networks, losses, data, training, checkpoints,
sampling. Imports neither app/ nor worker/; nothing happens at import time beyond definitions."""

from .checkpoint import CheckpointError, GeneratorInfo, load_generator, save_generator
from .config import Config, ConfigError, ModelConfig, TrainConfig, DataConfig, apply_overrides, get_preset
from .data import DataError, ShoeData, load_dataset
from .networks import Discriminator, Generator
from .sampling import cinfo_grid, generate, image_grid, interpolate_classes, interpolate_seeds
from .train import TrainingDiverged, TrainResult, train

__all__ = [
    "CheckpointError", "Config", "ConfigError", "DataConfig", "DataError", "Discriminator", "Generator",
    "GeneratorInfo", "ModelConfig", "ShoeData", "TrainConfig", "TrainResult", "TrainingDiverged",
    "apply_overrides", "cinfo_grid", "generate", "get_preset", "image_grid", "interpolate_classes",
    "interpolate_seeds", "load_dataset", "load_generator", "save_generator", "train",
]
