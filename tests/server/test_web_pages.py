"""The dashboard's pages with Flask's test client on both backends: what each page shows for
the dashboard city (tests/server/dashboard_data.py), the downloads against the reports
module, paging, languages and the catalog."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from server import apikeys
from server.db import reading, utcnow
from server.schema import anomalies
from server.web import PREFIX
from server.web.i18n import CATALOG, EN, ID, pick_language, translate
from tests.server.dashboard_data import DISKOMINFO, OPERATOR, build_city
from tests.server.web_helpers import login


@pytest.fixture
def city(engine):
    return build_city(engine)


@pytest.fixture
def admin(client, city):
    assert login(client, DISKOMINFO).status_code == 302
    return client


def text(reply):
    assert reply.status_code == 200, reply.status_code
    return reply.get_data(as_text=True)


def rows_of(page, table_id, attribute):
    table = page.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(rf'{attribute}="([^"]*)"', table)


def test_fleet_lists_offline_devices_first(admin, city):
    page = text(admin.get(PREFIX + "/fleet"))
    devices = rows_of(page, "fleet-table", "data-device")
    assert devices == [city.devices[k] for k in ("never_seen", "offline", "reader_down",
                                                 "online", "revoked")]
    assert rows_of(page, "fleet-table", "data-offline") == ["true", "true", "false", "false",
                                                           "false"]
    assert "5 perangkat, 2 offline, 1 pembaca bermasalah" in page
    assert "reader unplugged" in page and "0.0.9" in page
    assert "+3 mnt" in page  # the offline device's clock runs three minutes ahead
    only = text(admin.get(PREFIX + "/fleet?site=20401234"))
    assert rows_of(only, "fleet-table", "data-device") == [city.devices["never_seen"],
                                                           city.devices["reader_down"]]


def test_offline_threshold_is_configurable(database_url, city):
    from server.app import create_app

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40,
                      "OFFLINE_AFTER_MINUTES": 240})
    try:
        client = app.test_client()
        login(client, DISKOMINFO)
        page = text(client.get(PREFIX + "/fleet"))
        assert rows_of(page, "fleet-table", "data-offline").count("true") == 1
        assert "240 menit" in page
    finally:
        app.extensions["attendance"].engine.dispose()


def test_attendance_per_site_and_the_drill_down(admin, city, engine):
    day = city.last_day.isoformat()
    page = text(admin.get(f"{PREFIX}/attendance?date={day}"))
    assert rows_of(page, "site-table", "data-site") == ["20401234", "OPD-DINKES",
                                                        "OPD-KOMINFO"]
    with reading(engine) as conn:
        counts = dict(conn.execute(sa.text(
            "SELECT status, count(*) FROM attendance_days WHERE day = :d GROUP BY status"),
            {"d": city.last_day}).all())
    footer = page.split("<tfoot>", 1)[1]
    assert f'<td class="num">{sum(counts.values())}</td>' in footer
    drill = text(admin.get(f"{PREFIX}/attendance/OPD-KOMINFO/{day}"))
    people = rows_of(drill, "people-table", "data-person")
    assert sorted(people) == sorted(city.people["OPD-KOMINFO"])
    for pid in people:
        assert city.names[pid] in drill
    # A day not reconciled yet says so.
    empty = text(admin.get(f"{PREFIX}/attendance/OPD-KOMINFO/{city.today + timedelta(days=3)}"))
    assert "Belum ada hasil rekonsiliasi" in empty


def test_day_download_is_the_day_report(admin, city):
    day = city.last_day.isoformat()
    reply = admin.get(f"{PREFIX}/attendance/20401234/{day}/download?format=csv")
    assert reply.headers["Content-Disposition"] == (
        f'attachment; filename="kehadiran-{day}-20401234.csv"')
    table = list(csv.DictReader(io.StringIO(reply.get_data().decode("utf-8-sig"))))
    assert sorted(r["ID"] for r in table) == sorted(city.people["20401234"])
    assert {r["Tanggal"] for r in table} == {day}
    xlsx = admin.get(f"{PREFIX}/attendance/20401234/{day}/download?format=xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.get_data()))
    assert book.sheetnames == ["Harian", "Keterangan"]


def test_recap_downloads_are_the_apis_files(admin, city, engine):
    with engine.begin() as conn:
        key = apikeys.create_key(conn, "SIMPEG", "diskominfo").token
    headers = {"Authorization": f"Bearer {key}"}
    for query in (f"month={city.month}", f"month={city.month}&site=OPD-DINKES",
                  f"month={city.month}&kind=student"):
        ours = admin.get(f"{PREFIX}/recap/download?{query}&format=csv")
        api = admin.get(f"/api/v1/recap?{query}&format=csv", headers=headers)
        assert ours.status_code == api.status_code == 200
        assert ours.headers["Content-Disposition"] == api.headers["Content-Disposition"]
        assert ours.get_data() == api.get_data()
    xlsx = admin.get(f"{PREFIX}/recap/download?month={city.month}&format=xlsx")
    assert xlsx.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(xlsx.get_data()))
    assert book.sheetnames == ["Rekap", "Keterangan"]
    assert book["Rekap"].max_row == 1 + 20  # the header and every person


def test_recap_page_summary_and_people(admin, city):
    page = text(admin.get(f"{PREFIX}/recap?month={city.month}"))
    assert rows_of(page, "recap-sites", "data-site") == ["20401234", "OPD-DINKES",
                                                         "OPD-KOMINFO"]
    students = text(admin.get(f"{PREFIX}/recap?month={city.month}&site=20401234&kind=student"))
    assert sorted(rows_of(students, "recap-table", "data-person")) == sorted(
        city.people["20401234"][2:])
    assert 'href="/dashboard/recap/download?format=csv&amp;month=' in students


def test_anomalies_filters_and_pages(admin, city, engine):
    page = text(admin.get(PREFIX + "/anomalies"))
    assert "(22)" in page and "Halaman 1 dari 1" in page
    lost = text(admin.get(PREFIX + "/anomalies?kind=lost_card_used"))
    assert rows_of(lost, "anomaly-table", "data-kind") == ["lost_card_used"] * 4
    first = city.days[-2].isoformat()
    recent = text(admin.get(f"{PREFIX}/anomalies?date_from={first}&site=OPD-DINKES"))
    assert set(rows_of(recent, "anomaly-table", "data-site")) == {"OPD-DINKES"}
    # Many anomalies: 50 a page, newest day first, the filters kept from page to page.
    with engine.begin() as conn:
        conn.execute(anomalies.insert(), [
            {"key": f"k{n}", "site_code": "OPD-KOMINFO", "day": city.days[n % len(city.days)],
             "kind": "many_taps", "card_uid": "04A10000000000", "detail": {"count": 9},
             "first_seen_at": utcnow()} for n in range(120)])
    one = text(admin.get(PREFIX + "/anomalies?kind=many_taps"))
    assert "Halaman 1 dari 3" in one and len(rows_of(one, "anomaly-table", "data-kind")) == 50
    assert 'href="/dashboard/anomalies?page=2&amp;kind=many_taps"' in one
    last = text(admin.get(PREFIX + "/anomalies?kind=many_taps&page=3"))
    assert len(rows_of(last, "anomaly-table", "data-kind")) == 20
    days = re.findall(r'<td class="mono">(\d{4}-\d{2}-\d{2})</td>', one)
    assert days == sorted(days, reverse=True)


def test_charts_page(admin, city):
    page = text(admin.get(f"{PREFIX}/charts?month={city.month}"))
    for chart in ("rate-chart", "sites-chart", "late-chart"):
        assert f'id="{chart}"' in page
    assert page.count('<circle class="point') == len(
        [d for d in city.days if f"{d:%Y-%m}" == city.month])
    assert page.count('class="bar column"') > 0
    # One site: its line and, for diskominfo, every site's for comparison; no per-site bars.
    site = text(admin.get(f"{PREFIX}/charts?month={city.month}&site=OPD-KOMINFO"))
    assert 'id="sites-chart"' not in site
    assert site.count('class="legend-text"') == 2


def test_operator_pages(client, city):
    assert login(client, OPERATOR).status_code == 302
    page = text(client.get(f"{PREFIX}/attendance?date={city.last_day}"))
    assert rows_of(page, "site-table", "data-site") == ["20401234"]
    charts = text(client.get(f"{PREFIX}/charts?month={city.month}"))
    assert 'id="sites-chart"' not in charts and 'name="site"' not in charts


def test_english_pages_and_the_language_cookie(admin, city):
    english = admin.get(PREFIX + "/fleet?lang=en")
    assert "Devices" in text(english) and 'lang="en"' in english.get_data(as_text=True)
    assert "lang=en" in english.headers["Set-Cookie"]
    assert "Attendance by day" in text(admin.get(PREFIX + "/attendance"))  # remembered
    assert "Kehadiran per hari" in text(admin.get(PREFIX + "/attendance?lang=id"))


def test_pick_language():
    assert pick_language(None, None) == "id"
    assert pick_language("en", "id") == "en"
    assert pick_language(None, "en") == "en"
    assert pick_language("fr", "xx") == "id"
    assert translate("en", "common.page", page=2, pages=3) == "Page 2 of 3"
    assert translate("id", "no.such.key") == "no.such.key"


def test_catalog_has_the_same_keys_in_both_languages_and_every_key_used():
    assert set(ID) == set(EN) == set(CATALOG["id"]) == set(CATALOG["en"])
    for key in ID:
        assert set(re.findall(r"{(\w+)}", ID[key])) == set(re.findall(r"{(\w+)}", EN[key])), key
    root = Path(__file__).parent.parent.parent / "server" / "web"
    used = set()
    for path in [*root.glob("templates/*.html"), *root.glob("*.py")]:
        used |= set(re.findall(r"""_\(\s*["']([a-z_]+\.[a-z_0-9.]+)["']""",
                               path.read_text(encoding="utf-8")))
    assert used and used <= set(ID), sorted(used - set(ID))
