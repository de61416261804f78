"""Device lifecycle on the server: replacement codes, token rotation (docs/OPERATIONS.md)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from server import devices
from server.db import utcnow
from server.schema import claim_codes
from tests.server.helpers import count, enroll_device, make_tap, rows

ENROLL = "/api/v1/devices/enroll"
TOKEN = "/api/v1/devices/token"
TAPS = "/api/v1/taps"
CODE = re.compile(r"\b[A-Z0-9]{4}(?:-[A-Z0-9]{4}){2}\b")


def replacement_code(engine, device_id: str, hours: float = 72, **kw) -> str:
    with engine.begin() as conn:
        return devices.create_replacement_code(conn, device_id, hours=hours, **kw).code


def push(client, device, taps):
    return client.post(TAPS, json={"taps": taps}, headers=device.headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hash_of(token: str) -> str:
    return devices.sha256_hex(token)


def device_row(engine, device_id):
    return rows(engine, "SELECT * FROM devices WHERE device_id = :d", d=device_id)[0]


# -- replacement ---------------------------------------------------------------------------
def test_replacement_keeps_the_device_and_switches_the_token(client, engine, device, caplog):
    assert push(client, device, [make_tap(s, device.device_id) for s in (1, 2, 3)]).status_code == 200
    code = replacement_code(engine, device.device_id)
    # Until the new board enrols, the old token still works (the old Pi may still sync).
    assert push(client, device, [make_tap(4, device.device_id)]).status_code == 200
    caplog.set_level("INFO")
    reply = client.post(ENROLL, json={"claim_code": code, "hardware_id": "pi-new-board",
                                      "outbox": {"device_id": device.device_id, "last_seq": 4}})
    assert reply.status_code == 200, reply.json
    body = reply.json
    assert body["device_id"] == device.device_id
    assert body["replaced"] is True and body["highest_seq"] == 4
    assert body["site"]["code"] == device.site
    assert body["token"] != device.token
    stored = device_row(engine, device.device_id)
    assert stored["hardware_id"] == "pi-new-board"
    assert stored["token_hash"] == hash_of(body["token"])
    assert count(engine, "devices") == 1
    assert "hardware_id pi-test -> pi-new-board" in caplog.text
    assert body["token"] not in caplog.text
    # The old token is refused at once; the new one pushes as the same device.
    old = push(client, device, [make_tap(5, device.device_id)])
    assert old.status_code == 401 and old.json["error"]["code"] == "unauthorized"
    new = client.post(TAPS, json={"taps": [make_tap(5, device.device_id)]},
                      headers=bearer(body["token"]))
    assert new.status_code == 200 and new.json["results"][0]["status"] == "accepted"
    assert new.json["missing_seq"] == [] and new.json["highest_seq"] == 5


def test_replacement_code_is_single_use(client, engine, device):
    code = replacement_code(engine, device.device_id)
    assert client.post(ENROLL, json={"claim_code": code, "hardware_id": "b1"}).status_code == 200
    first = device_row(engine, device.device_id)["token_hash"]
    again = client.post(ENROLL, json={"claim_code": code, "hardware_id": "b2"})
    assert again.status_code == 403 and again.json["error"]["code"] == "claim_code_invalid"
    assert "already used" in again.json["error"]["message"]
    stored = device_row(engine, device.device_id)
    assert stored["token_hash"] == first and stored["hardware_id"] == "b1"


def test_expired_replacement_code_changes_nothing(client, engine, device):
    code = replacement_code(engine, device.device_id)
    with engine.begin() as conn:
        conn.execute(sa.update(claim_codes).where(claim_codes.c.device_id == device.device_id)
                     .values(expires_at=utcnow() - timedelta(seconds=1)))
    reply = client.post(ENROLL, json={"claim_code": code, "hardware_id": "b1"})
    assert reply.status_code == 403 and "expired" in reply.json["error"]["message"]
    assert push(client, device, [make_tap(1, device.device_id)]).status_code == 200


def test_device_revoked_after_the_code_was_made(client, engine, device):
    code = replacement_code(engine, device.device_id)
    with engine.begin() as conn:
        devices.revoke(conn, device.device_id)
    reply = client.post(ENROLL, json={"claim_code": code, "hardware_id": "b1"})
    assert reply.status_code == 403 and "revoked" in reply.json["error"]["message"]
    assert device_row(engine, device.device_id)["hardware_id"] == "pi-test"


@pytest.mark.parametrize("outbox, status", [
    (None, 200),                                   # an older edge says nothing
    ({"device_id": None, "last_seq": 0}, 200),     # a fresh board, empty database
    ({"device_id": "SAME", "last_seq": 2}, 200),   # a stale copy of the old board's data
    ({"device_id": "SAME", "last_seq": 90}, 200),  # a copy with unsent taps
    ({"device_id": None, "last_seq": 3}, 409),     # test taps recorded before enrolment
    ({"device_id": "dev_other", "last_seq": 1}, 409),  # a spare board used elsewhere
])
def test_outbox_of_the_new_board_is_checked(client, engine, device, outbox, status):
    push(client, device, [make_tap(s, device.device_id) for s in range(1, 11)])
    if outbox and outbox["device_id"] == "SAME":
        outbox = {**outbox, "device_id": device.device_id}
    code = replacement_code(engine, device.device_id)
    body = {"claim_code": code, "hardware_id": "b1"}
    if outbox is not None:
        body["outbox"] = outbox
    reply = client.post(ENROLL, json=body)
    assert reply.status_code == status, reply.json
    if status == 409:
        assert reply.json["error"]["code"] == "outbox_mismatch"
        assert "move its data directory aside" in reply.json["error"]["message"]
        # Nothing changed and the code is still good (with an emptied data directory).
        assert push(client, device, [make_tap(11, device.device_id)]).status_code == 200
        retry = client.post(ENROLL, json={"claim_code": code, "hardware_id": "b1",
                                          "outbox": {"device_id": None, "last_seq": 0}})
        assert retry.status_code == 200 and retry.json["highest_seq"] == 11
    else:
        assert reply.json["highest_seq"] == 10


def test_a_fresh_board_continues_above_the_highest_seq(client, engine, device):
    """The edge numbers on from highest_seq: accepted, no gap. Reusing a seq would conflict."""
    for first in (1, 4001):  # the old board's taps 1001-4000 never arrived
        assert push(client, device, [make_tap(s, device.device_id)
                                     for s in range(first, first + 1000)]).status_code == 200
    reply = client.post(ENROLL, json={"claim_code": replacement_code(engine, device.device_id),
                                      "hardware_id": "fresh",
                                      "outbox": {"device_id": None, "last_seq": 0}})
    token = reply.json["token"]
    assert reply.json["highest_seq"] == 5000
    fresh = [make_tap(s, device.device_id, boot_id="boot-new", mono_ns=s * 10**6)
             for s in (5001, 5002)]
    got = client.post(TAPS, json={"taps": fresh}, headers=bearer(token)).json
    assert [r["status"] for r in got["results"]] == ["accepted", "accepted"]
    assert got["highest_seq"] == 5002 and got["missing_seq"] == [[1001, 4000]]
    # What the floor prevents: a new tap under a seq the server already holds is never counted.
    reused = client.post(TAPS, json={"taps": [make_tap(1, device.device_id, boot_id="boot-new")]},
                         headers=bearer(token)).json
    assert reused["results"][0]["status"] == "conflict"
    assert count(engine, "tap_conflicts") == 1


def test_stale_copy_is_answered_duplicate(client, engine, device):
    taps = [make_tap(s, device.device_id) for s in range(1, 9)]
    push(client, device, taps)
    reply = client.post(ENROLL, json={"claim_code": replacement_code(engine, device.device_id),
                                      "hardware_id": "b1",
                                      "outbox": {"device_id": device.device_id, "last_seq": 5}})
    again = client.post(TAPS, json={"taps": taps[3:5]}, headers=bearer(reply.json["token"])).json
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["missing_seq"] == [] and again["highest_seq"] == 8
    assert count(engine, "taps") == 8


def test_invalidate_token_refuses_it_at_once(client, engine, device):
    code = replacement_code(engine, device.device_id, invalidate_token=True)
    assert push(client, device, [make_tap(1, device.device_id)]).status_code == 401
    reply = client.post(ENROLL, json={"claim_code": code, "hardware_id": "pi-test"})
    assert reply.status_code == 200 and reply.json["device_id"] == device.device_id
    ok = client.post(TAPS, json={"taps": [make_tap(1, device.device_id)]},
                     headers=bearer(reply.json["token"]))
    assert ok.status_code == 200


# -- the CLI -------------------------------------------------------------------------------
def test_cli_replace(runner, client, engine, device):
    out = runner("device", "replace", device.device_id)
    assert out.exit_code == 0, out.output
    code = CODE.search(out.output).group(0)
    assert f"device:           {device.device_id} (site {device.site})" in out.output
    assert "attendance-edge enroll --force --server" in out.output
    stored = rows(engine, "SELECT * FROM claim_codes WHERE device_id = :d AND used_at IS NULL",
                  d=device.device_id)
    assert len(stored) == 1 and stored[0]["site_code"] == device.site
    assert client.post(ENROLL, json={"claim_code": code, "hardware_id": "b"}).json[
        "device_id"] == device.device_id
    as_json = json.loads(runner("device", "replace", device.device_id, "--json",
                                "--expires-hours", "2").output)
    assert as_json["device_id"] == device.device_id and CODE.fullmatch(as_json["claim_code"])
    assert as_json["token_invalidated"] is False


def test_cli_replace_invalidate_token(runner, client, device):
    out = runner("device", "replace", device.device_id, "--invalidate-token")
    assert out.exit_code == 0 and "refused from now on" in out.output
    assert push(client, device, [make_tap(1, device.device_id)]).status_code == 401


@pytest.mark.parametrize("args, message", [
    (["dev_0000000000000000"], "no device 'dev_0000000000000000' (attendance-server device list)"),
    (["REVOKED"], "was revoked at"),
    (["REVOKED"], "enrol the new board as a new device (attendance-server device add --site"),
    (["OK", "--expires-hours", "0"], "--expires-hours must be more than 0"),
])
def test_cli_replace_errors(runner, engine, device, args, message):
    if args[0] == "REVOKED":
        with engine.begin() as conn:
            devices.revoke(conn, device.device_id)
    args = [device.device_id if a in ("REVOKED", "OK") else a for a in args]
    before = count(engine, "claim_codes")
    out = runner("device", "replace", *args)
    assert out.exit_code == 1
    assert out.output.startswith("attendance-server: error: ")
    assert message in out.output and len(out.output.strip().splitlines()) == 1
    assert count(engine, "claim_codes") == before


# -- token rotation -------------------------------------------------------------------------
def test_rotation(client, engine, device, caplog):
    caplog.set_level("INFO")
    new = "n" * 43
    reply = client.post(TOKEN, json={"token_sha256": hash_of(new)}, headers=device.headers)
    assert reply.status_code == 200
    assert reply.json["device_id"] == device.device_id and reply.json["rotated"] is True
    assert device_row(engine, device.device_id)["token_hash"] == hash_of(new)
    assert push(client, device, [make_tap(1)]).status_code == 401
    assert client.post(TAPS, json={"taps": [make_tap(1)]}, headers=bearer(new)).status_code == 200
    # The repeat after a lost reply comes with the new token: nothing changes.
    again = client.post(TOKEN, json={"token_sha256": hash_of(new)}, headers=bearer(new))
    assert again.status_code == 200 and again.json["rotated"] is False
    # And the old token cannot rotate back.
    back = client.post(TOKEN, json={"token_sha256": hash_of(device.token)}, headers=device.headers)
    assert back.status_code == 401
    assert "rotated its token" in caplog.text and new not in caplog.text


def test_a_device_cannot_touch_another_devices_token(client, engine, site, device):
    other = enroll_device(client, engine, site, hardware="pi-other")
    before = {d: device_row(engine, d)["token_hash"] for d in (device.device_id, other.device_id)}
    # Taking the other's token (by its hash) is refused; naming the other device too.
    taken = client.post(TOKEN, json={"token_sha256": hash_of(other.token)}, headers=device.headers)
    assert taken.status_code == 409 and taken.json["error"]["code"] == "token_in_use"
    named = client.post(TOKEN, json={"token_sha256": hash_of("x" * 43),
                                     "device_id": other.device_id}, headers=device.headers)
    assert named.status_code == 403 and named.json["error"]["code"] == "forbidden"
    after = {d: device_row(engine, d)["token_hash"] for d in (device.device_id, other.device_id)}
    assert after == before
    # A rotation changes only the caller's token.
    mine = client.post(TOKEN, json={"token_sha256": hash_of("m" * 43),
                                    "device_id": device.device_id}, headers=device.headers)
    assert mine.status_code == 200
    assert device_row(engine, other.device_id)["token_hash"] == before[other.device_id]
    assert push(client, other, [make_tap(1)]).status_code == 200


def test_revoked_device_cannot_rotate(client, engine, device):
    with engine.begin() as conn:
        devices.revoke(conn, device.device_id)
    reply = client.post(TOKEN, json={"token_sha256": hash_of("r" * 43)}, headers=device.headers)
    assert reply.status_code == 401


@pytest.mark.parametrize("body, status, code", [
    (b"not json", 400, "bad_json"),
    (b"{}", 400, "validation_error"),
    (b'{"token_sha256": "ABCDEF"}', 400, "validation_error"),
    (json.dumps({"token_sha256": "A" * 64}).encode(), 400, "validation_error"),
    (json.dumps({"token_sha256": "a" * 64 + "\n"}).encode(), 400, "validation_error"),
    (json.dumps({"token_sha256": 7}).encode(), 400, "validation_error"),
    (b"[]", 400, "validation_error"),
])
def test_bad_rotation_requests(client, engine, device, body, status, code):
    before = device_row(engine, device.device_id)["token_hash"]
    reply = client.post(TOKEN, data=body, headers={**device.headers,
                                                   "Content-Type": "application/json"})
    assert reply.status_code == status and reply.json["error"]["code"] == code
    assert device_row(engine, device.device_id)["token_hash"] == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": "Basic abc"}])
def test_rotation_needs_a_device_token(client, headers):
    reply = client.post(TOKEN, json={"token_sha256": "a" * 64}, headers=headers)
    assert reply.status_code == 401 and reply.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("body", [
    {"claim_code": "X", "hardware_id": "h", "outbox": {"last_seq": -1}},
    {"claim_code": "X", "hardware_id": "h", "outbox": {"last_seq": "5"}},
    {"claim_code": "X", "hardware_id": "h", "outbox": "dev_x"},
])
def test_bad_outbox_in_enrolment(client, engine, device, body):
    reply = client.post(ENROLL, json=body)
    assert reply.status_code == 400 and reply.json["error"]["code"] == "validation_error"
