"""Fixtures for the service: a run store with tiny real checkpoints made by the model package."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.checkpoint import save_generator
from model.config import get_preset
from model.networks import Generator
from model.store import publish

CLASSES = ["Boot", "Sandal", "Shoe"]


def make_checkpoint(path: Path, seed: int, version: str) -> Path:
    torch.manual_seed(seed)
    G = Generator(get_preset("tiny").model)
    with torch.no_grad():  # spread the output so images are not flat grey
        G.to_rgb.weight.mul_(8)
    return save_generator(G, path, class_names=CLASSES, step=seed, version=version)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpts")
    return {v: make_checkpoint(d / f"{v}.safetensors", s, v) for v, s in (("v1", 1), ("v2", 2))}


def wait_for(predicate, timeout=10.0, interval=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def make_client(home):
    clients = []

    def make(**overrides) -> TestClient:
        settings = Settings(home=home, poll_seconds=0.05, **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client, home, checkpoints) -> TestClient:
    publish(home, checkpoints["v1"])
    c = make_client()
    assert c.get("/readyz").status_code == 200
    return c
