"""Fuzz every operation of the OpenAPI spec (schemathesis), admin ones with and without the token:
no input may produce a 5xx."""

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

TOKEN = "fuzz-token"


@pytest.fixture
def fuzz_schema():
    home = Path(tempfile.mkdtemp(prefix="hybridgan-fuzz-"))
    publish(home, make_checkpoint(home / "fuzz.safetensors", 3, "fuzz"))
    (home / "datasets" / "shoes").mkdir(parents=True)
    # batching off: schemathesis drives the ASGI app without running its lifespan. The embedded
    # broker accepts jobs with no worker running, so queued jobs just wait.
    app = create_app(Settings(home=home, batching=False, max_count=8, max_grid_steps=5, max_interp_steps=6,
                              admin_token=TOKEN, broker_url="filesystem://"))
    app.state.registry.check_once()
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("headers", [{}, {"Authorization": f"Bearer {TOKEN}"}], ids=["anonymous", "admin"])
def test_no_input_gives_a_server_error(fuzz_schema, headers):
    operations = [op.ok() for op in fuzz_schema.get_all_operations()]
    assert len(operations) >= 14
    statuses = set()
    for op in operations:
        @given(case=op.as_strategy())
        @hsettings(max_examples=25, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers=headers)
            statuses.add(response.status_code)
            assert response.status_code < 500, \
                f"{case.method} {case.formatted_path} {case.query} {case.body!r} -> {response.status_code}: {response.text[:300]}"
        check()
    assert 200 in statuses and 422 in statuses  # the fuzzer reached both sides of the validation
    assert (401 in statuses) == (not headers)
