import os
import stat

import pytest

from edge.outbox import TapRecord
from edge.sync import (Enrolment, SyncError, acknowledged_seqs, load_enrolment, roster_entries,
                       save_enrolment, tap_payload)


def tap(seq, event=None, device=None):
    return TapRecord(seq, event or f"e{seq}", device, "04A1B2C3", "2026-11-23T07:00:00.000+07:00",
                     "boot", 5, False, "gerbang", "accepted")


def test_payload_fills_device_id_for_taps_before_enrolment():
    assert tap_payload(tap(1), "dev_x")["device_id"] == "dev_x"
    assert tap_payload(tap(1, device="dev_y"), "dev_x")["device_id"] == "dev_y"
    assert set(tap_payload(tap(1), "d")) == {"event_id", "device_id", "seq", "card_uid",
                                             "tapped_at", "boot_id", "mono_ns", "clock_synced",
                                             "reader", "verdict"}


def test_only_named_events_with_known_status_are_acknowledged():
    sent = [tap(1), tap(2), tap(3), tap(4)]
    reply = {"results": [
        {"event_id": "e1", "status": "accepted"},
        {"event_id": "e2", "status": "duplicate"},
        {"event_id": "e3", "status": "conflict"},
        {"event_id": "e4", "status": "maybe"},        # unknown status: not acknowledged
        {"event_id": "e99", "status": "accepted"},    # never sent: ignored
        "garbage",
    ]}
    assert acknowledged_seqs(sent, reply) == [1, 2, 3]
    with pytest.raises(SyncError):
        acknowledged_seqs(sent, {"nope": 1})


def test_roster_entries_validate():
    entries = roster_entries([{"card_uid": "04:a1:b2:c3", "person_id": 51234567, "name": "Siti",
                               "status": "lost"}])
    assert entries[0].card_uid == "04A1B2C3" and entries[0].person_id == "51234567"
    assert entries[0].status == "lost"
    with pytest.raises(SyncError):
        roster_entries([{"card_uid": "04A1B2C3", "person_id": "x", "status": "stolen"}])
    with pytest.raises(SyncError, match="bad card"):
        roster_entries([{"card_uid": "not hex", "person_id": "x"}])
    with pytest.raises(SyncError, match="bad card"):
        roster_entries([{"person_id": "x"}])


def test_enrolment_token_file_is_private(tmp_path):
    info, token = tmp_path / "device.json", tmp_path / "device.token"
    assert load_enrolment(info, token) is None
    save_enrolment(Enrolment("dev_1", {"code": "20401234"}, "http://x", "now", token="s3cret"),
                   info, token)
    assert stat.S_IMODE(os.stat(token).st_mode) == 0o600
    assert "s3cret" not in info.read_text()
    loaded = load_enrolment(info, token)
    assert loaded.token == "s3cret" and loaded.device_id == "dev_1"
    assert "s3cret" not in repr(loaded)


class WithdrawalServer:
    """A stand-in for the client's one call: answers each withdrawal as told."""

    def __init__(self, answers):
        self.answers = answers
        self.bodies = []

    def push_withdrawals(self, items):
        self.bodies.append(items)
        return {"results": [{"excuse_id": i["excuse_id"], "status": self.answers(i)}
                            for i in items] + [{"excuse_id": "never-sent", "status": "withdrawn"},
                                               "garbage"]}


def test_only_withdrawals_the_reply_names_are_marked_sent(tmp_path):
    from datetime import date

    from edge import excuses
    from edge.clock import Clock
    from edge.outbox import Outbox
    from edge.sync import SyncReport, SyncWorker

    with Outbox(tmp_path / "edge.db") as outbox:
        made = [outbox.call(excuses.add_excuse, person_id=f"00512345{i:02d}", kind="izin",
                            date_from=date(2026, 11, 20), date_to=date(2026, 11, 20), note="",
                            created_by="guru") for i in range(3)]
        kept = outbox.call(excuses.add_excuse, person_id="0051234599", kind="sakit",
                           date_from=date(2026, 11, 20), date_to=date(2026, 11, 20), note="",
                           created_by="guru")
        for excuse in made:
            outbox.call(excuses.withdraw_excuse, excuse.excuse_id, withdrawn_by="guru")
        maybe = made[2].excuse_id
        server = WithdrawalServer(lambda i: "maybe" if i["excuse_id"] == maybe else
                                  "duplicate" if i["excuse_id"] == made[1].excuse_id
                                  else "withdrawn")
        worker = SyncWorker(outbox, server, device_id="dev_1", clock=Clock())
        report = SyncReport()
        with pytest.raises(SyncError, match="acknowledged 2 of 3 withdrawals"):
            worker.withdrawals_once(report)
        assert report.withdrawals_sent == 2
        assert server.bodies == [[e.payload() for e in made]]  # the whole excuses, not `kept`
        assert [e.excuse_id for e in outbox.call(excuses.unsent_withdrawals)] == [maybe]
        assert outbox.call(excuses.unsent_excuses) == [kept]
        assert "sent 2 excuse withdrawal(s)" in report.summary()
