import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from edge.clock import FixedClock
from edge.errors import StorageError
from edge.outbox import Outbox, check_integrity
from edge.rules import RosterEntry

WIB = timezone(timedelta(hours=7))


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 6, 55, tzinfo=WIB))


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "edge.db")
    yield box
    box.close()


def test_settings_on_disk(outbox):
    conn = outbox.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_record_fields(outbox, clock):
    rec = outbox.record_tap("04A1B2C3", "gerbang", clock.now(), 60)
    assert rec.seq == 1 and rec.verdict == "unknown"
    assert rec.tapped_at == "2026-11-23T06:55:00.000+07:00"
    assert rec.boot_id == "test-boot" and rec.clock_synced is True
    stored = list(outbox.taps())
    assert stored == [rec]
    # A second connection (another process would do the same) sees the committed row.
    other = sqlite3.connect(outbox.path)
    assert other.execute("SELECT event_id, tapped_at_utc FROM taps").fetchall() == [
        (rec.event_id, "2026-11-22T23:55:00.000+00:00")]
    other.close()


def test_verdicts_and_debounce(outbox, clock):
    outbox.replace_roster([RosterEntry("04A1B2C3", "p1", "Siti"),
                           RosterEntry("04000001", "p2", "Budi", status="lost")])
    verdicts = []
    for uid, step in [("04A1B2C3", 0), ("04A1B2C3", 30), ("04000001", 1), ("04FFFFFF", 1),
                      ("04A1B2C3", 30), ("04A1B2C3", 1)]:
        clock.advance(step)
        verdicts.append(outbox.record_tap(uid, "r", clock.now(), 60).verdict)
    # 0 s accepted, 30 s duplicate, lost card blocked, unknown, 62 s after the first: accepted,
    # 1 s later: duplicate of that one.
    assert verdicts == ["accepted", "duplicate", "blocked", "unknown", "accepted", "duplicate"]
    assert [t.seq for t in outbox.taps()] == [1, 2, 3, 4, 5, 6]
    assert list(outbox.taps())[0].person_id == "p1"


def test_debounce_survives_restart(tmp_path, clock):
    with Outbox(tmp_path / "edge.db") as box:
        box.record_tap("04A1B2C3", "r", clock.now(), 60)
    clock.advance(10)
    with Outbox(tmp_path / "edge.db") as box:
        assert box.record_tap("04A1B2C3", "r", clock.now(), 60).verdict == "duplicate"


def test_taps_never_edited_and_kept_until_acked(outbox, clock):
    rec = outbox.record_tap("04A1B2C3", "r", clock.now(), 60)
    with pytest.raises(sqlite3.IntegrityError, match="never edited"):
        outbox.db.execute("UPDATE taps SET card_uid = '04000000'")
    with pytest.raises(sqlite3.IntegrityError, match="kept until the server acknowledged"):
        outbox.db.execute("DELETE FROM taps")
    outbox.db.conn.rollback()
    assert outbox.mark_acked([rec.seq]) == 1
    assert outbox.mark_acked([rec.seq]) == 0  # idempotent
    outbox.db.execute("DELETE FROM taps")  # allowed now
    outbox.db.conn.commit()


def test_prune_keeps_unacked_and_seq_never_reused(outbox, clock):
    old = [outbox.record_tap(f"04{i:06X}", "r", clock.now(), 0) for i in range(5)]
    outbox.mark_acked([r.seq for r in old[:3]])
    later = datetime(2026, 11, 23, tzinfo=WIB) + timedelta(days=40)
    assert outbox.prune(30, now=later) == 3
    assert [t.seq for t in outbox.taps()] == [4, 5]
    outbox.mark_acked([r.seq for r in old[3:]])
    assert outbox.prune(30, now=later) == 2
    assert list(outbox.taps()) == []
    assert outbox.record_tap("04AAAAAA", "r", clock.now(), 0).seq == 6


def test_prune_respects_retention(outbox, clock):
    rec = outbox.record_tap("04A1B2C3", "r", clock.now(), 0)
    outbox.mark_acked([rec.seq])
    assert outbox.prune(30, now=datetime(2026, 12, 1, tzinfo=WIB)) == 0
    assert len(list(outbox.taps())) == 1


def test_disk_full_stores_nothing_and_recovers(outbox, clock):
    for i in range(3):
        outbox.record_tap(f"04{i:06X}", "r", clock.now(), 0)
    pages = outbox.db.conn.execute("PRAGMA page_count").fetchone()[0]
    # SQLite's own limit makes every write fail with SQLITE_FULL, as a full disk does.
    outbox.db.execute(f"PRAGMA max_page_count = {pages}")
    failures = 0
    for i in range(200):
        try:
            outbox.record_tap(f"05{i:06X}", "r", clock.now(), 0)
        except StorageError as exc:
            assert "full" in str(exc)
            failures += 1
            break
    assert failures == 1
    stored = [t.seq for t in outbox.taps()]
    assert stored == list(range(1, len(stored) + 1))  # nothing half-written, no gap
    outbox.db.execute("PRAGMA max_page_count = 1073741823")
    assert outbox.record_tap("06000000", "r", clock.now(), 0).seq == len(stored) + 1


def test_corrupt_file_is_moved_aside_and_salvaged(tmp_path, clock, caplog):
    path = tmp_path / "edge.db"
    with Outbox(path) as box:
        for i in range(1200):
            box.record_tap(f"04{i:06X}", "r", clock.now(), 0)
        box.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        originals = {t.seq: t for t in box.taps()}
    # Damage a run of pages in the middle of the file.
    data = bytearray(path.read_bytes())
    page = 4096
    for p in range(10, 30):
        data[p * page:(p + 1) * page] = b"\xde\xad" * (page // 2)
    path.write_bytes(bytes(data))
    assert check_integrity(path) is not None
    with caplog.at_level("CRITICAL"):
        box = Outbox(path)
    try:
        assert box.recovered_from is not None and box.recovered_from.exists()
        assert "damaged" in caplog.text
        assert check_integrity(path) is None
        saved = list(box.taps())
        assert 0 < len(saved) < 1200  # some rows were on the damaged pages
        assert all(originals[t.seq] == t for t in saved)  # what was saved is intact
        # The sequence continues after the highest number ever issued.
        assert box.record_tap("04FFFFFF", "r", clock.now(), 0).seq == 1201
    finally:
        box.close()


def test_garbage_file_is_replaced(tmp_path, clock):
    path = tmp_path / "edge.db"
    path.write_bytes(b"this is not a database" * 100)
    with Outbox(path) as box:
        assert box.recovered_from is not None
        assert box.record_tap("04A1B2C3", "r", clock.now(), 0).seq == 1
    assert box.recovered_from.read_bytes().startswith(b"this is not")


def test_unacked_and_backlog_follow_acknowledgements(outbox, clock):
    recs = [outbox.record_tap(f"04{i:06X}", "r", clock.now(), 0) for i in range(6)]
    day = "2000-01-01T00:00:00.000+00:00"
    assert outbox.counts(day_start_utc=day)["backlog"] == 6
    outbox.mark_acked([recs[1].seq, recs[3].seq])  # out of order: the prefix is not acked yet
    assert [t.seq for t in outbox.taps(unacked_only=True)] == [1, 3, 5, 6]
    outbox.mark_acked([1, 3])
    assert outbox.meta("acked_through") == "4"
    assert [t.seq for t in outbox.taps(unacked_only=True)] == [5, 6]
    outbox.mark_acked([5, 6])
    assert outbox.meta("acked_through") == "6"
    counts = outbox.counts(day_start_utc=day)
    assert counts["backlog"] == 0 and counts["oldest_unsent_at"] is None
    new = outbox.record_tap("04AAAAAA", "r", clock.now(), 0)
    assert [t.seq for t in outbox.taps(unacked_only=True)] == [new.seq] == [7]


def test_debounce_index_stays_small(outbox, clock):
    for i in range(5003):
        outbox.record_tap(f"04{i:06X}", "r", clock.now(), 60)
        clock.advance(0.1)
    # Older than the window: forgotten; the card counts again.
    assert len(outbox._last_seen) <= 601  # 60 s at 10 taps/s
    assert outbox.record_tap("04000000", "r", clock.now(), 60).verdict == "unknown"
    assert outbox.record_tap(f"04{5002:06X}", "r", clock.now(), 60).verdict == "duplicate"


def test_salvage_keeps_operators_and_unsent_excuses_and_card_requests(tmp_path, clock):
    from datetime import date

    from edge import cards, excuses, operators

    path = tmp_path / "edge.db"
    with Outbox(path) as box:
        box.call(operators.add_operator, "operator", "kata-sandi-panjang-1")
        excuse = box.call(excuses.add_excuse, person_id="0051234567", kind="sakit",
                          date_from=date(2026, 11, 23), date_to=date(2026, 11, 24),
                          note="demam", created_by="operator")
        box.replace_roster([RosterEntry("04A1B2C3D4E5F6", "0051234567", "Siti Aminah")])
        box.call(cards.report_lost, "04A1B2C3D4E5F6", "operator")
        for i in range(1200):
            box.record_tap(f"04{i:06X}", "r", clock.now(), 0)
        box.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        requests_before = box.call(cards.unsent_requests)
    data = bytearray(path.read_bytes())
    page = 4096
    for p in range(24, 34):  # taps' pages (the first 18 are the tables' roots)
        data[p * page:(p + 1) * page] = b"\xde\xad" * (page // 2)
    path.write_bytes(bytes(data))
    assert check_integrity(path) is not None
    with Outbox(path) as box:
        assert box.recovered_from is not None
        assert [o.username for o in box.call(operators.list_operators)] == ["operator"]
        assert [e.excuse_id for e in box.call(excuses.unsent_excuses)] == [excuse.excuse_id]
        assert box.call(cards.unsent_requests) == requests_before
        assert 0 < len(list(box.taps())) < 1200
