"""Take the README's picture of the explorer: serve a run store, open the page in headless chromium
(Debian's, no downloaded browser), show one class with its c_info grid, save a PNG.

  python scripts/screenshot.py --home .hybridgan --out docs/explorer.png [--class Boot --seed 11]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import start_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True, help="a run store with a published model")
    ap.add_argument("--out", default="docs/explorer.png")
    ap.add_argument("--class", dest="cls", default="Boot")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--c-info", default="-0.5,0.5")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed (apt-get install chromium)")
    proc, url = start_server(Path(args.home).resolve())
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, headless=True,
                                  args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/?class={args.cls}&seed={args.seed}&c={args.c_info}")
            page.wait_for_function("document.getElementById('image').complete && "
                                   "document.getElementById('image').naturalWidth > 0")
            page.wait_for_selector(".cell")
            page.fill("#interp-seed", str(args.seed + 1))
            page.click("#play")  # the interpolation strip and its animation
            page.wait_for_function("document.getElementById('interp-strip').complete && "
                                   "document.getElementById('interp-strip').naturalWidth > 0")
            page.wait_for_function("[...document.querySelectorAll('img')].every(i => !i.src || (i.complete && i.naturalWidth > 0))")
            page.wait_for_timeout(500)
            page.screenshot(path=args.out, full_page=True)
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
