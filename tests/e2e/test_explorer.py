"""The explorer in a real headless browser (Debian's chromium driven by Playwright, no downloaded browser)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from model.store import publish

from ..app.conftest import make_checkpoint

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                          "(apt-get install chromium); CI installs it")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2ehome")
    publish(home, make_checkpoint(home / "v1.safetensors", 1, "e2e-v1"))
    port = free_port()
    env = {**os.environ, "HYBRIDGAN_HOME": str(home), "HYBRIDGAN_POLL_SECONDS": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "hybridgan.cli", "serve", "--port", str(port),
                             "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read().decode())
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("the service did not become ready")
    yield url, home
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def image_loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "el => el.complete && el.naturalWidth > 0")


def test_slider_grid_cell_and_shared_url(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('image').complete && document.getElementById('image').naturalWidth > 0")
    first = page.get_attribute("#image", "src")
    assert "model=e2e-v1" in first and page.inner_text("#model-version") == "e2e-v1"

    # move a slider with the keyboard: the image follows (debounced)
    page.focus("#cinfo-0")
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('image').getAttribute('src') !== {first!r}")
    moved = page.get_attribute("#image", "src")
    value = float(page.input_value("#cinfo-0"))
    assert value > 0.05 and f"c_info={round(value, 2)}%2C0" in moved
    page.wait_for_function("document.getElementById('image').complete")
    assert image_loaded(page, "#image")

    # click a grid cell: the sliders take its values
    page.wait_for_selector(".cell")
    cells = page.query_selector_all(".cell")
    assert len(cells) == 49
    cells[7 * 1 + 5].click()  # row 1, col 5 of a 7x7 grid over [-1, 1]
    assert float(page.input_value("#cinfo-0")) == -0.6667
    assert float(page.input_value("#cinfo-1")) == 0.6667
    page.select_option("#class", label="Sandal")
    page.fill("#seed", "1234")
    page.press("#seed", "Enter")
    page.wait_for_function("location.search.includes('seed=1234') && location.search.includes('Sandal')")
    page.wait_for_function("document.getElementById('image').complete")
    shown = page.get_attribute("#image", "src")

    # the shared URL restores the same view
    shared = page.url
    other = browser.new_page()
    other.goto(shared)
    other.wait_for_function("document.getElementById('image').src.includes('seed=1234')")
    assert other.get_attribute("#image", "src") == shown
    assert other.input_value("#class") == "1" and other.input_value("#seed") == "1234"
    assert float(other.input_value("#cinfo-0")) == -0.6667 and float(other.input_value("#cinfo-1")) == 0.6667
    other.close()
    page.close()


def test_explorer_follows_a_hot_loaded_model(server, browser):
    url, home = server
    page = browser.new_page()
    page.goto(url + "/?class=Boot&seed=5")
    page.wait_for_function("document.getElementById('image').naturalWidth > 0")
    publish(home, make_checkpoint(home / "v2.safetensors", 2, "e2e-v2"))
    page.wait_for_function("document.getElementById('model-version').textContent === 'e2e-v2'", timeout=15000)
    page.wait_for_function("document.getElementById('image').src.includes('model=e2e-v2')")
    assert "Now showing model e2e-v2" in page.inner_text("#message")
    page.close()
    publish(home, home / "models" / "e2e-v1.safetensors", "e2e-v1")  # back, for other tests
