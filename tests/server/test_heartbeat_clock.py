"""Heartbeats (fleet health, anchors) and clock correction end to end."""

import json
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from server.db import utcnow
from server.schema import clock_anchors
from tests.server.helpers import count, make_tap, rows

S = 1_000_000_000


def as_utc(value):
    if isinstance(value, str):  # SQLite through a raw text query
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def beat(**fields):
    body = {"boot_id": "boot-1", "mono_ns": 1000 * S, "wall_time": "2026-11-23T07:00:00.000+07:00",
            "clock_synced": True, "backlog": 12, "oldest_unsent_at": "2026-11-23T06:55:00.000+07:00",
            "reader_ok": False,
            "readers": [{"name": "gerbang", "driver": "pcsc", "connected": False,
                         "error": "pcscd not running"}],
            "versions": {"software": "0.1.0", "os": "Debian 12"}}
    body.update(fields)
    return body


def test_heartbeat_updates_the_device_and_makes_an_anchor(app, client, engine, device):
    before = utcnow()
    reply = client.post("/api/v1/heartbeat", json=beat(), headers=device.headers)
    assert reply.status_code == 200
    assert reply.json["heartbeat_seconds"] == app.config["HEARTBEAT_SECONDS"] == 60
    dev = rows(engine, "SELECT * FROM devices")[0]
    assert dev["boot_id"] == "boot-1" and dev["backlog"] == 12
    assert dev["reader_ok"] in (False, 0)
    readers = dev["readers"] if isinstance(dev["readers"], list) else json.loads(dev["readers"])
    assert readers[0]["error"] == "pcscd not running"
    assert as_utc(dev["last_seen_at"]) >= before
    assert abs(dev["clock_offset_ms"]) < 10**12
    anchor = rows(engine, "SELECT * FROM clock_anchors")
    assert len(anchor) == 1
    assert anchor[0]["boot_id"] == "boot-1" and anchor[0]["mono_ns"] == 1000 * S
    assert anchor[0]["source"] == "heartbeat"


def test_minimal_heartbeat(client, device):
    reply = client.post("/api/v1/heartbeat", headers=device.headers,
                        json={"boot_id": "b", "mono_ns": 0, "wall_time": "2026-11-23T00:00:00Z"})
    assert reply.status_code == 200


def test_anchors_are_thinned_within_a_boot(app, client, engine, device):
    app.config["ANCHOR_INTERVAL_SECONDS"] = 300
    for mono in (1000, 1060, 1299, 1300, 1301):
        client.post("/api/v1/heartbeat", json=beat(mono_ns=mono * S), headers=device.headers)
    client.post("/api/v1/heartbeat", json=beat(boot_id="boot-2", mono_ns=5 * S),
                headers=device.headers)
    got = [(r["boot_id"], r["mono_ns"] // S) for r in
           rows(engine, "SELECT boot_id, mono_ns FROM clock_anchors ORDER BY id")]
    assert got == [("boot-1", 1000), ("boot-1", 1300), ("boot-2", 5)]


def test_device_clock_in_2019_is_corrected_from_the_anchor(client, engine, device):
    # The Pi booted offline with its clock in 2019; taps 100 s and 40 s before it sends.
    wrong = datetime(2019, 1, 1, 7, 0, tzinfo=timezone(timedelta(hours=7)))
    taps = [make_tap(1, device.device_id, tapped_at=wrong.isoformat(timespec="milliseconds"),
                     mono_ns=900 * S, clock_synced=False),
            make_tap(2, device.device_id,
                     tapped_at=(wrong + timedelta(seconds=60)).isoformat(timespec="milliseconds"),
                     mono_ns=960 * S, clock_synced=False)]
    clock = {"boot_id": "boot-1", "mono_ns": 1000 * S,
             "wall_time": (wrong + timedelta(seconds=100)).isoformat(), "clock_synced": False}
    before = utcnow()
    reply = client.post("/api/v1/taps", json={"clock": clock, "taps": taps}, headers=device.headers)
    after = utcnow()
    assert reply.status_code == 200
    stored = rows(engine, "SELECT seq, tapped_at, corrected_at, clock_status, clock_anchor_id "
                          "FROM taps ORDER BY seq")
    for row, seconds_before in zip(stored, (100, 40)):
        corrected = as_utc(row["corrected_at"])
        assert before - timedelta(seconds=seconds_before) <= corrected
        assert corrected <= after - timedelta(seconds=seconds_before)
        assert row["clock_status"] == "corrected" and row["clock_anchor_id"] is not None
    assert stored[0]["tapped_at"] == "2019-01-01T07:00:00.000+07:00"  # kept as sent


def test_unanchored_taps_are_corrected_when_an_anchor_arrives(client, engine, device):
    wrong = "2019-01-01T07:00:00.000+07:00"
    taps = [make_tap(i, device.device_id, tapped_at=wrong, boot_id="old-boot",
                     mono_ns=i * 10 * S, clock_synced=False) for i in (1, 2)]
    synced = make_tap(3, device.device_id, boot_id="old-boot", mono_ns=30 * S, clock_synced=True,
                      tapped_at="2026-11-23T07:00:00.000+07:00")
    client.post("/api/v1/taps", json={"taps": [*taps, synced]}, headers=device.headers)
    before = rows(engine, "SELECT clock_status, clock_anchor_id FROM taps ORDER BY seq")
    assert [r["clock_status"] for r in before] == ["unverified", "unverified", "verified"]
    assert all(r["clock_anchor_id"] is None for r in before)

    reply = client.post("/api/v1/heartbeat", json=beat(boot_id="old-boot", mono_ns=40 * S),
                        headers=device.headers)
    assert reply.status_code == 200
    after = rows(engine, "SELECT seq, corrected_at, clock_status, clock_anchor_id FROM taps "
                         "ORDER BY seq")
    assert [r["clock_status"] for r in after] == ["corrected", "corrected", "corrected"]
    assert all(r["clock_anchor_id"] is not None for r in after)
    gap = as_utc(after[1]["corrected_at"]) - as_utc(after[0]["corrected_at"])
    assert gap == timedelta(seconds=10)
    assert abs(as_utc(after[2]["corrected_at"]) - utcnow()) < timedelta(seconds=30)


def test_nearest_anchor_is_used(client, engine, device):
    now = utcnow()
    dev = device.device_id
    with engine.begin() as conn:
        for mono, when in ((100, now - timedelta(hours=1)), (5000, now)):
            conn.execute(sa.insert(clock_anchors).values(
                device_id=dev, boot_id="boot-1", mono_ns=mono * S, device_wall=when,
                device_synced=False, server_time=when, source="heartbeat"))
    tap = make_tap(1, dev, mono_ns=4990 * S, clock_synced=False)
    client.post("/api/v1/taps", json={"taps": [tap]}, headers=device.headers)
    stored = rows(engine, "SELECT corrected_at FROM taps")[0]
    assert as_utc(stored["corrected_at"]) == now - timedelta(seconds=10)


def test_heartbeat_validation(client, engine, device):
    reply = client.post("/api/v1/heartbeat", json=beat(backlog=-1, readers=[{"name": 5}]),
                        headers=device.headers)
    assert reply.status_code == 400
    paths = [d["path"] for d in reply.json["error"]["details"]]
    assert paths == ["backlog", "readers[0].name"]
    assert count(engine, "clock_anchors") == 0
