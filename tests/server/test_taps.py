"""POST /taps: idempotency, conflicts, all-or-nothing, missing seq, limits."""

import json
import uuid

import pytest

from server import ingest
from server.ingest import update_missing
from tests.server.helpers import count, enroll_device, make_tap, rows

URL = "/api/v1/taps"


def push(client, device, taps, clock=None, **kw):
    body = {"taps": taps}
    if clock is not None:
        body["clock"] = clock
    return client.post(URL, json=body, headers=device.headers, **kw)


def statuses(reply):
    return [r["status"] for r in reply.json["results"]]


def test_batch_is_accepted_and_stored(client, engine, device):
    taps = [make_tap(i, device.device_id) for i in (1, 2, 3)]
    taps[1]["device_id"] = None  # recorded before enrolment
    del taps[2]["device_id"]
    reply = push(client, device, taps)
    assert reply.status_code == 200
    assert statuses(reply) == ["accepted"] * 3
    assert [r["event_id"] for r in reply.json["results"]] == [t["event_id"] for t in taps]
    assert reply.json["highest_seq"] == 3 and reply.json["missing_seq"] == []
    assert reply.json["server_time"].endswith("Z")
    stored = rows(engine, "SELECT * FROM taps ORDER BY seq")
    assert [r["device_id"] for r in stored] == [device.device_id] * 3
    first = stored[0]
    assert first["tapped_at"] == "2026-11-23T07:00:00.000+07:00"
    assert first["card_uid"] == "04A1B2C3D4E5F6" and first["reader"] == "gerbang"
    assert first["clock_status"] == "verified"  # synced, no anchor


def test_same_batch_twice_changes_nothing(client, engine, device):
    taps = [make_tap(i, device.device_id) for i in range(1, 6)]
    assert statuses(push(client, device, taps)) == ["accepted"] * 5
    before = rows(engine, "SELECT * FROM taps ORDER BY seq")
    again = push(client, device, taps)
    assert statuses(again) == ["duplicate"] * 5
    assert rows(engine, "SELECT * FROM taps ORDER BY seq") == before
    assert count(engine, "tap_conflicts") == 0


def test_overlapping_batches(client, engine, device):
    taps = [make_tap(i, device.device_id) for i in range(1, 8)]
    assert statuses(push(client, device, taps[:4])) == ["accepted"] * 4
    assert statuses(push(client, device, taps[2:])) == ["duplicate"] * 2 + ["accepted"] * 3
    assert count(engine, "taps") == 7


def test_repeats_inside_one_batch(client, engine, device):
    a = make_tap(1, device.device_id)
    b = make_tap(1, device.device_id)  # same seq, another event: a conflict
    c = dict(a, card_uid="04AAAAAA")    # same event_id, other content: a conflict
    reply = push(client, device, [a, dict(a), b, c])
    assert statuses(reply) == ["accepted", "duplicate", "conflict", "conflict"]
    assert count(engine, "taps") == 1 and count(engine, "tap_conflicts") == 2


@pytest.mark.parametrize("change, reason", [
    ({"card_uid": "04FFFFFF"}, "event_id already stored with other content"),
    ({"event_id": "another-event"}, "seq 1 already stored as event_id"),
])
def test_conflict_is_quarantined_not_stored(client, engine, device, change, reason):
    tap = make_tap(1, device.device_id)
    push(client, device, [tap])
    changed = dict(tap, **change)
    reply = push(client, device, [changed])
    assert statuses(reply) == ["conflict"]
    assert count(engine, "taps") == 1
    quarantined = rows(engine, "SELECT * FROM tap_conflicts")
    assert len(quarantined) == 1 and quarantined[0]["reason"].startswith(reason)
    raw = quarantined[0]["raw"]
    assert (json.loads(raw) if isinstance(raw, str) else raw) == changed
    # Pushing the same conflict again answers the same and keeps one quarantine row.
    assert statuses(push(client, device, [changed])) == ["conflict"]
    assert count(engine, "tap_conflicts") == 1


def test_event_id_of_another_device_is_a_conflict(client, engine, device):
    other = enroll_device(client, engine, device.site, hardware="pi-other")
    tap = make_tap(1)
    assert statuses(push(client, other, [tap])) == ["accepted"]
    assert statuses(push(client, device, [tap])) == ["conflict"]
    assert rows(engine, "SELECT device_id FROM taps") == [{"device_id": other.device_id}]


def test_foreign_device_id_is_403_and_nothing_is_stored(client, engine, device):
    taps = [make_tap(1, device.device_id), make_tap(2, "dev_someoneelse")]
    clock = {"boot_id": "boot-1", "mono_ns": 10**10, "wall_time": "2026-11-23T07:00:00+07:00"}
    reply = push(client, device, taps, clock)
    assert reply.status_code == 403
    assert reply.json["error"]["code"] == "forbidden"
    assert "taps[1].device_id" in reply.json["error"]["message"]
    assert count(engine, "taps") == 0 and count(engine, "clock_anchors") == 0


def test_batch_is_all_or_nothing(client, engine, device, monkeypatch):
    clock = {"boot_id": "boot-1", "mono_ns": 10**11, "wall_time": "2026-11-23T07:00:00+07:00"}

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    # Fails after the anchor and the taps were written, before the device update.
    monkeypatch.setattr(ingest, "update_missing", broken)
    reply = push(client, device, [make_tap(i, device.device_id) for i in range(1, 4)], clock)
    assert reply.status_code == 500
    assert reply.json["error"]["code"] == "internal_error"
    assert count(engine, "taps") == 0 and count(engine, "clock_anchors") == 0
    assert rows(engine, "SELECT highest_seq FROM devices") == [{"highest_seq": 0}]
    monkeypatch.undo()
    assert statuses(push(client, device, [make_tap(1, device.device_id)])) == ["accepted"]


def test_missing_seq_ranges(client, device):
    def seqs(*numbers):
        return push(client, device, [make_tap(n, device.device_id) for n in numbers]).json

    reply = seqs(3, 4, 9)
    assert reply["missing_seq"] == [[1, 2], [5, 8]] and reply["highest_seq"] == 9
    reply = seqs(1, 6)
    assert reply["missing_seq"] == [[2, 2], [5, 5], [7, 8]]
    reply = seqs(2, 5, 7, 8, 10)
    assert reply["missing_seq"] == [] and reply["highest_seq"] == 10


@pytest.mark.parametrize("missing, highest, received, expected", [
    ([], 0, [1, 2, 3], ([], 3)),
    ([], 0, [5], ([[1, 4]], 5)),
    ([[1, 4]], 5, [2], ([[1, 1], [3, 4]], 5)),
    ([[1, 4]], 5, [1, 2, 3, 4], ([], 5)),
    ([[2, 3]], 5, [9, 7], ([[2, 3], [6, 6], [8, 8]], 9)),
    ([[2, 3]], 5, [], ([[2, 3]], 5)),
    ([], 10, [4], ([], 10)),  # a seq received again
])
def test_update_missing(missing, highest, received, expected):
    assert update_missing(missing, highest, received) == expected


def test_more_than_1000_taps_is_413(client, engine, device):
    taps = [make_tap(i, device.device_id) for i in range(1, 1002)]
    reply = push(client, device, taps)
    assert reply.status_code == 413 and reply.json["error"]["code"] == "too_large"
    assert count(engine, "taps") == 0


def test_1000_taps_are_fine(client, engine, device):
    taps = [make_tap(i, device.device_id) for i in range(1, 1001)]
    assert statuses(push(client, device, taps)) == ["accepted"] * 1000
    assert count(engine, "taps") == 1000


def test_body_over_the_limit_is_413(app, client, device):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    taps = [make_tap(i, device.device_id) for i in range(1, 200)]
    reply = push(client, device, taps)
    assert reply.status_code == 413
    assert reply.json["error"]["code"] == "too_large"
    assert "10000 bytes" in reply.json["error"]["message"]


@pytest.mark.parametrize("body", [b"{", b"", b"\xff\xfe{}", b"[1,]", b"{\"taps\": NaN}",
                                  b"{\"taps\": [1e999]}", b"[" * 5000 + b"]" * 5000,
                                  b"{\"seq\": " + b"9" * 5000 + b"}"])
def test_malformed_json_is_400(client, device, body):
    reply = client.post(URL, data=body, headers={**device.headers,
                                                 "Content-Type": "application/json"})
    assert reply.status_code == 400, reply.json
    assert reply.json["error"]["code"] == "bad_json"


@pytest.mark.parametrize("change, path", [
    ({"seq": -1}, "taps[0].seq"),
    ({"seq": 0}, "taps[0].seq"),
    ({"seq": 2**63}, "taps[0].seq"),
    ({"seq": "1"}, "taps[0].seq"),
    ({"seq": 1.5}, "taps[0].seq"),
    ({"mono_ns": -5}, "taps[0].mono_ns"),
    ({"card_uid": "04a1b2c3"}, "taps[0].card_uid"),
    ({"card_uid": "04A1B2"}, "taps[0].card_uid"),
    ({"card_uid": "04A1B2C3\n"}, "taps[0].card_uid"),
    ({"tapped_at": "2026-11-23T07:00:00"}, "taps[0].tapped_at"),
    ({"tapped_at": "2026-02-30T07:00:00+07:00"}, "taps[0].tapped_at"),
    ({"tapped_at": "0001-01-01T00:00:00+07:00"}, "taps[0].tapped_at"),
    ({"tapped_at": "２０２６-11-23T07:00:00+07:00"}, "taps[0].tapped_at"),
    ({"verdict": "maybe"}, "taps[0].verdict"),
    ({"clock_synced": "yes"}, "taps[0].clock_synced"),
    ({"reader": "x" * 65}, "taps[0].reader"),
    ({"reader": "a\x00b"}, "taps[0].reader"),
    ({"reader": "\ud800"}, "taps[0].reader"),
    ({"event_id": ""}, "taps[0].event_id"),
    ({"boot_id": "boot\n"}, "taps[0].boot_id"),
    ({"event_id": None}, "taps[0].event_id"),
])
def test_schema_errors_are_400_with_the_path(client, engine, device, change, path):
    tap = make_tap(1, device.device_id)
    tap.update(change)
    reply = push(client, device, [tap])
    assert reply.status_code == 400, reply.json
    error = reply.json["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["path"] == path
    assert error["message"].startswith(path + ": ")
    assert count(engine, "taps") == 0


@pytest.mark.parametrize("body, path", [
    ({}, ""),
    ([], ""),
    ({"taps": []}, "taps"),
    ({"taps": "x"}, "taps"),
    ({"taps": [{}]}, "taps[0]"),
    ({"taps": [make_tap(1)], "clock": {"boot_id": "b", "mono_ns": 1}}, "clock"),
    ({"taps": [make_tap(1)], "clock": {"boot_id": "b", "mono_ns": 1,
                                       "wall_time": "yesterday"}}, "clock.wall_time"),
])
def test_body_shape_errors(client, device, body, path):
    reply = client.post(URL, json=body, headers=device.headers)
    assert reply.status_code == 400
    assert reply.json["error"]["details"][0]["path"] == path


def test_unknown_fields_are_ignored(client, engine, device):
    tap = make_tap(1, device.device_id, future_field={"x": 1})
    assert statuses(push(client, device, [tap])) == ["accepted"]


def test_last_seen_and_clock_offset_from_the_batch_clock(client, engine, device):
    clock = {"boot_id": "boot-1", "mono_ns": 10**11, "wall_time": "2019-01-01T07:00:00+07:00"}
    push(client, device, [make_tap(1, device.device_id)], clock)
    dev = rows(engine, "SELECT last_seen_at, clock_offset_ms FROM devices")[0]
    assert dev["last_seen_at"] is not None
    assert dev["clock_offset_ms"] < -7 * 365 * 86400 * 1000  # years behind


def test_event_ids_are_unique_across_pushes_of_many_taps(client, engine, device):
    # A larger mixed batch: 300 new, 200 duplicates, 1 conflict, in one request.
    first = [make_tap(i, device.device_id) for i in range(1, 201)]
    push(client, device, first)
    later = first + [make_tap(i, device.device_id) for i in range(201, 501)]
    later.append(make_tap(5, device.device_id, event_id=str(uuid.uuid4())))
    reply = push(client, device, later)
    got = statuses(reply)
    assert got.count("duplicate") == 200 and got.count("accepted") == 300
    assert got[-1] == "conflict"
    assert count(engine, "taps") == 500
