"""The sync worker's exchanges beyond taps, against a real central server on loopback
whose registry was loaded with its own import commands (tests/edge_web/school.py):
excuses, card requests, the site's people, day plans; a cut connection loses and doubles
nothing. Only a server of the previous release, which this code cannot run, is played by a
stand-in (tests/edge_web/standin.py)."""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge import cards, daily, excuses
from edge.attendance import parse_plans
from edge.clock import Clock
from edge.config import WebConfig, load_config
from edge.outbox import Outbox, immediate
from edge.people import site_people
from edge.sync import SyncError, SyncReport, build_sync_worker
from tests.edge_process import edge_cmd, write_config
from tests.edge_web import school
from tests.edge_web.conftest import ROSTER
from tests.edge_web.standin import PreviousReleaseServer
from tests.fault_proxy import FaultProxy
from tests.sync_env import CentralServer, wait_for

# Pupils of the school without a card, each for one test (the server is shared).
FAJAR = school.Student("0051234571", "Fajar Nugroho", "L", "VII-A")
GITA = school.Student("0051234572", "Gita Permata", "P", "VII-B")
IWAN = school.Student("0051234574", "Iwan Setiawan", "L", "VII-B")  # leaves the school
HADI = school.Student("0051234573", "Hadi Wijaya", "L", "VII-A")    # joins it later
STUDENTS = (*school.STUDENTS, FAJAR, GITA, IWAN)
#: A pupil of another school, with a card of their own.
RINA = school.Student("0061234501", "Rina Wati", "P", "VI-A", "04B1B2C3D4E5A1")
SCHEDULE = "sekolah-0630"
HOLIDAY_NAME = "HUT Sekolah"


def school_today() -> date:
    return datetime.now(ZoneInfo("Asia/Jakarta")).date()


@pytest.fixture(scope="module")
def holiday() -> date:
    """A weekday two to five days ahead at the school: inside the plans the roster sends."""
    day = school_today() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@pytest.fixture(scope="module")
def server(tmp_path_factory, holiday):
    workdir = tmp_path_factory.mktemp("server")
    central = CentralServer(workdir)
    central.setup_site()
    school.load_school(central, workdir / "registry", students=STUDENTS, schedule=SCHEDULE,
                       other_school=[RINA], since=school_today() - timedelta(days=7))
    central.cli("calendar", "add", holiday.isoformat(), "--kind", "holiday", "--site",
                school.NPSN, "--name", HOLIDAY_NAME)
    central.start()
    yield central
    central.stop()


def server_rows(server: CentralServer, query: str, *params) -> list[tuple]:
    """Rows of the central server's own database (its SQLite file)."""
    conn = sqlite3.connect(server.workdir / "server.db")
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def server_excuses(server: CentralServer) -> list[tuple]:
    return server_rows(server, "SELECT excuse_id, person_id, kind, date_from, date_to, note, "
                               "source_device_id FROM excuses")


def enrolled_worker(tmp_path: Path, server: CentralServer, url: str, *,
                    site: str = school.NPSN):
    config = write_config(tmp_path, extra=f'[sync]\nserver_url = "{url}"\ntimeout_seconds = 3\n'
                                          'batch_size = 7\n')
    edge_cmd(config, "enroll", "--server", server.url, "--code", server.claim_code(site))
    cfg = load_config(config, environ={})
    outbox = Outbox(cfg.database_path)
    worker = build_sync_worker(cfg, outbox, Clock())
    assert worker is not None
    outbox.device_id = worker.device_id
    return outbox, worker


def pulled_worker(tmp_path: Path, server: CentralServer, url: str):
    """An enrolled edge that has pulled its roster and the site's people."""
    outbox, worker = enrolled_worker(tmp_path, server, url)
    worker.roster_once(SyncReport())
    report = SyncReport()
    worker.people_once(report)
    assert not report.notes, report.notes
    return outbox, worker


def test_excuses_reach_the_server_once_through_cut_connections(tmp_path, server):
    with FaultProxy(("127.0.0.1", server.port), mode="pass", seed=11) as proxy:
        outbox, worker = enrolled_worker(tmp_path, server, proxy.url)
        try:
            made = [outbox.call(excuses.add_excuse, person_id=f"00512345{i:02d}",
                                kind=excuses.KINDS[i % 4], date_from=date(2026, 11, 20),
                                date_to=date(2026, 11, 20 + i % 3), note=f"catatan {i}",
                                created_by="guru") for i in range(30)]
            proxy.mode = "random"
            rounds = 0
            while outbox.call(excuses.unsent_excuses) and rounds < 300:
                worker.run_round(force=True)
                rounds += 1
            stats = proxy.stats
            proxy.mode = "pass"
            assert worker.run_round(force=True).error is None
        finally:
            worker.client.close()
            outbox.close()
    assert stats["drop_after_request"] > 0 and stats["drop_mid_reply"] > 0
    stored = server_excuses(server)
    counted = Counter(row[0] for row in stored)
    assert set(counted) >= {e.excuse_id for e in made}
    assert max(counted.values()) == 1
    by_id = {row[0]: row for row in stored}
    first = made[1]
    assert by_id[first.excuse_id][1:6] == ("0051234501", "izin", "2026-11-20", "2026-11-21",
                                           "catatan 1")
    assert by_id[first.excuse_id][6] == worker.device_id


def test_a_server_of_the_previous_release_still_syncs(tmp_path, server):
    """A server without POST /cards/requests and GET /roster/people (404 there): taps,
    heartbeats and rosters go on, the card request waits for its upgrade."""
    with PreviousReleaseServer(server.url) as previous:
        outbox, worker = enrolled_worker(tmp_path, server, previous.url)
        try:
            outbox.replace_roster(ROSTER)
            outbox.call(cards.report_lost, "8C3F2A11", "guru")
            report = worker.run_round(force=True)
            assert report.error is None and report.heartbeat and report.roster
            notes = " ".join(report.notes)
            assert "card requests: the server does not offer this yet" in notes
            assert "people: the server does not offer this yet" in notes
            # Not asked again until the next roster interval; the request waits.
            again = worker.run_round()
            assert again.error is None and not again.notes
            assert len(outbox.call(cards.unsent_requests)) == 1
        finally:
            worker.client.close()
            outbox.close()


def server_requests(server: CentralServer, *request_ids: str) -> dict[str, tuple]:
    marks = ", ".join("?" for _ in request_ids)
    return {row[0]: row[1:] for row in server_rows(
        server, "SELECT request_id, device_id, kind, card_uid, person_id, requested_at, status "
                f"FROM card_requests WHERE request_id IN ({marks})", *request_ids)}


def test_card_requests_are_sent_retried_and_idempotent(tmp_path, server):
    with FaultProxy(("127.0.0.1", server.port)) as proxy:
        outbox, worker = pulled_worker(tmp_path, server, proxy.url)
        try:
            bind = outbox.call(cards.bind_card, "04C0FFE1", FAJAR.nisn, "guru")
            lost = outbox.call(cards.report_lost, school.DEWI.card, "guru")

            proxy.mode = "http_503"  # the server is briefly unavailable
            with pytest.raises(SyncError, match="503"):
                worker.card_requests_once(SyncReport())
            assert len(outbox.call(cards.unsent_requests)) == 2
            assert server_requests(server, bind.request_id, lost.request_id) == {}

            proxy.mode = "drop_after_request"  # applied there, the reply lost on the way
            with pytest.raises(SyncError):
                worker.card_requests_once(SyncReport())
            assert proxy.stats["drop_after_request"] == 1
            applied = server_requests(server, bind.request_id, lost.request_id)
            assert {k: v[-1] for k, v in applied.items()} == {bind.request_id: "applied",
                                                               lost.request_id: "applied"}
            assert len(outbox.call(cards.unsent_requests)) == 2

            proxy.mode = "pass"
            report = SyncReport()
            worker.card_requests_once(report)
            assert report.card_requests_sent == 2
            stored = {r.request_id: r for r in outbox.call(cards.recent_requests)}
            assert stored[bind.request_id].result == "duplicate"
            assert stored[lost.request_id].result == "duplicate"
            assert not outbox.call(cards.unsent_requests)
        finally:
            worker.client.close()
            outbox.close()
    # Each applied once, as sent.
    kept = server_requests(server, bind.request_id, lost.request_id)
    assert kept[bind.request_id][:4] == (worker.device_id, "bind", "04C0FFE1", FAJAR.nisn)
    assert kept[lost.request_id][:4] == (worker.device_id, "lost", school.DEWI.card, None)
    # requested_at as the device sent it (the server keeps UTC without an offset)
    sent_at = datetime.fromisoformat(bind.requested_at.replace("Z", "+00:00"))
    assert datetime.fromisoformat(kept[bind.request_id][4]) == sent_at.replace(tzinfo=None)
    assert server_rows(server, "SELECT person_id, status FROM cards WHERE card_uid = ?",
                       "04C0FFE1") == [(FAJAR.nisn, "active")]
    assert server_rows(server, "SELECT person_id, status FROM card_history "
                               "WHERE card_uid = ?", "04C0FFE1") == [(FAJAR.nisn, "active")]
    assert server_rows(server, "SELECT status FROM cards WHERE card_uid = ?",
                       school.DEWI.card) == [("lost",)]
    assert server_rows(server, "SELECT status FROM card_history WHERE card_uid = ? "
                               "ORDER BY effective_at", school.DEWI.card) == [("active",),
                                                                              ("lost",)]


def test_a_rejected_bind_is_taken_back(tmp_path, server):
    """A card of a pupil of another school is not this device's to give away."""
    outbox, worker = pulled_worker(tmp_path, server, server.url)
    try:
        outbox.call(cards.bind_card, RINA.card, GITA.nisn, "guru")
        assert outbox.lookup(RINA.card).person_id == GITA.nisn  # the gate obeys at once
        worker.card_requests_once(SyncReport())
        (request,) = outbox.call(cards.recent_requests)
        assert request.result == "rejected"
        assert "belongs to a person of another site" in request.error
        assert outbox.lookup(RINA.card) is None
    finally:
        worker.client.close()
        outbox.close()
    assert server_rows(server, "SELECT person_id, status, site_code FROM cards "
                               "WHERE card_uid = ?", RINA.card) == [(RINA.nisn, "active",
                                                                     school.OTHER_NPSN)]
    assert server_rows(server, "SELECT status, error FROM card_requests WHERE request_id = ?",
                       request.request_id) == [("rejected", request.error)]


def people_here(outbox: Outbox) -> set[str]:
    return {row[0] for row in outbox.db.conn.execute("SELECT person_id FROM people")}


def test_people_are_refreshed_with_if_none_match(tmp_path, server):
    outbox, worker = enrolled_worker(tmp_path, server, server.url)
    try:
        report = SyncReport()
        worker.people_once(report)
        everyone = {s.nisn for s in STUDENTS} | {school.DEWI.nip}
        assert report.people == f"{len(everyone)} person(s)" and not report.notes
        assert people_here(outbox) == everyone  # with and without a card, not RINA
        tag = outbox.meta("people_etag")
        assert tag and tag.startswith('"p')
        unchanged = SyncReport()
        worker.people_once(unchanged)  # If-None-Match: 304
        assert unchanged.people == "unchanged"

        # Dapodik's next export: one pupil left, one joined.
        school.import_students(server, tmp_path,
                               [s for s in STUDENTS if s is not IWAN] + [HADI])
        changed = SyncReport()
        worker.people_once(changed)
        assert changed.people == f"{len(everyone)} person(s)"
        assert people_here(outbox) == everyone - {IWAN.nisn} | {HADI.nisn}
        assert outbox.meta("people_etag") != tag
        hadi = {p.person_id: p for p in site_people(outbox.db)}[HADI.nisn]
        assert (hadi.name, hadi.kind, hadi.group_name, hadi.cards) == (
            "Hadi Wijaya", "student", "VII-A", ())
    finally:
        worker.client.close()
        outbox.close()


def test_day_plans_from_the_roster_reply_are_kept(tmp_path, server, holiday):
    outbox, worker = enrolled_worker(tmp_path, server, server.url)
    try:
        report = SyncReport()
        worker.roster_once(report)
        assert report.plans == 7
        sent = parse_plans(worker.client.roster(None)["plans"])  # the server's reply again
        stored = {p["date"]: p for p in outbox.call(daily.load_plans)}
        assert [stored[p["date"]] for p in sent] == sent
        day_off = outbox.call(daily.day_plan, holiday, WebConfig(start_time="07:00"))
        assert (day_off.workday, day_off.from_server) == (False, True)
        assert HOLIDAY_NAME in day_off.reason
        workdays = [p for p in sent if p["workday"]]
        assert workdays, sent
        plan = outbox.call(daily.day_plan, date.fromisoformat(workdays[0]["date"]),
                           WebConfig(start_time="07:00"))
        assert (plan.workday, plan.start, plan.from_server) == (True, time(6, 30), True)
    finally:
        worker.client.close()
        outbox.close()


def _schema_errors(name: str, body: dict) -> list[str]:
    import jsonschema

    from server.openapi import document

    spec = document()
    assert name in spec["components"]["schemas"], f"the server's OpenAPI document has no {name}"
    schema = {**spec["components"]["schemas"][name], "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(body)]


def test_excuse_payload_matches_the_servers_schema(tmp_path):
    """Every excuse the edge can record is valid for the server's OpenAPI document."""
    outbox = Outbox(tmp_path / "edge.db")
    try:
        for kind in excuses.KINDS:
            outbox.call(excuses.add_excuse, person_id="198703152010012003", kind=kind,
                        date_from=date(2026, 11, 20), date_to=date(2026, 11, 20), note="",
                        created_by="guru")
        body = {"excuses": [e.payload() for e in outbox.call(excuses.unsent_excuses)]}
    finally:
        outbox.close()
    assert _schema_errors("ExcuseBatch", body) == []
    assert all(uuid.UUID(e["excuse_id"]) for e in body["excuses"])


def test_card_request_payload_matches_the_servers_schema(tmp_path):
    outbox = Outbox(tmp_path / "edge.db")
    try:
        outbox.replace_roster(ROSTER)
        outbox.call(cards.bind_card, "04C0FFEE", "0051234567", "guru")
        outbox.call(cards.report_lost, "8C3F2A11", "guru")
        body = {"requests": [r.payload() for r in outbox.call(cards.unsent_requests)]}
    finally:
        outbox.close()
    assert _schema_errors("CardRequestBatch", body) == []


def test_card_requests_and_people_with_the_real_server(tmp_path, server):
    """Bind and lost through the server's own endpoint, then its roster says the same."""
    outbox, worker = enrolled_worker(tmp_path, server, server.url)
    try:
        worker.roster_once(SyncReport())
        report = SyncReport()
        worker.people_once(report)
        assert not report.notes, report.notes  # GET /roster/people must be there
        assert {school.EKA.nisn, school.BUDI.nisn} <= {p.person_id
                                                      for p in site_people(outbox.db)}
        unchanged = SyncReport()
        worker.people_once(unchanged)
        assert unchanged.people == "unchanged"

        bind = outbox.call(cards.bind_card, "04C0FFEE", school.EKA.nisn, "guru")
        lost = outbox.call(cards.report_lost, school.BUDI.card, "guru")
        sent = SyncReport()
        worker.card_requests_once(sent)
        assert not sent.notes and sent.card_requests_sent == 2
        results = {r.request_id: (r.result, r.error) for r in outbox.call(cards.recent_requests)}
        assert results == {bind.request_id: ("applied", None), lost.request_id: ("applied", None)}
        assert server_rows(server, "SELECT person_id, status FROM cards WHERE card_uid IN "
                                   "(?, ?) ORDER BY card_uid", "04A1B2C3D4E5F7", "04C0FFEE") == [
            (school.BUDI.nisn, "lost"), (school.EKA.nisn, "active")]
        # The server's roster now says what the device already did: empty the cache (and
        # its cursor), pull the whole roster again.
        outbox.replace_roster([])
        assert outbox.lookup("04C0FFEE") is None
        worker.roster_once(SyncReport())
        assert outbox.lookup("04C0FFEE").person_id == school.EKA.nisn
        assert outbox.lookup(school.BUDI.card).status == "lost"
    finally:
        worker.client.close()
        outbox.close()


# -- withdrawing an excuse ("Batalkan") ------------------------------------------------------------
def attendance_days(server: CentralServer, person_id: str, first: date,
                    last: date) -> list[tuple]:
    """(day, status, excuse_id) of the server's reconciled days of ``person_id``."""
    return server_rows(server, "SELECT day, status, excuse_id FROM attendance_days "
                               "WHERE person_id = ? AND day BETWEEN ? AND ? ORDER BY day",
                       person_id, first.isoformat(), last.isoformat())


def server_withdrawals(server: CentralServer, *excuse_ids: str) -> dict[str, tuple]:
    marks = ", ".join("?" for _ in excuse_ids)
    return {row[0]: row[1:] for row in server_rows(
        server, "SELECT excuse_id, person_id, kind, date_from, date_to, source_device_id, "
                f"withdrawn_by, withdrawn_at IS NOT NULL FROM excuses WHERE excuse_id IN "
                f"({marks})", *excuse_ids)}


def test_withdrawals_reach_the_server_once_and_its_days_lose_the_excuse(tmp_path, server):
    """An excuse sent, then withdrawn; another withdrawn before it was ever sent; the reply
    to the withdrawal cut: the server ends with both withdrawn, once, and decides the days
    again without the excuse."""
    first = school_today() - timedelta(days=6)
    last = school_today() - timedelta(days=1)
    citra = school.CITRA.nisn
    with FaultProxy(("127.0.0.1", server.port)) as proxy:
        outbox, worker = pulled_worker(tmp_path, server, proxy.url)
        try:
            sick = outbox.call(excuses.add_excuse, person_id=citra, kind="sakit",
                               date_from=first, date_to=last, note="salah orang",
                               created_by="guru")
            sent = SyncReport()
            worker.excuses_once(sent)
            assert sent.excuses_sent == 1
            server.cli("reconcile", "--date", first.isoformat(), "--to", last.isoformat(),
                       "--site", school.NPSN)
            days = attendance_days(server, citra, first, last)
            assert {status for _, status, _ in days} <= {"S", "LIBUR"}, days
            assert [e for _, status, e in days if status == "S"], days
            assert {e for _, status, e in days if status == "S"} == {sick.excuse_id}

            never = outbox.call(excuses.add_excuse, person_id=GITA.nisn, kind="izin",
                                date_from=last, date_to=last, note="", created_by="guru")
            for item in (sick, never):
                outbox.call(excuses.withdraw_excuse, item.excuse_id, withdrawn_by="guru")
            assert outbox.call(excuses.unsent_excuses) == []  # the withdrawal carries it

            proxy.mode = "drop_after_request"  # withdrawn there, the reply lost on the way
            with pytest.raises(SyncError):
                worker.withdrawals_once(SyncReport())
            assert proxy.stats["drop_after_request"] == 1
            assert len(outbox.call(excuses.unsent_withdrawals)) == 2
            assert {k: v[-1] for k, v in server_withdrawals(
                server, sick.excuse_id, never.excuse_id).items()} == {sick.excuse_id: 1,
                                                                      never.excuse_id: 1}

            proxy.mode = "pass"
            report = worker.run_round(force=True)
            assert report.error is None, report.error
            assert (report.excuses_sent, report.withdrawals_sent) == (0, 2)
            assert "sent 2 excuse withdrawal(s)" in report.summary()
            assert outbox.call(excuses.unsent_withdrawals) == []
            listed = {e.excuse_id: e for e in outbox.call(excuses.recent_excuses,
                                                          since=first)}
            assert listed[never.excuse_id].sent_at is None  # never pushed as an excuse
            assert listed[never.excuse_id].withdrawal_sent_at is not None

            # A push of the excuse that still arrives is a duplicate and applies nowhere;
            # the same withdrawal again changes nothing either.
            late = worker.client.push_excuses([never.payload()])
            assert [(r["excuse_id"], r["status"]) for r in late["results"]] == [
                (never.excuse_id, "duplicate")]
            again = worker.client.push_withdrawals([sick.payload(), never.payload()])
            assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
        finally:
            worker.client.close()
            outbox.close()
    stored = server_withdrawals(server, sick.excuse_id, never.excuse_id)
    assert stored == {
        sick.excuse_id: (citra, "sakit", first.isoformat(), last.isoformat(),
                         worker.device_id, worker.device_id, 1),
        never.excuse_id: (GITA.nisn, "izin", last.isoformat(), last.isoformat(),
                          worker.device_id, worker.device_id, 1)}
    assert server_rows(server, "SELECT count(*) FROM excuses WHERE excuse_id IN (?, ?)",
                       sick.excuse_id, never.excuse_id) == [(2,)]

    def decided_again() -> list[tuple]:
        server.cli("reconcile", "--queued")  # the withdrawal queued the days it covered
        days = attendance_days(server, citra, first, last)
        return days if days and all(status != "S" for _, status, _ in days) else []

    days = wait_for(decided_again, 60, "Citra's days decided again without the excuse")
    assert {status for _, status, _ in days} <= {"A", "LIBUR"}, days
    assert "A" in {status for _, status, _ in days}, days
    assert all(excuse_id is None for _, _, excuse_id in days), days


def test_an_excuse_of_another_site_is_not_withdrawn(tmp_path, server):
    """The server refuses (403) a withdrawal naming an excuse another school recorded: the
    round goes on, the withdrawal waits (for a person to look), nothing changes there."""
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    here_box, here = enrolled_worker(tmp_path / "here", server, server.url)
    there_box, there = enrolled_worker(tmp_path / "there", server, server.url,
                                       site=school.OTHER_NPSN)
    try:
        day = school_today() + timedelta(days=30)
        theirs = here_box.call(excuses.add_excuse, person_id=school.SITI.nisn, kind="izin",
                               date_from=day, date_to=day, note="", created_by="guru")
        sent = SyncReport()
        here.excuses_once(sent)
        assert sent.excuses_sent == 1
        # The other school's device holds an excuse of the same id (copied by hand, say).
        with immediate(there_box.db) as conn:
            conn.execute("INSERT INTO excuses (excuse_id, person_id, kind, date_from, date_to, "
                         "note, created_at, created_by, sent_at) VALUES (?, ?, 'izin', ?, ?, "
                         "'', ?, 'guru', ?)", [theirs.excuse_id, RINA.nisn, day.isoformat(),
                                               day.isoformat(), theirs.created_at,
                                               theirs.created_at])
        there_box.call(excuses.withdraw_excuse, theirs.excuse_id, withdrawn_by="guru")
        report = there.run_round(force=True)
        assert report.error is None and report.heartbeat
        assert report.withdrawals_sent == 0
        refused = [n for n in report.notes if n.startswith("withdrawals refused")]
        assert refused and "403" in refused[0], report.notes
        assert [e.excuse_id for e in there_box.call(excuses.unsent_withdrawals)] == [
            theirs.excuse_id]
        again = there.run_round()  # not offered again before the next roster interval
        assert again.error is None and not again.notes
    finally:
        for box, worker in ((here_box, here), (there_box, there)):
            worker.client.close()
            box.close()
    assert server_withdrawals(server, theirs.excuse_id) == {
        theirs.excuse_id: (school.SITI.nisn, "izin", day.isoformat(), day.isoformat(),
                           here.device_id, None, 0)}


def test_a_server_without_withdrawals_keeps_them_waiting(tmp_path, server):
    """A server of the previous release (404 on POST /excuses/withdraw): the round goes on,
    the withdrawal waits for its upgrade, and the withdrawn excuse is not pushed instead."""
    with PreviousReleaseServer(server.url) as previous:
        outbox, worker = enrolled_worker(tmp_path, server, previous.url)
        try:
            wrong = outbox.call(excuses.add_excuse, person_id=school.EKA.nisn, kind="cuti",
                                date_from=school_today(), date_to=school_today(), note="",
                                created_by="guru")
            outbox.call(excuses.withdraw_excuse, wrong.excuse_id, withdrawn_by="guru")
            report = worker.run_round(force=True)
            assert report.error is None and report.heartbeat and report.roster
            assert "withdrawals: the server does not offer this yet" in report.notes
            assert (report.excuses_sent, report.withdrawals_sent) == (0, 0)
            assert [e.excuse_id for e in outbox.call(excuses.unsent_withdrawals)] == [
                wrong.excuse_id]
        finally:
            worker.client.close()
            outbox.close()
    assert server_withdrawals(server, wrong.excuse_id) == {}


def test_withdrawal_payload_matches_the_servers_schema(tmp_path):
    """Every withdrawal the edge can send is valid for the server's OpenAPI document."""
    outbox = Outbox(tmp_path / "edge.db")
    try:
        for kind in excuses.KINDS:
            made = outbox.call(excuses.add_excuse, person_id="198703152010012003", kind=kind,
                               date_from=date(2026, 11, 20), date_to=date(2026, 11, 21),
                               note="salah tanggal", created_by="guru")
            outbox.call(excuses.withdraw_excuse, made.excuse_id, withdrawn_by="guru")
        body = {"withdrawals": [e.payload() for e in outbox.call(excuses.unsent_withdrawals)]}
    finally:
        outbox.close()
    assert len(body["withdrawals"]) == len(excuses.KINDS)
    assert _schema_errors("WithdrawalBatch", body) == []
