"""Enrolment with claim codes, and device token authentication."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from server import devices
from server.db import utcnow
from server.schema import claim_codes
from tests.server.helpers import claim_code, count, make_tap, rows

ENROLL = "/api/v1/devices/enroll"


def test_enrol_with_a_claim_code(client, engine, site):
    code = claim_code(engine, site)
    reply = client.post(ENROLL, json={"claim_code": code, "hardware_id": "pi-serial-00000000a1b2",
                                      "name": "gerbang utama"})
    assert reply.status_code == 200
    body = reply.json
    assert body["device_id"].startswith("dev_")
    assert len(body["token"]) >= 43
    assert body["site"] == {"code": site, "name": "SDN 001 Pekanbaru", "timezone": "Asia/Jakarta"}
    assert body["server_time"].endswith("Z")
    stored = rows(engine, "SELECT * FROM devices")[0]
    assert stored["name"] == "gerbang utama" and stored["hardware_id"] == "pi-serial-00000000a1b2"
    # Only hashes are stored.
    assert stored["token_hash"] == devices.sha256_hex(body["token"])
    assert body["token"] not in str(stored)
    assert code not in str(rows(engine, "SELECT * FROM claim_codes"))


def test_code_is_typed_forgivingly(client, engine, site):
    code = claim_code(engine, site)
    sloppy = " " + code.lower().replace("-", " ") + " "
    assert client.post(ENROLL, json={"claim_code": sloppy, "hardware_id": "pi"}).status_code == 200


def test_code_is_single_use(client, engine, site):
    code = claim_code(engine, site)
    assert client.post(ENROLL, json={"claim_code": code, "hardware_id": "a"}).status_code == 200
    again = client.post(ENROLL, json={"claim_code": code, "hardware_id": "b"})
    assert again.status_code == 403
    assert again.json["error"]["code"] == "claim_code_invalid"
    assert "already used" in again.json["error"]["message"]
    assert count(engine, "devices") == 1


def test_expired_code(client, engine, site):
    code = claim_code(engine, site)
    with engine.begin() as conn:
        conn.execute(sa.update(claim_codes).values(expires_at=utcnow() - timedelta(seconds=1)))
    reply = client.post(ENROLL, json={"claim_code": code, "hardware_id": "a"})
    assert reply.status_code == 403 and "expired" in reply.json["error"]["message"]
    assert count(engine, "devices") == 0


def test_wrong_code(client, engine, site):
    claim_code(engine, site)
    reply = client.post(ENROLL, json={"claim_code": "AAAA-BBBB-CCCC", "hardware_id": "a"})
    assert reply.status_code == 403
    assert reply.json["error"] == {"code": "claim_code_invalid",
                                   "message": "claim code is not known"}


@pytest.mark.parametrize("body, path", [
    ({"hardware_id": "a"}, ""),
    ({"claim_code": "", "hardware_id": "a"}, "claim_code"),
    ({"claim_code": "X", "hardware_id": 5}, "hardware_id"),
])
def test_enrol_request_is_validated(client, site, body, path):
    reply = client.post(ENROLL, json=body)
    assert reply.status_code == 400
    assert reply.json["error"]["details"][0]["path"] == path


def test_claim_code_format():
    code = devices.new_claim_code()
    assert len(code) == 14 and code.count("-") == 2
    assert set(code.replace("-", "")) <= set(devices.CLAIM_ALPHABET)
    assert not set("01OIL") & set(devices.CLAIM_ALPHABET)


PROTECTED = [("post", "/api/v1/taps"), ("post", "/api/v1/heartbeat"), ("get", "/api/v1/roster"),
             ("post", "/api/v1/excuses")]


@pytest.mark.parametrize("method, url", PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Basic abc", "Bearer wrong-token",
                                    "Bearer " + "x" * 5000])
def test_missing_or_wrong_token_is_401(client, device, method, url, header):
    headers = {"Authorization": header} if header is not None else {}
    reply = getattr(client, method)(url, json={}, headers=headers)
    assert reply.status_code == 401
    assert reply.json["error"]["code"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401_at_the_next_request(client, engine, device):
    tap = make_tap(1, device.device_id)
    assert client.post("/api/v1/taps", json={"taps": [tap]}, headers=device.headers).status_code == 200
    with engine.begin() as conn:
        devices.revoke(conn, device.device_id)
    for method, url in PROTECTED:
        reply = getattr(client, method)(url, json={"taps": [make_tap(2)]}, headers=device.headers)
        assert reply.status_code == 401
        assert "revoked" in reply.json["error"]["message"]
    assert count(engine, "taps") == 1


def test_bearer_scheme_is_case_insensitive(client, device):
    reply = client.get("/api/v1/roster", headers={"Authorization": f"bearer {device.token}"})
    assert reply.status_code == 200
