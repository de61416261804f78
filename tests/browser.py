"""Headless Chromium for the web pages' tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is never used (the machine may have no
internet): the browser is ``/usr/bin/chromium`` (``CHROMIUM`` overrides it),
installed by ``scripts/setup``. Without it the tests skip, or fail with
``REQUIRE_ALL=1`` (see :mod:`tests.syspart`).

Set ``SCREENSHOTS_DIR`` to keep screenshots of the pages the tests visit
(``shot(page, name)``); ``docs/screenshots/`` is made that way.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.syspart import need

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def chromium_path() -> str | None:
    found = shutil.which(CHROMIUM) if not os.path.isabs(CHROMIUM) else CHROMIUM
    return found if found and os.access(found, os.X_OK) else None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A running headless Chromium (one per test module).

    Not one per session: Playwright's driver is a child process watched by an
    asyncio thread, and while any thread runs, reconciliation refuses to fork
    worker processes (server.reconcile._fork_is_safe), so the tests of the
    parallel workers would skip. Each module stops its browser and waits for
    that thread to end.
    """
    path = chromium_path()
    need(path is not None, f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - installed by scripts/setup
        need(False, "the playwright Python package is not installed (scripts/setup)")
        raise
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
    for thread in threading.enumerate():
        if thread.name.startswith("asyncio-waitpid"):
            thread.join(10)


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    """A fresh page in its own context (no cookies shared between tests), laptop-sized."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="id-ID")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def phone_page(chromium: Any) -> Iterator[Any]:
    """A fresh page with a phone's screen (390 x 844, touch)."""
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                   has_touch=True, locale="id-ID")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, name: str, *, width: int | None = None) -> None:
    """Save a full-page screenshot as ``$SCREENSHOTS_DIR/<name>.png`` when that is set;
    ``width``: widen the window for it (a wide table is cut at the window's edge)."""
    target = os.environ.get("SCREENSHOTS_DIR")
    if not target:
        return
    Path(target).mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    if width is not None and size is not None:
        page.set_viewport_size({"width": width, "height": size["height"]})
    try:
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)
    finally:
        if width is not None and size is not None:
            page.set_viewport_size(size)
