"""Fleet alerts in a real browser: headless Chromium against the real app over loopback
HTTP on a SQLite file; the menu's count leads to the fleet page, whose alert table shows
the critical alert first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from server.app import create_app
from server.db import create_db_engine, migrate, utcnow
from tests.browser import shot
from tests.server.helpers import make_site
from tests.server.test_alerts import DOWN, READER, add_device
from tests.server.web_helpers import PASSWORD, make_user, serve

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("alerts")
    url = f"sqlite:///{tmp}/server.db"
    engine = create_db_engine(url)
    migrate(engine)
    now = utcnow()
    make_site(engine, "20401234", "SDN 001 Pekanbaru")
    ids = {"reader": add_device(engine, "20401234", "gerbang sekolah",
                                last_seen_at=now - timedelta(minutes=1), backlog=0,
                                reader_ok=False, readers=[DOWN], clock_offset_ms=900),
           "silent": add_device(engine, "20401234", "pintu samping",
                                last_seen_at=now - timedelta(hours=5), backlog=0,
                                reader_ok=True, readers=[READER], clock_offset_ms=-300)}
    make_user(engine, "noc")
    engine.dispose()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY_FILE": str(tmp / "key")})
    try:
        with serve(app) as base:
            yield base, ids
    finally:
        app.extensions["attendance"].engine.dispose()


def test_the_menu_counts_alerts_and_the_fleet_page_lists_them(browser_page: Any,
                                                              live: tuple[str, dict]) -> None:
    base, ids = live
    page = browser_page
    page.goto(base + "/dashboard/login")
    page.fill("#username", "noc")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/attendance**")
    badge = page.locator("#nav-alerts")
    assert badge.is_visible() and badge.inner_text() == "2"
    assert "bad" in (badge.get_attribute("class") or "")  # one is critical
    badge.click()
    page.wait_for_url("**/dashboard/fleet")
    rows = page.locator("#alert-table tbody tr")
    assert rows.count() == 2
    first = rows.first
    assert first.is_visible()
    assert (first.get_attribute("data-alert-device"), first.get_attribute("data-kind"),
            first.get_attribute("data-severity")) == (ids["reader"], "reader_down", "critical")
    assert "KRITIS" in first.inner_text() and "reader unplugged" in first.inner_text()
    second = rows.nth(1)
    assert (second.get_attribute("data-kind"), second.get_attribute("data-severity")) == (
        "silent", "warning")
    assert "5 jam" in second.inner_text()
    assert page.locator("#alert-summary").inner_text() == "1 kritis, 1 peringatan"
    shot(page, "dashboard-fleet-alerts", width=1700)
