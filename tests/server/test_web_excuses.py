"""The dashboard's excuses page: recording an excuse for a person of a site, the list, and
withdrawing one; what an operator and Diskominfo may do (Flask's test client, both backends)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from server.attendance_rules import RulesConfig
from server.db import utcnow
from server.reconcile import run_queue
from server.web import PREFIX
from tests.server.attendance_data import WIB, add_device, add_person, attendance, past_workday
from tests.server.helpers import make_site, rows
from tests.server.web_helpers import csrf_token, login, make_user

PAGE = PREFIX + "/excuses"


@pytest.fixture
def sites(engine):
    """Two schools: P1, P2 at SCH1 (a device that has sent everything), P9 at SCH2."""
    for code in ("SCH1", "SCH2"):
        make_site(engine, code)
        add_device(engine, code, last_seen_at=utcnow() + timedelta(days=1))
    add_person(engine, "P1", "SCH1", group="7A")
    add_person(engine, "P2", "SCH1", group="7B")
    add_person(engine, "P9", "SCH2")
    make_user(engine, "op1", "operator", "SCH1")
    make_user(engine, "admin", "diskominfo")
    return ("SCH1", "SCH2")


def day():
    return past_workday(utcnow().astimezone(WIB).date())


def post_excuse(client, **fields):
    form = {"site": "SCH1", "person_id": "P1", "kind": "sakit", "date_from": day().isoformat(),
            "date_to": day().isoformat(), "note": "demam"}
    form.update(fields)
    return client.post(PAGE, data={"csrf_token": csrf_token(client, PAGE), **form})


def stored(engine):
    return rows(engine, "SELECT * FROM excuses ORDER BY received_at, excuse_id")


def listed(client, query=""):
    page = client.get(PAGE + query)
    assert page.status_code == 200
    return re.findall(r'data-excuse="([^"]+)"', page.get_data(as_text=True)), page


def test_an_operator_records_an_excuse_and_the_day_becomes_sakit(client, engine, sites):
    assert login(client, "op1").status_code == 302
    reply = post_excuse(client, site="SCH2")  # an operator's site is its own, whatever is sent
    assert reply.status_code == 404
    reply = post_excuse(client)
    assert reply.status_code == 302, reply.get_data(as_text=True)
    (row,) = stored(engine)
    assert (row["person_id"], row["kind"], row["site_code"]) == ("P1", "sakit", "SCH1")
    assert row["source_operator"] == "web:op1" and row["withdrawn_at"] is None
    shown, page = listed(client, reply.headers["Location"].split(PAGE, 1)[1])
    assert shown == [row["excuse_id"]]
    assert "Keterangan dicatat" in page.get_data(as_text=True)  # the flashed message
    run_queue(engine, config=RulesConfig(), now=utcnow())
    assert attendance(engine, day=day())[("P1", day())]["status"] == "S"


@pytest.mark.parametrize("fields, field, message", [
    ({"person_id": ""}, "person_id", "Pilih orangnya."),
    ({"person_id": "P9"}, "person_id", "bukan orang unit SCH1"),
    ({"kind": "libur"}, "kind", "Pilih keterangannya."),
    ({"date_from": "2026-02-30"}, "date_from", "Tanggal tidak valid"),
    ({"date_to": "2020-01-01"}, "date_to", "Tanggal akhir sebelum tanggal mulai."),
    ({"note": "x" * 1001}, "note", "Catatan paling panjang 1000 karakter."),
])
def test_a_bad_excuse_form_says_why_and_stores_nothing(client, engine, sites, fields, field,
                                                        message):
    login(client, "op1")
    reply = post_excuse(client, **fields)
    assert reply.status_code == 400
    page = reply.get_data(as_text=True)
    assert message in page and 'class="field-error"' in page
    assert stored(engine) == []


def test_no_csrf_token_no_excuse(client, engine, sites):
    login(client, "op1")
    reply = client.post(PAGE, data={"site": "SCH1", "person_id": "P1", "kind": "sakit",
                                    "date_from": day().isoformat(),
                                    "date_to": day().isoformat()})
    assert reply.status_code == 400
    assert stored(engine) == []


def test_withdrawing_an_excuse_decides_its_days_again(client, engine, sites):
    login(client, "op1")
    post_excuse(client)
    run_queue(engine, config=RulesConfig(), now=utcnow())
    (row,) = stored(engine)
    url = f"{PAGE}/{row['excuse_id']}/withdraw"
    reply = client.post(url, data={"csrf_token": csrf_token(client, PAGE),
                                   "month": f"{day():%Y-%m}"})
    assert reply.status_code == 302 and f"month={day():%Y-%m}" in reply.headers["Location"]
    (row,) = stored(engine)
    assert row["withdrawn_at"] is not None and row["withdrawn_by"] == "web:op1"
    run_queue(engine, config=RulesConfig(), now=utcnow())
    assert attendance(engine, day=day())[("P1", day())]["status"] == "A"
    page = client.get(f"{PAGE}?month={day():%Y-%m}").get_data(as_text=True)
    assert 'class="withdrawn"' in page and "dibatalkan" in page
    assert f'action="{url}"' not in page  # no second button
    again = client.post(url, data={"csrf_token": csrf_token(client, PAGE)})
    assert again.status_code == 302
    assert "sudah dibatalkan" in client.get(PAGE).get_data(as_text=True)


def test_an_operator_sees_and_withdraws_only_its_sites_excuses(client, engine, sites):
    login(client, "admin")
    post_excuse(client, site="SCH2", person_id="P9")
    assert len(stored(engine)) == 1
    other = stored(engine)[0]["excuse_id"]
    client.post(PREFIX + "/logout", data={"csrf_token": csrf_token(client, PAGE)})

    login(client, "op1")
    post_excuse(client)
    shown, _ = listed(client, f"?month={day():%Y-%m}")
    assert other not in shown and len(shown) == 1
    reply = client.post(f"{PAGE}/{other}/withdraw",
                        data={"csrf_token": csrf_token(client, PAGE)})
    assert reply.status_code == 404
    assert all(r["withdrawn_at"] is None for r in stored(engine))


def test_diskominfo_sees_every_site_and_withdraws_any(client, engine, sites):
    login(client, "op1")
    post_excuse(client)
    client.post(PREFIX + "/logout", data={"csrf_token": csrf_token(client, PAGE)})
    login(client, "admin")
    page = client.get(PAGE).get_data(as_text=True)
    assert "Pilih satu unit untuk mencatat keterangan." in page  # no form without a site
    post_excuse(client, site="SCH2", person_id="P9")
    shown, _ = listed(client, f"?month={day():%Y-%m}")
    assert len(shown) == 2
    only, _ = listed(client, f"?month={day():%Y-%m}&site=SCH2")
    assert len(only) == 1
    for row in stored(engine):
        reply = client.post(f"{PAGE}/{row['excuse_id']}/withdraw",
                            data={"csrf_token": csrf_token(client, PAGE)})
        assert reply.status_code == 302
    assert all(r["withdrawn_by"] == "web:admin" for r in stored(engine))


def test_the_page_in_english(client, engine, sites):
    login(client, "op1")
    page = client.get(PAGE + "?lang=en").get_data(as_text=True)
    assert "Record an excuse" in page and "Sick, leave" in page
