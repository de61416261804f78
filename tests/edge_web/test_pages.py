"""The pages and their JSON through Flask's test client: texts, forms, exports."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time
from pathlib import Path

import pytest
from openpyxl import load_workbook

from edge import excuses
from edge.clock import FixedClock
from edge.enrolment import CardEnrolment
from edge.outbox import Outbox, open_database
from edge.web import create_app
from edge.web.i18n import CATALOG
from tests.edge_web.conftest import csrf_token, login

TEMPLATES = Path(__file__).resolve().parents[2] / "edge" / "web" / "templates"
WEB = TEMPLATES.parent


def test_both_languages_have_every_text():
    assert set(CATALOG["id"]) == set(CATALOG["en"])
    used = set()
    for path in [*TEMPLATES.glob("*.html"), *WEB.glob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r"""_\(['"]([a-z_]+\.[a-z_.]+)['"]""", text))
        used |= set(re.findall(r"""\bt\(['"]([a-z_]+\.[a-z_.]+)['"]""", text))
    # Keys ending in "_" or "." are prefixes completed in the template ('count.' ~ key).
    missing = sorted(k for k in used if k not in CATALOG["id"] and not k.endswith(("_", ".")))
    assert not missing
    for prefix in ("status.", "verdict.", "count.", "requests.result_", "service."):
        assert any(k.startswith(prefix) for k in CATALOG["id"])


def tap_today(database: Path, uid: str, hh: int, mm: int) -> None:
    when = datetime.combine(date.today(), time(hh, mm)).astimezone()
    with Outbox(database) as outbox:
        outbox.record_tap(uid, "sim", FixedClock(when, boot_id=when.isoformat()).now(), 60)


def test_today_json_counts_and_taps(logged_in, database):
    tap_today(database, "04A1B2C3D4E5F6", 6, 45)
    tap_today(database, "04A1B2C3D4E5F7", 7, 30)
    tap_today(database, "04DEAD01", 7, 31)
    db = open_database(database)
    excuses.add_excuse(db, person_id="0051234569", kind="izin", date_from=date.today(),
                       date_to=date.today(), note="", created_by="guru")
    db.close()
    data = logged_in.get("/api/today").json
    assert data["counts"] == {"present": 2, "late": 1, "excused": 1, "not_arrived": 1,
                              "total": 4}
    assert [(t["time"], t["verdict"], t["name"]) for t in data["taps"]] == [
        ("07:31:00", "unknown", ""), ("07:30:00", "accepted", "Budi Santoso"),
        ("06:45:00", "accepted", "Siti Aminah")]
    assert data["taps"][0]["verdict_label"] == "Tak dikenal"
    assert data["plan"].startswith("Jam masuk 07:00")
    lines = {line["key"]: line for line in data["service_lines"]}
    assert not lines["reader"]["ok"] and "tidak berjalan" in lines["reader"]["value"]
    assert lines["waiting"]["value"] == "1 izin/sakit, 0 permintaan kartu"
    english = logged_in.get("/api/today?lang=en").json
    assert english["taps"][0]["verdict_label"] == "Unknown"


def test_status_of_the_running_service_is_shown(config, database, clock):
    status = {"readers": [{"name": "gerbang", "connected": False, "error": "USB dicabut"}],
              "backlog": 12, "clock": {"synced": False},
              "sync": {"last_success_at": "2026-11-20T07:00:00+07:00", "last_error": "timeout"},
              "storage_error": None}
    app = create_app(config, now=clock, status=lambda: status)
    client = app.test_client()
    login(client)
    lines = {line["key"]: line for line in client.get("/api/today").json["service_lines"]}
    assert lines["reader"]["value"] == "gerbang TERPUTUS USB dicabut"
    assert lines["backlog"] == {"key": "backlog", "label": "Belum terkirim ke server",
                                "value": "12 tap", "ok": False}
    assert lines["last_sync"]["value"].startswith("Gagal; terakhir berhasil")
    assert not lines["clock"]["ok"]
    page = client.get("/").get_data(as_text=True)
    assert "gerbang TERPUTUS USB dicabut" in page


def test_excuse_form_checks_and_saves(logged_in, database):
    token = csrf_token(logged_in, "/excuses")
    bad = logged_in.post("/excuses", data={"csrf_token": token, "person_id": "nobody",
                                           "kind": "alpa", "date_from": "2026-11-20",
                                           "date_to": "2026-11-19"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Pilih orangnya" in text and "Pilih keterangannya" in text
    wrong_order = logged_in.post("/excuses", data={
        "csrf_token": token, "person_id": "0051234567", "kind": "sakit",
        "date_from": "2026-11-20", "date_to": "2026-11-19"})
    assert "Tanggal akhir sebelum tanggal mulai" in wrong_order.get_data(as_text=True)
    woken = []
    logged_in.application.extensions["edge"].wake_sync = lambda: woken.append(1)
    good = logged_in.post("/excuses", data={
        "csrf_token": token, "person_id": "0051234567", "kind": "dinas_luar",
        "date_from": date.today().isoformat(), "date_to": date.today().isoformat(),
        "note": "lomba"})
    assert good.status_code == 302 and woken == [1]
    listed = logged_in.get("/excuses").get_data(as_text=True)
    assert "Siti Aminah: Dinas luar dicatat" in listed and "menunggu dikirim" in listed
    roster = logged_in.get("/roster?group=VII-A").get_data(as_text=True)
    assert "Dinas luar" in roster and "lomba" in roster


def test_roster_by_group(logged_in):
    page = logged_in.get("/roster?group=VII-B").get_data(as_text=True)
    assert "Citra Lestari" in page and "Siti Aminah" not in page
    everyone = logged_in.get("/roster").get_data(as_text=True)
    assert all(name in everyone for name in ("Siti Aminah", "Citra Lestari", "Dewi Kartika"))


def test_enrolment_api(config, database, clock):
    bound = []
    enrolment = CardEnrolment(lambda uid, person, by: bound.append((uid, person, by)))
    client = create_app(config, now=clock, enrolment=enrolment).test_client()
    login(client)
    token = csrf_token(client, "/cards")
    refused = client.post("/api/enrolment", json={"person_id": "nobody"},
                          headers={"X-CSRFToken": token})
    assert refused.status_code == 400
    armed = client.post("/api/enrolment", json={"person_id": "0051234568"},
                        headers={"X-CSRFToken": token}).json
    assert armed["outcome"] == "armed" and armed["name"] == "Budi Santoso"
    assert armed["operator"] == "guru" and armed["seconds_left"] == 60
    assert client.get("/api/enrolment").json["ticket"] == armed["ticket"]
    page = client.get("/cards").get_data(as_text=True)
    assert 'data-outcome="armed"' in page
    cancelled = client.post("/api/enrolment/cancel", json={"ticket": armed["ticket"]},
                            headers={"X-CSRFToken": token}).json
    assert cancelled["outcome"] == "cancelled"
    # Without JavaScript: the plain form arms it too.
    client.post("/cards/enrol", data={"csrf_token": token, "person_id": "0051234567"})
    assert enrolment.state()["person_id"] == "0051234567"


def test_lost_card_form(logged_in, database):
    token = csrf_token(logged_in, "/cards")
    done = logged_in.post("/cards/lost", data={"csrf_token": token,
                                               "card_uid": "04A1B2C3D4E5F7"})
    assert done.status_code == 302
    page = logged_in.get("/cards").get_data(as_text=True)
    assert "04A1B2C3D4E5F7 dilaporkan hilang" in page
    assert "Hilang" in page and "menunggu dikirim" in page
    again = logged_in.post("/cards/lost", data={"csrf_token": token,
                                                "card_uid": "04A1B2C3D4E5F7"},
                           follow_redirects=True)
    assert "already reported lost" in again.get_data(as_text=True)


def test_day_and_month_exports(logged_in, database):
    tap_today(database, "04A1B2C3D4E5F6", 6, 45)
    tap_today(database, "04A1B2C3D4E5F6", 13, 10)
    today = date.today()
    reply = logged_in.get(f"/export/day?date={today.isoformat()}&format=csv")
    assert reply.headers["Content-Disposition"] == (
        f'attachment; filename="absensi-sdn-001-{today.isoformat()}.csv"')
    assert reply.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(reply.data.decode("utf-8-sig"))))
    siti = next(r for r in rows if r[1] == "0051234567")
    assert siti == ["Siti Aminah", "0051234567", "VII-A", "Hadir", "06:45:00", "13:10:00"]

    english = logged_in.get(f"/export/day?date={today.isoformat()}&format=xlsx&lang=en")
    sheet = load_workbook(io.BytesIO(english.data)).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == ["Name", "ID (NISN/NIP)", "Class / unit", "Status", "First tap",
                         "Last tap"]
    assert ["Siti Aminah", "0051234567", "VII-A", "Present", "06:45:00", "13:10:00"] in values

    month = logged_in.get(f"/export/month?month={today:%Y-%m}&format=xlsx&lang=id")
    assert month.mimetype.endswith("spreadsheetml.sheet")
    values = [[c.value for c in row] for row in load_workbook(io.BytesIO(month.data)).active
              .iter_rows()]
    assert values[0] == ["Nama", "ID (NISN/NIP)", "Rombel / unit", "Hari efektif", "Hadir",
                         "Terlambat", "Sakit", "Izin", "Dinas luar", "Cuti",
                         "Tanpa keterangan"]
    siti = next(r for r in values if r[1] == "0051234567")
    assert siti[3] == 1 and siti[4] == 1 and siti[5] == 0
    csv_month = logged_in.get(f"/export/month?month={today:%Y-%m}")
    assert csv_month.mimetype == "text/csv"


@pytest.mark.parametrize("path", ["/", "/roster", "/excuses", "/cards", "/export", "/account"])
def test_pages_speak_both_languages(logged_in, path):
    indonesian = logged_in.get(path).get_data(as_text=True)
    assert 'lang="id"' in indonesian and "Keluar (guru)" in indonesian
    english = logged_in.get(path + "?lang=en").get_data(as_text=True)
    assert 'lang="en"' in english and "Log out (guru)" in english
    assert 'lang="en"' in logged_in.get(path).get_data(as_text=True)  # remembered
    logged_in.get("/lang/id")


@pytest.mark.parametrize("reason, shown", [
    ("weekend", "Hari libur: akhir pekan"),
    ("holiday: Hari Guru Nasional", "Hari libur: Hari Guru Nasional"),
    ("", "Hari libur: bukan hari kerja"),
])
def test_a_day_off_from_the_servers_plan(logged_in, database, reason, shown):
    from edge import daily

    db = open_database(database)
    daily.store_plans(db, [{"date": date.today().isoformat(), "workday": False,
                            "start": None, "end": None, "grace_minutes": 0,
                            "reason": reason}], today=date.today())
    db.close()
    assert logged_in.get("/api/today").json["plan"] == shown
