"""Shared fixtures. Every test gets its own temporary $REGISTRY_HOME; nothing touches ./data.
Helpers that are not fixtures live in ``tests/support.py``."""

from __future__ import annotations

import pytest

from orchestration.config import Home


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    root = tmp_path / "home"
    monkeypatch.setenv("REGISTRY_HOME", str(root))
    return Home(root).ensure()


# ----------------------------------------------------------------------------- browser tests


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium, driven by Playwright (which cannot download its own browser here)."""
    from playwright.sync_api import sync_playwright

    from dashboards import measure

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(measure.CHROMIUM), args=measure.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()
