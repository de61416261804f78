"""Skip-or-fail for tests that need a system part (pcscd, Chromium, PostgreSQL).

Locally a missing part skips the test with the reason. In CI ``REQUIRE_ALL=1``
is set and the same situation fails the test, so nothing is silently left out.
"""

from __future__ import annotations

import os

import pytest


def require_all() -> bool:
    return os.environ.get("REQUIRE_ALL") == "1"


def need(ok: bool, what: str) -> None:
    """Skip (or, with ``REQUIRE_ALL=1``, fail) unless ``ok``; ``what`` says what is missing."""
    if ok:
        return
    if require_all():
        pytest.fail(f"REQUIRE_ALL=1 and a required system part is missing: {what}")
    pytest.skip(what)
