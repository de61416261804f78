import logging

import pytest

# Headless Chromium fixtures for the web pages (chromium, browser_page, phone_page).
pytest_plugins = ["tests.browser"]


@pytest.fixture(autouse=True)
def _quiet_vendor_logs():
    logging.getLogger("nfc").setLevel(logging.WARNING)
    yield
