import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from edge.clock import FixedClock
from edge.outbox import Outbox
from edge.recorder import Recorder
from edge.rules import RosterEntry
from hardware.feedback import Feedback
from hardware.reader import CardTap, FakeReader

WIB = timezone(timedelta(hours=7))


class CommitCheckingFeedback(Feedback):
    """Null feedback that, at the moment of each signal, looks at the database
    from a separate connection: whatever the person is told must already be
    committed."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.visible_at_signal: list[int] = []

    def _tap(self, name, verdict):
        conn = sqlite3.connect(self.path)
        self.visible_at_signal.append(conn.execute("SELECT count(*) FROM taps").fetchone()[0])
        conn.close()
        super()._tap(name, verdict)


@pytest.fixture
def setup(tmp_path):
    outbox = Outbox(tmp_path / "edge.db")
    outbox.replace_roster([RosterEntry("04A1B2C3", "p1", "Siti"),
                           RosterEntry("04B00000", "p2", "Budi", status="blocked")])
    feedback = CommitCheckingFeedback(outbox.path)
    clock = FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=WIB))
    recorded = []
    recorder = Recorder(outbox, feedback=feedback, clock=clock, debounce_seconds=60,
                        when_recorded=recorded.append)
    reader = FakeReader("gerbang", when_tapped=recorder.handle).open()
    yield outbox, feedback, clock, recorder, reader, recorded
    outbox.close()


def test_every_verdict_signalled_after_commit(setup):
    outbox, feedback, clock, recorder, reader, recorded = setup
    for uid in ["04A1B2C3", "04a1b2c3", "04B00000", "04C0FFEE", "08123456", "04:A1:B2:C3"]:
        reader.tap(uid)
        clock.advance(1)
    assert feedback.history == ["accepted", "duplicate", "blocked_card", "unknown_card",
                                "random_uid", "duplicate"]
    # At each recorded signal the row was already visible to another connection.
    assert feedback.visible_at_signal == [1, 2, 3, 4, 4, 5]
    taps = list(outbox.taps())
    assert [t.verdict for t in taps] == ["accepted", "duplicate", "blocked", "unknown", "duplicate"]
    assert all(t.reader == "gerbang" for t in taps)
    assert [r.seq for r in recorded] == [1, 2, 3, 4, 5]
    assert recorder.counters["random"] == 1


def test_storage_error_signals_error_and_keeps_serving(setup):
    outbox, feedback, clock, recorder, reader, recorded = setup
    reader.tap("04A1B2C3")
    pages = outbox.db.conn.execute("PRAGMA page_count").fetchone()[0]
    outbox.db.execute(f"PRAGMA max_page_count = {pages}")
    recorder.storage_retries = 0
    results = []
    for i in range(100):
        clock.advance(61)
        results.append(recorder.handle(CardTap(f"04{i:06X}", "gerbang")))
        if results[-1].verdict == "error":
            break
    assert results[-1].verdict == "error"
    assert feedback.history[-1] == "error" and recorder.last_error
    outbox.db.execute("PRAGMA max_page_count = 1073741823")
    clock.advance(61)
    reader.tap("04A1B2C3")
    assert feedback.history[-1] == "accepted" and recorder.last_error is None


def test_storage_error_retried_on_a_fresh_connection(setup):
    outbox, feedback, clock, recorder, reader, recorded = setup
    pages = outbox.db.conn.execute("PRAGMA page_count").fetchone()[0]
    # The limit lives on this connection only; the retry reopens the database.
    outbox.db.execute(f"PRAGMA max_page_count = {pages}")
    verdicts = []
    for i in range(100):
        clock.advance(61)
        verdicts.append(recorder.handle(CardTap(f"04{i:06X}", "gerbang")).verdict)
    assert "error" not in verdicts
    assert len(list(outbox.taps())) == 100
