"""The operator's page in headless Chromium, against a running edge with a simulated reader.

One site for the whole module: a real central server (SQLite, loopback) whose
registry was loaded with its own import commands (tests/edge_web/school.py),
and an edge enrolled there whose page listens on 127.0.0.1. The people picker,
the day plans, card enrolment and lost cards all go through the server's own
endpoints.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.browser import shot
from tests.edge_process import EDGE, EdgeProcess, edge_cmd, write_config
from tests.edge_web import school
from tests.edge_web.conftest import PASSWORD
from tests.sync_env import CentralServer, free_port, wait_for

pytestmark = pytest.mark.system

NEW_STUDENT = school.EKA  # on the server's registry, without a card


@dataclass
class Site:
    server: CentralServer
    config: Path
    edge: EdgeProcess
    web: str

    def tap(self, uid: str) -> str:
        return edge_cmd(self.config, "tap", uid).stdout

    def server_rows(self, query: str, *params: Any) -> list[tuple]:
        """Rows of the central server's own database (its SQLite file)."""
        conn = sqlite3.connect(self.server.workdir / "server.db")
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def edge_rows(self, query: str, *params: Any) -> list[tuple]:
        """Rows of the edge's outbox database."""
        conn = sqlite3.connect(self.config.parent / "data" / "edge.db")
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, chromium):
    root = tmp_path_factory.mktemp("edge-web")
    server = CentralServer(root / "server")
    server.setup_site()
    school.load_school(server, root / "registry")
    server.start()
    edge = None
    try:
        port = free_port()
        config = write_config(
            root,
            web=f'[web]\nlisten = "127.0.0.1:{port}"\nlogin_rate_limit = "200 per minute"\n',
            extra=f'[recorder]\ndebounce_seconds = 0\n'
                  f'[sync]\nserver_url = "{server.url}"\npush_interval_seconds = 0.3\n'
                  f'heartbeat_seconds = 1\nroster_seconds = 1\ntimeout_seconds = 5\n')
        edge_cmd(config, "enroll", "--server", server.url, "--code", server.claim_code())
        added = subprocess.run([*EDGE, "--config", str(config), "operator", "add", "guru",
                                "--password-stdin"], input=PASSWORD + "\n",
                               capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        edge = EdgeProcess(config)
        edge.wait_ready()
        web = f"http://127.0.0.1:{port}"

        def page_up() -> bool:
            try:
                return requests.get(web + "/login", timeout=2).ok
            except requests.RequestException:
                return False

        try:
            wait_for(page_up, 20, "the page")
        except AssertionError:
            raise AssertionError(f"the page did not come up:\n{edge.output()}") from None
        site = Site(server, config, edge, web)
        people = len(school.STUDENTS) + len(school.EMPLOYEES)

        def pulled() -> bool:
            return (site.edge_rows("SELECT count(*) FROM roster") == [(4,)]
                    and site.edge_rows("SELECT count(*) FROM people") == [(people,)]
                    and site.edge_rows("SELECT value FROM meta WHERE key = 'plans'") != [])

        wait_for(pulled, 30, "roster, people and day plans pulled from the server")
        yield site
    finally:
        server.stop()
        if edge is not None:
            code = edge.terminate()
            output = edge.output()
            assert code == 0 and "Traceback" not in output, output[-3000:]


def login(page: Any, site: Site) -> None:
    page.goto(site.web + "/")
    assert page.url.startswith(site.web + "/login")
    page.fill("input[name=username]", "guru")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(site.web + "/")


def test_login_and_live_taps_without_reload(site, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    page.goto(site.web + "/")
    expect(page.locator("h1")).to_have_text("Masuk operator")
    shot(page, "edge-login")
    page.fill("input[name=username]", "guru")
    page.fill("input[name=password]", "salah-sekali")
    page.click("form.stack button[type=submit]")
    expect(page.locator(".flash.error")).to_contain_text("salah")
    page.fill("input[name=username]", "guru")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(site.web + "/")
    expect(page.locator("h1")).to_contain_text("Hari ini")
    present = int(page.locator("[data-count=present]").inner_text())

    page.evaluate("window.__sameDocument = 42")
    assert site.tap("04A1B2C3D4E5F6").startswith("accepted:")
    assert site.tap("04DEAD01").startswith("unknown:")
    row = page.locator("#taps tr", has_text="Siti Aminah")
    expect(row.first).to_be_visible(timeout=10_000)
    expect(page.locator("#taps tr", has_text="04DEAD01").first).to_contain_text("Tak dikenal")
    expect(page.locator("[data-count=present]")).to_have_text(str(present + 1))
    assert page.evaluate("window.__sameDocument") == 42  # updated in place, not reloaded
    expect(page.locator("#service-lines [data-key=reader]")).to_contain_text("Terhubung")
    expect(page.locator("#service-lines [data-key=backlog]")).to_contain_text("0 tap",
                                                                               timeout=15_000)
    expect(page.locator("#service-lines [data-key=last_sync]")).not_to_contain_text("belum")
    for uid in ("04A1B2C3D4E5F7", "8C3F2A11"):
        assert site.tap(uid).startswith("accepted:")
    expect(page.locator("#taps tr", has_text="Budi Santoso").first).to_be_visible()
    expect(page.locator("#taps tr", has_text="Dewi Kartika").first).to_be_visible()
    shot(page, "edge-today")


def server_excuses(site: Site) -> list[tuple]:
    conn = sqlite3.connect(site.server.workdir / "server.db")
    try:
        return conn.execute("SELECT person_id, kind, date_from, date_to, note "
                            "FROM excuses").fetchall()
    finally:
        conn.close()


def test_mark_a_student_sick_and_see_it_reach_the_server(site, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    login(page, site)
    page.click("nav a[href='/roster']")
    page.select_option("select[name=group]", "VII-A")  # submits by itself
    page.wait_for_url("**/roster?group=VII-A")
    expect(page.locator("table.people tbody tr")).to_have_count(2)
    shot(page, "edge-roster")
    page.locator("tr[data-person='0051234568'] a").click()
    page.wait_for_url("**/excuses?person_id=0051234568")
    assert page.locator("select[name=person_id]").input_value() == "0051234568"
    page.check("input[name=kind][value=sakit]")
    page.fill("textarea[name=note]", "demam")
    page.click("#excuse-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("Budi Santoso: Sakit dicatat")
    today = time.strftime("%Y-%m-%d")
    wait_for(lambda: ("0051234568", "sakit", today, today, "demam") in server_excuses(site),
             30, "the excuse on the server")
    # The server stores it before the edge reads the reply and marks it sent.
    wait_for(lambda: site.edge_rows("SELECT sent_at FROM excuses WHERE person_id = ? AND "
                                    "sent_at IS NOT NULL", "0051234568"), 30,
             "the excuse marked sent on the edge")
    page.reload()
    expect(page.locator("#excuse-list li", has_text="Budi Santoso")).to_contain_text("terkirim")
    page.goto(site.web + "/roster?group=VII-A")
    expect(page.locator("tr[data-person='0051234568']")).to_contain_text("Sakit")


def test_withdraw_an_excuse_recorded_for_the_wrong_person(site, browser_page):
    """Record, see it sent, "Batalkan" (a cancelled confirm changes nothing), and the
    withdrawal reaches the server; the excuse stays listed, struck through."""
    from playwright.sync_api import expect

    page = browser_page
    login(page, site)
    page.goto(site.web + "/excuses")
    page.select_option("select[name=person_id]", school.CITRA.nisn)
    page.check("input[name=kind][value=izin]")
    page.fill("textarea[name=note]", "salah orang")
    page.click("#excuse-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("Citra Lestari: Izin dicatat")
    ((excuse_id,),) = site.edge_rows("SELECT excuse_id FROM excuses WHERE person_id = ? "
                                     "AND note = 'salah orang'", school.CITRA.nisn)
    on_server = "SELECT withdrawn_at FROM excuses WHERE excuse_id = ?"
    wait_for(lambda: site.server_rows(on_server, excuse_id) == [(None,)], 30,
             "the excuse on the server")
    wait_for(lambda: site.edge_rows("SELECT sent_at FROM excuses WHERE excuse_id = ? AND "
                                    "sent_at IS NOT NULL", excuse_id), 30,
             "the excuse marked sent on the edge")
    page.reload()
    item = page.locator(f"#excuse-list li[data-excuse='{excuse_id}']")
    expect(item).to_contain_text("terkirim")

    asked = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss() if len(asked) == 1 else dialog.accept()

    page.on("dialog", answer)
    item.locator("button", has_text="Batalkan").click()  # dismissed: nothing happens
    assert asked and asked[0].startswith("Batalkan Izin Citra Lestari")
    expect(item).not_to_have_class("withdrawn")
    assert site.edge_rows("SELECT withdrawn_at FROM excuses WHERE excuse_id = ?",
                          excuse_id) == [(None,)]
    item.locator("button", has_text="Batalkan").click()  # accepted
    expect(page.locator(".flash.ok")).to_contain_text("Citra Lestari: Izin (")
    expect(page.locator(".flash.ok")).to_contain_text("dibatalkan. Akan dikirim ke server.")
    expect(item).to_have_class("withdrawn")
    expect(item).to_contain_text("Dibatalkan")
    expect(item.locator("button")).to_have_count(0)
    assert item.locator(".what").first.evaluate(
        "node => getComputedStyle(node).textDecorationLine") == "line-through"
    wait_for(lambda: site.server_rows(on_server, excuse_id) != [(None,)], 30,
             "the withdrawal on the server")
    wait_for(lambda: site.edge_rows("SELECT withdrawal_sent_at FROM excuses "
                                    "WHERE excuse_id = ?", excuse_id) != [(None,)], 30,
             "the server's answer to the withdrawal")
    page.reload()
    expect(item).to_contain_text("pembatalan terkirim")
    page.goto(site.web + "/roster?group=VII-B")
    status = page.locator(f"tr[data-person='{school.CITRA.nisn}'] td").nth(3)
    expect(status).not_to_be_empty()
    expect(status).not_to_contain_text("Izin")


def test_enrol_an_unknown_card(site, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    assert site.tap("04C0FFEE").startswith("unknown:")
    login(page, site)
    page.click("nav a[href='/cards']")
    expect(page.locator("tr[data-card='04C0FFEE']")).to_contain_text("Tak dikenal")
    shot(page, "edge-unknown-cards")
    # The picker lists the site's people as the server's GET /roster/people gave them,
    # those without a card (on no roster) included.
    listed = page.locator("#enrol-person option").evaluate_all(
        "options => options.map(o => o.value).filter(Boolean)")
    assert sorted(listed) == sorted([s.nisn for s in school.STUDENTS]
                                    + [e.nip for e in school.EMPLOYEES])
    expect(page.locator(f"#enrol-person option[value='{NEW_STUDENT.nisn}']")).to_contain_text(
        "Eka Putri (VII-B)")
    page.select_option("#enrol-person", NEW_STUDENT.nisn)
    page.click("#enrol-arm")
    message = page.locator("#enrol-message")
    expect(message).to_contain_text("Eka Putri")
    expect(message).to_contain_text("detik lagi")
    first = message.inner_text()
    expect(message).not_to_have_text(first, timeout=5_000)  # the countdown moves
    out = site.tap("04C0FFEE")
    assert out.startswith("unknown:") and "enrolled" in out
    expect(message).to_contain_text("Kartu 04C0FFEE sekarang milik Eka Putri")
    assert site.tap("04C0FFEE").startswith("accepted:")
    result = wait_for(lambda: site.edge_rows(
        "SELECT kind, person_id, result, error FROM card_requests WHERE card_uid = '04C0FFEE' "
        "AND sent_at IS NOT NULL"), 20, "the server's answer to the bind request")
    assert result == [("bind", NEW_STUDENT.nisn, "applied", None)]
    assert site.server_rows("SELECT person_id, status, site_code FROM cards "
                            "WHERE card_uid = '04C0FFEE'") == [(NEW_STUDENT.nisn, "active",
                                                                school.NPSN)]
    assert site.server_rows("SELECT person_id, status FROM card_history "
                            "WHERE card_uid = '04C0FFEE'") == [(NEW_STUDENT.nisn, "active")]
    assert site.server_rows("SELECT kind, person_id, status FROM card_requests "
                            "WHERE card_uid = '04C0FFEE'") == [("bind", NEW_STUDENT.nisn,
                                                                "applied")]
    page.reload()
    expect(page.locator("tr[data-card='04C0FFEE']")).to_contain_text("kini milik Eka Putri")
    expect(page.locator("#requests li", has_text="04C0FFEE")).to_contain_text(
        "diterapkan server", timeout=15_000)


def test_report_a_card_lost(site, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    login(page, site)
    page.goto(site.web + "/cards")
    page.on("dialog", lambda dialog: dialog.accept())
    page.select_option("#lost select[name=card_uid]", "04A1B2C3D4E5F8")
    page.click("#lost button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("04A1B2C3D4E5F8 dilaporkan hilang")
    assert site.tap("04A1B2C3D4E5F8").startswith("blocked:")
    result = wait_for(lambda: site.edge_rows(
        "SELECT kind, result, error FROM card_requests WHERE card_uid = '04A1B2C3D4E5F8' "
        "AND sent_at IS NOT NULL"), 20, "the server's answer to the lost report")
    assert result == [("lost", "applied", None)]
    assert site.server_rows("SELECT person_id, status FROM cards "
                            "WHERE card_uid = '04A1B2C3D4E5F8'") == [(school.CITRA.nisn, "lost")]
    history = site.server_rows("SELECT status FROM card_history "
                               "WHERE card_uid = '04A1B2C3D4E5F8' ORDER BY effective_at")
    assert history == [("active",), ("lost",)]
    # The server's roster says so too; the edge keeps refusing the card after pulling it.
    (version,) = site.server_rows("SELECT value FROM counters WHERE name = 'roster'")
    wait_for(lambda: site.edge_rows("SELECT value FROM meta WHERE key = 'roster_cursor'")
             == [(f"v{version[0]}",)], 20, "the roster with the lost card pulled")
    assert site.edge_rows("SELECT status FROM roster WHERE card_uid = '04A1B2C3D4E5F8'") == \
        [("lost",)]
    assert site.tap("04A1B2C3D4E5F8").startswith("blocked:")


def test_download_the_day_as_csv(site, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    site.tap("8C3F2A11")
    login(page, site)
    page.click("nav a[href='/export']")
    expect(page.locator("h1")).to_have_text("Unduh rekap")
    with page.expect_download() as download:
        page.click("#day-csv")
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"absensi-test-edge-{time.strftime('%Y-%m-%d')}.csv"
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["Nama", "ID (NISN/NIP)", "Rombel / unit", "Status", "Tap pertama",
                       "Tap terakhir"]
    by_id = {row[1]: row for row in rows[1:]}
    dewi = by_id["198703152010012003"]
    assert dewi[0] == "Dewi Kartika" and dewi[2] == "Guru"
    assert dewi[3] in ("Hadir", "Terlambat") and len(dewi[4]) == 8 and dewi[5] >= dewi[4]
    assert by_id["0051234570"][3] in ("Belum datang", "Hadir", "Terlambat")
    assert set(by_id) >= {"0051234567", "0051234568", "0051234569", "0051234570"}


MAIN_PAGES = ["/", "/roster", "/excuses", "/cards", "/export", "/account"]


def test_phone_screen_has_no_horizontal_scrolling(site, phone_page):
    page = phone_page
    login(page, site)
    for path in MAIN_PAGES:
        page.goto(site.web + path)
        page.wait_for_load_state("load")
        widths = page.evaluate("[document.documentElement.scrollWidth,"
                               " document.documentElement.clientWidth, window.innerWidth]")
        assert widths[0] <= widths[1] <= 390, (path, widths)
    page.goto(site.web + "/")
    shot(page, "edge-today-phone")


def test_language_switch_shows_english(site, browser_page):
    from playwright.sync_api import expect

    page = browser_page
    login(page, site)
    page.click("a[lang=en]")
    expect(page.locator("h1")).to_contain_text("Today")
    expect(page.locator("nav")).to_contain_text("Roster")
    expect(page.locator(".counts")).to_contain_text("Not yet arrived")
    page.goto(site.web + "/cards")  # remembered in a cookie
    expect(page.locator("#enrol-arm")).to_have_text("Tap the new card now")
    page.click("a[lang=id]")
    expect(page.locator("#enrol-arm")).to_have_text("Tempelkan kartu baru sekarang")
    page.goto(site.web + "/roster?lang=en")
    expect(page.locator("h1")).to_contain_text("Roster")
