"""JSON errors for everything, and never a 500 for bad input."""

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from server.app import create_app
from tests.server.helpers import make_tap


def test_unknown_path_is_json_404(client):
    reply = client.get("/api/v1/nothing-here")
    assert reply.status_code == 404
    assert reply.json["error"]["code"] == "not_found"
    assert client.get("/nothing-here").status_code == 404
    assert client.get("/nothing-here").is_json
    # The root is the way to the dashboard (server.web), whose pages answer HTML.
    assert client.get("/").status_code == 302
    assert client.get("/").headers["Location"] == "/dashboard/"


def test_wrong_method_is_json_405_with_allow(client):
    reply = client.get("/api/v1/taps")
    assert reply.status_code == 405
    assert reply.json["error"]["code"] == "method_not_allowed"
    assert "POST" in reply.headers["Allow"]
    assert client.delete("/api/v1/roster").status_code == 405


def test_health(client):
    reply = client.get("/api/v1/health")
    assert reply.status_code == 200
    assert {k: reply.json[k] for k in ("status", "database")} == {"status": "ok",
                                                                   "database": "ok"}


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/nothing",
                                 "sqlite:////nonexistent-dir/for/sure/server.db"])
def test_health_is_503_when_the_database_is_down(url):
    app = create_app({"DATABASE_URL": url})
    client = app.test_client()
    reply = client.get("/api/v1/health")
    assert reply.status_code == 503
    assert reply.json["status"] == "unavailable"
    assert reply.json["error"]["code"] == "unavailable"
    assert reply.headers["Retry-After"]
    # Every other endpoint says 503 too, with a JSON error and Retry-After.
    reply = client.post("/api/v1/taps", json={"taps": [make_tap(1)]},
                        headers={"Authorization": "Bearer x"})
    assert reply.status_code == 503 and reply.json["error"]["code"] == "unavailable"
    assert reply.headers["Retry-After"]
    app.extensions["attendance"].engine.dispose()


def test_health_is_503_before_migrations(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"})
    reply = app.test_client().get("/api/v1/health")
    assert reply.status_code == 503 and "migrate" in reply.json["error"]["message"]
    app.extensions["attendance"].engine.dispose()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
tap_fields = st.fixed_dictionaries({}, optional={
    "event_id": json_values | st.text(), "device_id": json_values, "seq": json_values | st.integers(),
    "card_uid": st.text(alphabet="0123456789ABCDEF", max_size=21) | json_values,
    "tapped_at": st.text(max_size=40) | st.datetimes().map(lambda d: d.isoformat() + "+07:00"),
    "boot_id": st.text(max_size=70), "mono_ns": st.integers(), "clock_synced": json_values,
    "reader": json_values, "verdict": st.sampled_from(["accepted", "unknown", "x"]) | json_values,
})


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.one_of(json_values, st.fixed_dictionaries({"taps": st.lists(tap_fields, max_size=3)},
                                                         optional={"clock": json_values})))
def test_random_bodies_never_give_a_500(app, client, device, body):
    for url in ("/api/v1/taps", "/api/v1/heartbeat", "/api/v1/excuses", "/api/v1/devices/enroll"):
        reply = client.post(url, data=json.dumps(body), headers=device.headers)
        assert reply.status_code < 500, (url, body, reply.json)
        assert reply.is_json


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200), query=st.text(max_size=30))
def test_random_bytes_and_queries_never_give_a_500(client, device, raw, query):
    assert client.post("/api/v1/taps", data=raw, headers=device.headers).status_code < 500
    assert client.get("/api/v1/roster", query_string={"since": query},
                      headers=device.headers).status_code < 500
