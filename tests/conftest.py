import logging

import pytest


@pytest.fixture(autouse=True)
def _quiet_vendor_logs():
    logging.getLogger("nfc").setLevel(logging.WARNING)
    yield
