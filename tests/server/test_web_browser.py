"""The dashboard in a real browser: headless Chromium against the real server over loopback
HTTP, on a SQLite file (and once on PostgreSQL), with a city whose attendance and
anomalies the reconciler made from taps (tests/server/dashboard_data.py).

``SCREENSHOTS_DIR=docs/screenshots`` keeps pictures of the pages (tests/browser.py).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterator

import pytest

from server.app import create_app
from server.attendance_rules import RulesConfig
from server.db import create_db_engine, migrate, reading
from server.reports import monthly_recap, parse_month
from tests.browser import shot
from tests.server.conftest import PgDatabase
from tests.server.dashboard_data import DISKOMINFO, OPERATOR, PASSWORD, City, build_city
from tests.server.web_helpers import serve

pytestmark = pytest.mark.system


class Live:
    def __init__(self, url: str, engine: Any, city: City) -> None:
        self.url, self.engine, self.city = url, engine, city

    def __call__(self, path: str) -> str:
        return self.url + path


def _start(database_url: str, tmp: Path) -> Iterator[Live]:
    engine = create_db_engine(database_url)
    migrate(engine)
    city = build_city(engine)
    engine.dispose()
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY_FILE": str(tmp / "key"),
                      "LOGIN_RATE_LIMIT": "1000 per minute"})
    try:
        with serve(app) as url:
            yield Live(url, app.extensions["attendance"].engine, city)
    finally:
        app.extensions["attendance"].engine.dispose()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("dashboard")
    yield from _start(f"sqlite:///{tmp}/server.db", tmp)


def log_in(page: Any, live: Live, username: str = DISKOMINFO) -> None:
    page.goto(live("/dashboard/"))
    assert "/dashboard/login" in page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/attendance**")


def test_login_and_the_fleet_puts_offline_devices_first(browser_page: Any, live: Live) -> None:
    page = browser_page
    page.goto(live("/dashboard/fleet"))
    assert "/dashboard/login" in page.url  # no page without an account
    page.fill("#username", DISKOMINFO)
    page.fill("#password", "wrong password!")
    page.click("button[type=submit]")
    assert page.locator("#login-error").is_visible()
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/fleet")  # back where the user wanted to go
    rows = page.locator("#fleet-table tbody tr")
    flags = [rows.nth(i).get_attribute("data-offline") for i in range(rows.count())]
    ids = [rows.nth(i).get_attribute("data-device") for i in range(rows.count())]
    devices = live.city.devices
    assert ids[:2] == [devices["never_seen"], devices["offline"]]
    assert flags == ["true", "true", "false", "false", "false"]
    first = rows.first
    assert "OFFLINE" in first.inner_text()
    assert "offline" in (first.get_attribute("class") or "")
    offline_row = page.locator(f"tr[data-device='{devices['offline']}']")
    assert "37" in offline_row.inner_text()  # its backlog
    assert "BERMASALAH" in page.locator(f"tr[data-device='{devices['reader_down']}']").inner_text()
    assert "2 offline" in page.locator("#fleet-summary").inner_text()
    shot(page, "dashboard-fleet", width=1700)


def test_drill_down_from_a_sites_day_to_its_people(browser_page: Any, live: Live) -> None:
    page = browser_page
    log_in(page, live)
    day = live.city.last_day.isoformat()
    page.goto(live(f"/dashboard/attendance?date={day}"))
    sites = page.locator("#site-table tbody tr")
    assert [sites.nth(i).get_attribute("data-site") for i in range(sites.count())] == [
        "20401234", "OPD-DINKES", "OPD-KOMINFO"]
    shot(page, "dashboard-attendance")
    page.click("#site-table a:text('20401234')")
    page.wait_for_url(f"**/dashboard/attendance/20401234/{day}")
    people = page.locator("#people-table tbody tr")
    assert people.count() == 8
    with reading(live.engine) as conn:
        from server.reports import day_attendance

        stored = {r["person_id"]: r for r in day_attendance(conn, live.city.last_day, "20401234")}
    for i in range(people.count()):
        row = people.nth(i)
        record = stored[row.get_attribute("data-person")]
        assert row.get_attribute("data-status") == record["status"]
        check_in = row.locator(".check-in").inner_text()
        assert check_in == (record["check_in_local"][11:16] if record["check_in_local"] else "–")


def test_recap_and_its_csv_download(browser_page: Any, live: Live) -> None:
    page = browser_page
    log_in(page, live)
    page.goto(live(f"/dashboard/recap?month={live.city.month}"))
    assert page.locator("#recap-sites tbody tr").count() == 3
    page.select_option("select[name=site]", "OPD-KOMINFO")
    page.wait_for_url("**site=OPD-KOMINFO**")
    assert page.locator("#recap-table tbody tr").count() == 6
    shot(page, "dashboard-recap", width=1700)
    with page.expect_download() as info:
        page.click("#download-csv")
    download = info.value
    assert download.suggested_filename == f"rekap-{live.city.month}-OPD-KOMINFO.csv"
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
    table = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    with reading(live.engine) as conn:
        expected = monthly_recap(conn, parse_month(live.city.month), site_code="OPD-KOMINFO",
                                 config=RulesConfig())
    assert [(r["ID"], r["Nama"], r["H"], r["A"], r["% Hadir"]) for r in table] == [
        (e.person_id, e.name, str(e.counts["H"]), str(e.counts["A"]), str(e.percent_present))
        for e in expected]
    assert {r["Kode Unit"] for r in table} == {"OPD-KOMINFO"}


def test_anomalies_filter(browser_page: Any, live: Live) -> None:
    page = browser_page
    log_in(page, live)
    page.goto(live("/dashboard/anomalies"))
    assert page.locator("#anomaly-total").inner_text() == "(22)"
    page.select_option("#kind", "lost_card_used")
    page.click("#apply-filters")
    page.wait_for_url("**kind=lost_card_used**")
    rows = page.locator("#anomaly-table tbody tr")
    assert rows.count() == 4
    assert {rows.nth(i).get_attribute("data-kind") for i in range(4)} == {"lost_card_used"}
    assert {rows.nth(i).get_attribute("data-site") for i in range(4)} == {"OPD-DINKES"}
    shot(page, "dashboard-anomalies")
    # A site and a day range narrow the list further.
    page.select_option("#kind", "")
    page.select_option("select[name=site]", "OPD-KOMINFO")
    page.wait_for_url("**site=OPD-KOMINFO**")
    day = live.city.days[-1].isoformat()
    page.fill("input[name=date_from]", live.city.days[0].isoformat())
    page.fill("input[name=date_to]", day)
    page.click("#apply-filters")
    page.wait_for_url(f"**date_to={day}**")
    kinds = page.locator("#anomaly-table tbody tr")
    assert kinds.count() >= 1
    assert {kinds.nth(i).get_attribute("data-site") for i in range(kinds.count())} == {
        "OPD-KOMINFO"}


def test_charts_render_with_data(browser_page: Any, live: Live) -> None:
    page = browser_page
    log_in(page, live)
    page.goto(live(f"/dashboard/charts?month={live.city.month}"))
    points = page.locator("#rate-chart svg circle.point")
    assert points.count() == len({d for d in live.city.days if f"{d:%Y-%m}" == live.city.month})
    values = [float(points.nth(i).get_attribute("data-value")) for i in range(points.count())]
    assert all(50 <= v <= 100 for v in values)
    bars = page.locator("#sites-chart svg rect.bar")
    assert bars.count() == 3
    columns = page.locator("#late-chart svg rect.column")
    assert columns.count() > 3
    assert sum(int(columns.nth(i).get_attribute("data-value"))
               for i in range(columns.count())) > 0
    assert page.locator("#rate-chart svg").is_visible()
    shot(page, "dashboard-charts")


def test_an_operator_sees_only_the_own_site(browser_page: Any, live: Live) -> None:
    page = browser_page
    log_in(page, live, OPERATOR)
    day = live.city.last_day.isoformat()
    page.goto(live(f"/dashboard/attendance?date={day}"))
    sites = page.locator("#site-table tbody tr")
    assert [sites.nth(i).get_attribute("data-site") for i in range(sites.count())] == [
        "20401234"]
    assert "OPD-KOMINFO" not in page.content()
    reply = page.goto(live(f"/dashboard/attendance/OPD-KOMINFO/{day}"))
    assert reply is not None and reply.status == 404
    body = page.content()
    assert not any(live.city.names[p] in body for p in live.city.people["OPD-KOMINFO"])
    reply = page.goto(live(f"/dashboard/recap/download?month={live.city.month}"
                           f"&site=OPD-KOMINFO&format=csv"))
    assert reply is not None and reply.status == 404
    page.goto(live("/dashboard/fleet"))
    rows = page.locator("#fleet-table tbody tr")
    assert {rows.nth(i).get_attribute("data-device") for i in range(rows.count())} == {
        live.city.devices["reader_down"], live.city.devices["never_seen"]}
    assert page.locator("select[name=site]").count() == 0  # nothing else to choose


def test_an_operator_records_and_withdraws_an_excuse(browser_page: Any, live: Live) -> None:
    page = browser_page
    log_in(page, live, OPERATOR)
    page.click("nav.menu a[href$='/dashboard/excuses']")
    person = live.city.people["20401234"][0]
    # A Sunday long before the city's month: the excuse changes none of its days.
    page.goto(live("/dashboard/excuses?month=2026-01"))
    page.select_option("#person_id", person)
    page.select_option("#kind", "izin")
    page.fill("#date_from", "2026-01-04")
    page.fill("#date_to", "2026-01-04")
    page.fill("#note", "acara keluarga")
    page.click("#excuse-form button[type=submit]")
    page.wait_for_url("**/dashboard/excuses?month=2026-01")
    assert "Keterangan dicatat" in page.locator("main").inner_text()
    row = page.locator("#excuse-table tbody tr[data-excuse]")
    assert row.count() == 1 and "acara keluarga" in row.inner_text()
    assert row.get_attribute("class") != "withdrawn"
    shot(page, "dashboard-excuses")

    answers = iter([False, True])  # "Cancel" first: nothing happens; then "OK"
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept() if next(answers) else dialog.dismiss()

    page.on("dialog", answer)
    row.locator("button[type=submit]").click()
    assert row.get_attribute("class") != "withdrawn" and len(asked) == 1
    assert live.city.names[person] in asked[0]
    row.locator("button[type=submit]").click()
    page.wait_for_selector("#excuse-table tr.withdrawn")
    assert "dibatalkan" in page.locator("#excuse-table").inner_text()
    assert page.locator("#excuse-table tr.withdrawn button").count() == 0


def test_language_switch(browser_page: Any, live: Live) -> None:
    page = browser_page
    page.goto(live("/dashboard/login"))
    assert page.locator("h1").inner_text() == "Masuk"
    assert page.locator("html").get_attribute("lang") == "id"
    page.click(".lang a[hreflang=en]")
    assert page.locator("h1").inner_text() == "Log in"
    page.fill("#username", DISKOMINFO)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/attendance**")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("nav.menu").inner_text().split() [-1] == "Devices"
    page.click("nav.menu a:text('Devices')")
    assert page.locator("h1").inner_text() == "Devices"
    page.click(".lang a[hreflang=id]")
    assert page.locator("h1").inner_text() == "Perangkat"
    page.goto(live("/dashboard/anomalies"))
    assert page.locator("h1").inner_text().startswith("Anomali")


def test_phone_layout(phone_page: Any, live: Live) -> None:
    page = phone_page
    log_in(page, live)
    page.goto(live("/dashboard/fleet"))
    # The table scrolls inside its box; the page itself does not get wider than the phone.
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate("""Array.from(document.querySelectorAll('body *'))
        .filter(e => e.getBoundingClientRect().right > 391 && !e.closest('.table-wrap'))
        .map(e => e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)""")
    assert width <= 390 + 1, wide


@pytest.fixture(scope="module")
def live_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    database = PgDatabase()
    try:
        yield from _start(database.url, tmp_path_factory.mktemp("dashboard-pg"))
    finally:
        database.drop()


def test_on_postgresql(browser_page: Any, live_pg: Live) -> None:
    page = browser_page
    log_in(page, live_pg)
    page.goto(live_pg("/dashboard/fleet"))
    assert page.locator("#fleet-table tbody tr").first.get_attribute("data-offline") == "true"
    page.goto(live_pg(f"/dashboard/recap?month={live_pg.city.month}&site=20401234"))
    assert page.locator("#recap-table tbody tr").count() == 8
    with page.expect_download() as info:
        page.click("#download-xlsx")
    assert info.value.suggested_filename.endswith(".xlsx")
    page.goto(live_pg(f"/dashboard/charts?month={live_pg.city.month}&site=OPD-DINKES"))
    assert page.locator("#rate-chart svg circle.point").count() > 0
