"""Withdrawing an excuse ("Batalkan") on the edge: the store, its migration and salvage, and
the page through Flask's test client. (Sync with the real server: test_sync_side.py; the
page in Chromium: test_browser.py.)"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

import pytest

from edge import daily, excuses
from edge.clock import FixedClock
from edge.config import WebConfig
from edge.outbox import Outbox, check_integrity, connect, migrations, open_database
from tests.edge_web.conftest import csrf_token, login

DAY = date(2026, 11, 20)  # a Friday
SITI, BUDI, CITRA = "0051234567", "0051234568", "0051234569"
NEW_COLUMNS = ("withdrawn_at", "withdrawn_by", "withdrawal_sent_at")


def excuse(db, person_id: str = CITRA, kind: str = "sakit", first: date = DAY,
           last: date | None = None, note: str = "") -> excuses.Excuse:
    return excuses.add_excuse(db, person_id=person_id, kind=kind, date_from=first,
                              date_to=last or first, note=note, created_by="guru")


def stored(db, excuse_id: str) -> dict:
    cur = db.conn.execute("SELECT * FROM excuses WHERE excuse_id = ?", [excuse_id])
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    return dict(zip(names, row)) if row else {}


# -- the store ------------------------------------------------------------------------------
def test_a_withdrawn_excuse_is_kept_marked_and_counts_nowhere(outbox):
    db = outbox.db
    sick = excuse(db, CITRA, "sakit", DAY, DAY + timedelta(days=2), note="demam")
    when = datetime(2026, 11, 20, 1, 2, 3, tzinfo=timezone.utc)
    done = excuses.withdraw_excuse(db, sick.excuse_id, withdrawn_by="guru", now=when)
    assert done.is_withdrawn and not sick.is_withdrawn
    assert (done.withdrawn_at, done.withdrawn_by, done.withdrawal_sent_at) == (
        "2026-11-20T01:02:03.000000+00:00", "guru", None)
    assert done.payload() == sick.payload()  # the withdrawal carries the excuse as it was
    row = stored(db, sick.excuse_id)  # never deleted
    assert (row["note"], row["withdrawn_by"], row["sent_at"]) == ("demam", "guru", None)
    assert not done.covers(DAY)
    assert excuses.excuses_between(db, DAY, DAY + timedelta(days=5)) == []
    assert excuses.excuse_by_person([done], DAY) == {}
    # Still listed on the page, as withdrawn.
    (listed,) = excuses.recent_excuses(db, since=DAY)
    assert listed == done


def test_an_earlier_excuse_wins_again_when_the_later_one_is_withdrawn(outbox):
    db = outbox.db
    leave = excuse(db, CITRA, "izin")
    wrong = excuse(db, CITRA, "cuti")
    assert excuses.excuse_by_person(excuses.excuses_between(db, DAY, DAY), DAY)[
        CITRA].excuse_id == wrong.excuse_id
    excuses.withdraw_excuse(db, wrong.excuse_id, withdrawn_by="guru")
    found = excuses.excuse_by_person(excuses.excuses_between(db, DAY, DAY), DAY)
    assert found[CITRA].excuse_id == leave.excuse_id
    # A list read before the withdrawal does not count the withdrawn one either.
    both = [leave, excuses.recent_excuses(db, since=DAY)[0]]
    assert both[1].is_withdrawn
    assert excuses.excuse_by_person(both, DAY)[CITRA].excuse_id == leave.excuse_id


@pytest.mark.parametrize("which, error, text", [
    ("unknown", excuses.UnknownExcuse, "no excuse"),
    ("withdrawn", excuses.ExcuseError, "already withdrawn"),
])
def test_withdrawing_names_the_field_excuse_id(outbox, which, error, text):
    db = outbox.db
    sick = excuse(db)
    excuses.withdraw_excuse(db, sick.excuse_id, withdrawn_by="guru")
    before = stored(db, sick.excuse_id)
    excuse_id = sick.excuse_id if which == "withdrawn" else "no-such-excuse"
    with pytest.raises(error, match=text) as caught:
        excuses.withdraw_excuse(db, excuse_id, withdrawn_by="tu")
    assert caught.value.field == "excuse_id"
    assert isinstance(caught.value, excuses.ExcuseError)
    assert stored(db, sick.excuse_id) == before  # the first withdrawal stays as it was
    assert not db.conn.in_transaction


def test_unsent_withdrawals_carry_sent_and_unsent_excuses(outbox):
    db = outbox.db
    sent, cut, kept = excuse(db, SITI), excuse(db, BUDI), excuse(db, CITRA)
    assert excuses.mark_excuses_sent(db, [sent.excuse_id]) == 1
    assert excuses.waiting_count(db) == 2  # cut, kept
    # "cut": pushed, its reply lost (sent_at empty): it may be on the server already.
    for item in (cut, sent):
        excuses.withdraw_excuse(db, item.excuse_id, withdrawn_by="guru")
    assert [e.excuse_id for e in excuses.unsent_excuses(db)] == [kept.excuse_id]
    assert [e.excuse_id for e in excuses.unsent_withdrawals(db)] == [cut.excuse_id,
                                                                     sent.excuse_id]
    assert excuses.unsent_withdrawals(db, limit=1)[0].excuse_id == cut.excuse_id
    assert excuses.waiting_count(db) == 3  # kept, and two withdrawals
    assert excuses.mark_withdrawals_sent(db, []) == 0
    assert excuses.mark_withdrawals_sent(db, [cut.excuse_id, kept.excuse_id, "nope"]) == 1
    assert excuses.mark_withdrawals_sent(db, [cut.excuse_id]) == 0
    assert [e.excuse_id for e in excuses.unsent_withdrawals(db)] == [sent.excuse_id]
    assert stored(db, kept.excuse_id)["withdrawal_sent_at"] is None  # not withdrawn: untouched
    assert stored(db, cut.excuse_id)["sent_at"] is None
    assert excuses.waiting_count(db) == 2
    assert excuses.unsent_excuses(db) == [kept]
    assert db.conn.execute("SELECT count(*) FROM excuses").fetchone()[0] == 3


def test_day_sheet_and_month_no_longer_count_a_withdrawn_excuse(outbox):
    db = outbox.db
    web = WebConfig(start_time="07:00", grace_minutes=5)
    when = datetime.combine(DAY, time(6, 50)).astimezone()
    outbox.record_tap("04A1B2C3D4E5F6", "sim", FixedClock(when, boot_id="b").now(), 60)
    daily.store_plans(db, [{"date": DAY.isoformat(), "workday": True, "start": "07:00"}],
                      today=DAY)
    wrong = excuse(db, CITRA, "sakit")
    plan = daily.day_plan(db, DAY, web)

    def statuses(today: date) -> dict[str, str]:
        return {r.person.person_id: r.status for r in daily.day_sheet(db, DAY, plan, today)}

    assert statuses(DAY)[CITRA] == "sakit"
    excuses.withdraw_excuse(db, wrong.excuse_id, withdrawn_by="guru")
    assert statuses(DAY)[CITRA] == "not_arrived"
    assert statuses(DAY + timedelta(days=1))[CITRA] == "absent"
    _, month = daily.month_sheet(db, DAY.year, DAY.month, web, DAY + timedelta(days=1))
    counts = {row.person.person_id: row.counts for row in month}[CITRA]
    assert counts["sakit"] == 0 and counts["absent"] == 1


# -- the migration and salvage ----------------------------------------------------------------
def test_m003_adds_the_columns_to_an_existing_database(tmp_path):
    path = tmp_path / "old.db"
    db = connect(path)
    migrations.apply(db, stop_before="m003_excuse_withdrawals")
    db.execute("INSERT INTO excuses (excuse_id, person_id, kind, date_from, date_to, note, "
               "created_at, created_by, sent_at) VALUES ('x1', ?, 'izin', '2026-11-20', "
               "'2026-11-20', '', '2026-11-19T10:00:00+00:00', 'guru', NULL)", [CITRA])
    db.conn.commit()
    db.close()
    with Outbox(path) as box:
        columns = [r[1] for r in box.db.conn.execute("PRAGMA table_info(excuses)")]
        assert columns[-3:] == list(NEW_COLUMNS)
        (old,) = box.call(excuses.unsent_excuses)
        assert old.excuse_id == "x1" and not old.is_withdrawn
        box.call(excuses.withdraw_excuse, "x1", withdrawn_by="guru")
        assert [e.excuse_id for e in box.call(excuses.unsent_withdrawals)] == ["x1"]


def damage_taps(path) -> None:
    """Overwrite pages in the middle of the file (the taps'), as test_outbox.py does."""
    data = bytearray(path.read_bytes())
    page = 4096
    for p in range(24, 34):  # the first pages are the tables' roots
        data[p * page:(p + 1) * page] = b"\xde\xad" * (page // 2)
    path.write_bytes(bytes(data))
    assert check_integrity(path) is not None


def test_salvage_keeps_withdrawn_excuses_and_their_sync_state(tmp_path):
    path = tmp_path / "edge.db"
    when = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)
    with Outbox(path) as box:
        kept = box.call(excuse, SITI, "izin")
        waiting = box.call(excuse, BUDI, "sakit")
        told = box.call(excuse, CITRA, "cuti")
        box.call(excuses.mark_excuses_sent, [told.excuse_id])
        for item in (waiting, told):
            box.call(excuses.withdraw_excuse, item.excuse_id, withdrawn_by="guru")
        box.call(excuses.mark_withdrawals_sent, [told.excuse_id])
        for i in range(1200):
            box.record_tap(f"04{i:06X}", "r", FixedClock(when + timedelta(seconds=i)).now(), 0)
        box.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = {e.excuse_id: e for e in box.call(excuses.recent_excuses, since=DAY)}
    damage_taps(path)
    with Outbox(path) as box:
        assert box.recovered_from is not None
        after = {e.excuse_id: e for e in box.call(excuses.recent_excuses, since=DAY)}
        assert after == before
        assert after[told.excuse_id].withdrawal_sent_at is not None
        assert [e.excuse_id for e in box.call(excuses.unsent_excuses)] == [kept.excuse_id]
        assert [e.excuse_id for e in box.call(excuses.unsent_withdrawals)] == [
            waiting.excuse_id]


def test_salvage_of_a_database_from_before_m003(tmp_path):
    """A damaged file of the previous release: its excuses come over, not withdrawn."""
    path = tmp_path / "edge.db"
    db = connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    migrations.apply(db, stop_before="m003_excuse_withdrawals")
    db.execute("INSERT INTO excuses (excuse_id, person_id, kind, date_from, date_to, note, "
               "created_at, created_by) VALUES ('x1', ?, 'izin', '2026-11-20', '2026-11-20', "
               "'', '2026-11-19T10:00:00+00:00', 'guru')", [CITRA])
    db.conn.executemany(
        "INSERT INTO taps (event_id, card_uid, tapped_at, tapped_at_utc, boot_id, mono_ns, "
        "clock_synced, reader, verdict) VALUES (?, ?, '2026-11-20T07:00:00.000+07:00', "
        "'2026-11-20T00:00:00.000+00:00', 'b', ?, 0, 'sim', 'unknown')",
        [(f"e{i}", f"04{i:06X}", i) for i in range(1200)])
    db.conn.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    damage_taps(path)
    with Outbox(path) as box:
        assert box.recovered_from is not None
        (old,) = box.call(excuses.unsent_excuses)
        assert old.excuse_id == "x1" and (old.withdrawn_at, old.withdrawal_sent_at) == (
            None, None)


# -- the page ---------------------------------------------------------------------------------
def add_today(database, person_id: str = CITRA, kind: str = "izin", note: str = "") -> str:
    db = open_database(database)
    try:
        return excuse(db, person_id, kind, date.today(), note=note).excuse_id
    finally:
        db.close()


def stored_in(database, excuse_id: str) -> dict:
    db = open_database(database)
    try:
        return stored(db, excuse_id)
    finally:
        db.close()


def excuse_item(page: str, excuse_id: str) -> str:
    found = re.search(rf'<li data-excuse="{excuse_id}"[^>]*>.*?</li>', page, re.S)
    assert found, page
    return found.group(0)


def test_withdraw_from_the_page(logged_in, database):
    excuse_id = add_today(database, CITRA, "izin", note="salah orang")
    other = add_today(database, SITI, "sakit")
    woken = []
    logged_in.application.extensions["edge"].wake_sync = lambda: woken.append(1)
    before = logged_in.get("/api/today").json
    assert before["counts"]["excused"] == 2
    page = logged_in.get("/excuses").get_data(as_text=True)
    item = excuse_item(page, excuse_id)
    assert f'action="/excuses/{excuse_id}/withdraw"' in item
    assert 'name="csrf_token"' in item and ">Batalkan</button>" in item
    assert 'data-confirm="Batalkan Izin Citra Lestari' in item

    token = csrf_token(logged_in, "/excuses")
    done = logged_in.post(f"/excuses/{excuse_id}/withdraw", data={"csrf_token": token})
    assert done.status_code == 302 and done.location == "/excuses" and woken == [1]
    page = logged_in.get("/excuses").get_data(as_text=True)
    today = date.today().isoformat()
    assert (f"Citra Lestari: Izin ({today}) dibatalkan. Akan dikirim ke server."
            in page)
    item = excuse_item(page, excuse_id)
    assert 'class="withdrawn"' in item and "Dibatalkan " in item
    assert "pembatalan menunggu dikirim" in item and "Batalkan</button>" not in item
    assert "Batalkan</button>" in excuse_item(page, other)  # the other stays as it was

    after = logged_in.get("/api/today").json
    assert after["counts"]["excused"] == 1
    assert after["counts"]["not_arrived"] == before["counts"]["not_arrived"] + 1
    lines = {line["key"]: line for line in after["service_lines"]}
    # SITI's excuse and the withdrawal wait to be sent
    assert lines["waiting"]["value"] == "2 izin/sakit, 0 permintaan kartu"
    roster = logged_in.get("/roster?group=VII-B").get_data(as_text=True)
    assert "salah orang" not in roster

    assert stored_in(database, excuse_id)["withdrawn_by"] == "guru"
    db = open_database(database)
    try:
        excuses.mark_excuses_sent(db, [other])
        excuses.mark_withdrawals_sent(db, [excuse_id])
    finally:
        db.close()
    page = logged_in.get("/excuses").get_data(as_text=True)
    assert "pembatalan terkirim" in excuse_item(page, excuse_id)
    lines = {line["key"]: line for line in logged_in.get("/api/today").json["service_lines"]}
    assert lines["waiting"]["value"] == "0 izin/sakit, 0 permintaan kartu"
    english = logged_in.get("/excuses?lang=en").get_data(as_text=True)
    assert "withdrawal sent" in excuse_item(english, excuse_id)
    assert "Withdrawn " in excuse_item(english, excuse_id)
    assert ">Withdraw</button>" in excuse_item(english, other)


def test_withdrawing_twice_or_an_unknown_excuse(logged_in, database):
    excuse_id = add_today(database)
    token = csrf_token(logged_in, "/excuses")
    logged_in.post(f"/excuses/{excuse_id}/withdraw", data={"csrf_token": token})
    row = stored_in(database, excuse_id)
    again = logged_in.post(f"/excuses/{excuse_id}/withdraw", data={"csrf_token": token},
                           follow_redirects=True)
    assert again.status_code == 200
    assert "Keterangan ini sudah dibatalkan." in again.get_data(as_text=True)
    assert stored_in(database, excuse_id) == row
    missing = logged_in.post("/excuses/no-such-excuse/withdraw", data={"csrf_token": token})
    assert missing.status_code == 404
    assert "Halaman tidak ditemukan" in missing.get_data(as_text=True)
    english = logged_in.post(f"/excuses/{excuse_id}/withdraw?lang=en",
                             data={"csrf_token": token}, follow_redirects=True)
    assert "This excuse was already withdrawn." in english.get_data(as_text=True)


def test_withdrawing_needs_a_login_and_a_csrf_token(client, database):
    excuse_id = add_today(database)
    token = csrf_token(client)
    anonymous = client.post(f"/excuses/{excuse_id}/withdraw", data={"csrf_token": token})
    assert anonymous.status_code == 302 and anonymous.location.startswith("/login")
    login(client)
    forged = client.post(f"/excuses/{excuse_id}/withdraw")
    assert forged.status_code == 400
    assert stored_in(database, excuse_id)["withdrawn_at"] is None
