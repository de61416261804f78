"""Two workers (two apps, two engines) pushing the same taps at the same moment."""

import threading

from server.app import create_app
from tests.server.helpers import count, make_tap

ROUNDS = 4


def push_together(clients, bodies, headers):
    barrier = threading.Barrier(len(clients))
    replies = [None] * len(clients)

    def worker(i):
        barrier.wait()
        replies[i] = clients[i].post("/api/v1/taps", json=bodies[i], headers=headers)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies


def test_identical_batches_at_once_are_stored_once(database_url, engine, device):
    workers = [create_app({"DATABASE_URL": database_url}) for _ in range(2)]
    try:
        clients = [w.test_client() for w in workers]
        seq = 0
        for _ in range(ROUNDS):
            batch = {"taps": [make_tap(seq + i, device.device_id) for i in range(1, 201)],
                     "clock": {"boot_id": "boot-1", "mono_ns": 10**12,
                               "wall_time": "2026-11-23T07:00:00+07:00"}}
            seq += 200
            a, b = push_together(clients, [batch, batch], device.headers)
            assert a.status_code == b.status_code == 200, (a.json, b.json)
            for ra, rb in zip(a.json["results"], b.json["results"]):
                assert sorted([ra["status"], rb["status"]]) == ["accepted", "duplicate"]
            assert a.json["missing_seq"] == b.json["missing_seq"] == []
        assert count(engine, "taps") == ROUNDS * 200
        assert count(engine, "tap_conflicts") == 0
    finally:
        for w in workers:
            w.extensions["attendance"].engine.dispose()


def test_overlapping_batches_at_once(database_url, engine, device):
    workers = [create_app({"DATABASE_URL": database_url}) for _ in range(3)]
    try:
        clients = [w.test_client() for w in workers]
        taps = [make_tap(i, device.device_id) for i in range(1, 301)]
        bodies = [{"taps": taps[0:200]}, {"taps": taps[100:300]}, {"taps": taps[50:250]}]
        replies = push_together(clients, bodies, device.headers)
        assert all(r.status_code == 200 for r in replies)
        accepted = [r["event_id"] for reply in replies for r in reply.json["results"]
                    if r["status"] == "accepted"]
        assert sorted(accepted) == sorted(t["event_id"] for t in taps)  # each exactly once
        assert count(engine, "taps") == 300
        final = clients[0].post("/api/v1/taps", json={"taps": taps[:1]}, headers=device.headers)
        assert final.json["highest_seq"] == 300 and final.json["missing_seq"] == []
    finally:
        for w in workers:
            w.extensions["attendance"].engine.dispose()
