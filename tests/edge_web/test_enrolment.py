"""The armed enrolment: the next unknown card is recorded first, then bound to the person."""

from __future__ import annotations

from edge.config import load_config
from edge.enrolment import CardEnrolment
from edge.people import Person, replace_people
from edge.service import EdgeService
from hardware.feedback import Feedback
from hardware.reader import FakeReader
from tests.edge_process import write_config
from tests.edge_web.conftest import ROSTER, fill_roster


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_enrolment_state_runs_out():
    clock = Ticking()
    bound = []
    enrolment = CardEnrolment(lambda uid, person, by: bound.append((uid, person, by)),
                              monotonic=clock)
    assert enrolment.state() == {"outcome": None}
    state = enrolment.arm("0051234570", "Eka Putri", "guru", seconds=60)
    assert state["outcome"] == "armed" and state["seconds_left"] == 60
    clock.now += 45
    assert enrolment.state()["seconds_left"] == 15
    clock.now += 16
    assert enrolment.state()["outcome"] == "expired"
    assert enrolment.cancel()["outcome"] == "expired"
    again = enrolment.arm("0051234570", "Eka Putri", "guru")
    assert again["ticket"] != state["ticket"]
    assert enrolment.cancel("another-ticket")["outcome"] == "armed"
    assert enrolment.cancel(again["ticket"])["outcome"] == "cancelled"
    assert bound == []


def test_next_unknown_tap_is_recorded_then_bound_and_shown_accepted(tmp_path):
    config = load_config(write_config(tmp_path, extra="[recorder]\ndebounce_seconds = 60\n"),
                         environ={})
    fill_roster(config.database_path, ROSTER)
    reader = FakeReader("gerbang")
    feedback = Feedback()
    service = EdgeService(config, readers=[reader], feedback=feedback)
    service.start()
    try:
        replace_people(service.outbox.db, [Person("0051234570", "Eka Putri", "student",
                                                  "VII-B")])
        reader.tap("04C0FFEE")                       # unknown, nobody is waiting for it
        service.enrolment.arm("0051234570", "Eka Putri", "guru")
        reader.tap("04A1B2C3D4E5F6")                 # a known card is not taken...
        assert "already in the roster" in service.enrolment.state()["message"]
        reader.tap("04C0FFEE")                       # ...the unknown one is (a repeat, too)
        state = service.enrolment.state()
        assert state["outcome"] == "bound" and state["card_uid"] == "04C0FFEE"
        reader.tap("04C0FFEF")                       # the next unknown card is not bound
        assert service.outbox.lookup("04C0FFEF") is None
        assert feedback.history == ["unknown_card", "accepted", "accepted", "unknown_card"]
        taps = list(service.outbox.taps())
        # The taps stay as recorded: the enrolment tap was a repeat of an unknown card.
        assert [(t.card_uid, t.verdict) for t in taps] == [
            ("04C0FFEE", "unknown"), ("04A1B2C3D4E5F6", "accepted"),
            ("04C0FFEE", "duplicate"), ("04C0FFEF", "unknown")]
        entry = service.outbox.lookup("04C0FFEE")
        assert (entry.person_id, entry.name, entry.group_name, entry.status) == (
            "0051234570", "Eka Putri", "VII-B", "active")
        (request,) = service.outbox.db.execute(
            "SELECT kind, card_uid, person_id, created_by, sent_at FROM card_requests").fetchall()
        assert request == ("bind", "04C0FFEE", "0051234570", "guru", None)
    finally:
        service.stop()


def test_a_failing_binding_leaves_the_tap_as_recorded(tmp_path):
    config = load_config(write_config(tmp_path), environ={})
    reader = FakeReader("gerbang")
    feedback = Feedback()
    service = EdgeService(config, readers=[reader], feedback=feedback)
    service.start()
    try:
        service.enrolment.arm("no-such-person", "?", "guru")
        reader.tap("04C0FFEE")
        state = service.enrolment.state()
        assert state["outcome"] == "armed" and "no person" in state["message"]
        assert feedback.history == ["unknown_card"]
        assert service.outbox.lookup("04C0FFEE") is None
    finally:
        service.stop()
