"""Deployment settings: every one an environment variable with the HYBRIDGAN_ prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.store import default_home


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYBRIDGAN_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="the run store: runs, published models, cache")
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "cpu"  # where the API runs G; "cuda" on a GPU host
    poll_seconds: float = Field(1.0, gt=0, description="how often the registry checks the published alias")
    batching: bool = True  # merge concurrent requests into one generator pass
    batch_window_ms: float = Field(4.0, ge=0, description="how long a batch waits for more requests")
    batch_max_images: int = Field(64, ge=1)
    max_queue_images: int = Field(2048, ge=1, description="images waiting beyond this get 503 + Retry-After")
    max_count: int = Field(64, ge=1, le=256, description="images per POST /generate")
    max_grid_steps: int = Field(12, ge=2, le=32)
    max_interp_steps: int = Field(32, ge=2, le=128)
    max_cinfo_abs: float = Field(2.0, ge=1.0, description="grid range limit (extrapolation beyond [-1, 1])")
    pinned_models_cached: int = Field(4, ge=1, description="pinned versions kept loaded besides the current one")
    admin_token: str | None = None  # admin endpoints are off when unset
    broker_url: str = "filesystem://"  # redis://host:6379/0 in deployment; filesystem:// = embedded
    embedded_worker: bool | None = None  # start a worker beside `hybridgan serve`; default: with filesystem://
    dataset_dirs: list[Path] = Field(default_factory=list,
                                     description="folders whose entries POST /train-jobs may name as datasets; "
                                                 "always includes <home>/datasets")
    max_job_epochs: float = Field(1000.0, gt=0)
    max_body_bytes: int = Field(65536, ge=1024, description="larger request bodies get 413")
    designer_open: bool = True  # false closes the explorer and generation endpoints (403), e.g. a training-only host
