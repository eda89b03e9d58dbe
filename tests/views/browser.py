"""Headless Chromium for the view tests and the README screenshots (docs/view_screenshots.py): Playwright driving
Debian's `chromium` (no browser download). `chromium_or_skip()` names why a test cannot run where either is missing."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

VIEWPORT = {"width": 1280, "height": 900}
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    """Debian's chromium (or $TOYMI_CHROMIUM), or None."""
    candidates = [os.environ.get("TOYMI_CHROMIUM"), *CHROMIUM_PATHS, shutil.which("chromium")]
    return next((c for c in candidates if c and Path(c).exists()), None)


def chromium_or_skip():
    """`(sync_playwright, path)`, or `pytest.skip` with the reason."""
    import pytest

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("no browser tests: Playwright is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no browser tests: no chromium (apt-get install chromium, or set TOYMI_CHROMIUM)")
    return sync_playwright, path


@contextlib.contextmanager
def browser(sync_playwright, path: str):
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class Page:
    """A page opened from a file, recording console errors and uncaught exceptions."""

    def __init__(self, browser, path: Path, viewport=VIEWPORT):
        self.page = browser.new_page(viewport=viewport)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.goto(Path(path).resolve().as_uri())
        self.page.wait_for_load_state("load")
        self.page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def plots(self) -> list[str]:
        """Ids of the Plotly plots drawn on the page."""
        return self.js("() => [...document.querySelectorAll('.js-plotly-plot')].map(d => d.id)")

    def screenshot(self, path: Path, full_page: bool = False) -> np.ndarray:
        self.page.wait_for_timeout(300)  # let Plotly finish transitions
        self.page.screenshot(path=str(path), full_page=full_page)
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"))


def check_screenshot(image: np.ndarray, width: int, min_height: int) -> None:
    """Non-blank (a sizeable share of non-white pixels, many colours) and the expected size."""
    height, w, _ = image.shape
    assert w == width and height >= min_height, f"screenshot is {w}x{height}, expected width {width}, height >= {min_height}"
    inked = (image.min(axis=2) < 235).mean()
    colours = len(np.unique(image.reshape(-1, 3)[::7], axis=0))
    assert inked > 0.05 and colours > 50, f"screenshot looks blank: {inked:.1%} non-white pixels, {colours} colours"
