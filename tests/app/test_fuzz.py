"""Fuzz every operation of the OpenAPI spec (schemathesis): no input may produce a 5xx."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hsettings

from app.main import create_app
from app.settings import Settings
from model.store import publish

from .conftest import make_checkpoint


@pytest.fixture(scope="module")
def fuzz_schema():
    home = Path(tempfile.mkdtemp(prefix="hybridgan-fuzz-"))
    publish(home, make_checkpoint(home / "fuzz.safetensors", 3, "fuzz"))
    # batching off: schemathesis drives the ASGI app without running its lifespan
    app = create_app(Settings(home=home, batching=False, max_count=8, max_grid_steps=5, max_interp_steps=6))
    app.state.registry.check_once()
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutil.rmtree(home, ignore_errors=True)


def test_no_input_gives_a_server_error(fuzz_schema):
    operations = [op.ok() for op in fuzz_schema.get_all_operations()]
    assert len(operations) >= 8
    for op in operations:
        @given(case=op.as_strategy())
        @hsettings(max_examples=30, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            assert response.status_code < 500, \
                f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> {response.status_code}: {response.text[:300]}"
        check()
