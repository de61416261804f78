"""The OpenAPI document: valid, complete (every route), and what the server really answers."""

import re

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.openapi import API_PREFIX, DOCUMENT, SCHEMA_URI, RequestValidator
from tests.server.helpers import make_tap


def test_document_is_valid_openapi():
    openapi_spec_validator = pytest.importorskip("openapi_spec_validator")
    openapi_spec_validator.validate(DOCUMENT)


def test_served_document_is_the_document(client):
    reply = client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    assert reply.json == DOCUMENT


def test_document_lists_every_route_the_app_has(app):
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX + "/"):
            continue  # the dashboard's pages (server.web) are not part of the API
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    documented = {API_PREFIX + path: {m.upper() for m in item}
                  for path, item in DOCUMENT["paths"].items()}
    assert routes == documented


def test_every_operation_is_described():
    ids = []
    for item in DOCUMENT["paths"].values():
        for op in item.values():
            assert op["summary"] and op["responses"]["200"]
            ids.append(op["operationId"])
    assert len(ids) == len(set(ids))


def response_validator(name):
    registry = Registry().with_resource(SCHEMA_URI, Resource(contents=DOCUMENT,
                                                             specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{SCHEMA_URI}#/components/schemas/{name}"},
                                registry=registry)


def schema_of(path, method, status):
    op = DOCUMENT["paths"][path][method]
    ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def check(reply, path, method):
    status = str(reply.status_code)
    op = DOCUMENT["paths"][path][method]
    assert status in op["responses"], f"{method} {path} answered an undocumented {status}"
    response_validator(schema_of(path, method, status)).validate(reply.json)


def test_replies_match_the_documented_schemas(client, engine, device):
    from server.roster import RosterLine, import_roster

    with engine.begin() as conn:
        import_roster(conn, device.site, [RosterLine("04A1B2C3", "1", "A", "", "", "active")])
    h = device.headers
    clock = {"boot_id": "boot-1", "mono_ns": 10**11, "wall_time": "2026-11-23T07:00:00+07:00"}
    check(client.post("/api/v1/taps", json={"clock": clock, "taps": [make_tap(2)]}, headers=h),
          "/taps", "post")
    check(client.post("/api/v1/taps", json={"taps": [make_tap(-1)]}, headers=h), "/taps", "post")
    check(client.post("/api/v1/taps", json={"taps": [make_tap(1, "dev_x")]}, headers=h),
          "/taps", "post")
    check(client.post("/api/v1/taps", json={"taps": []}), "/taps", "post")
    check(client.post("/api/v1/heartbeat", json=clock, headers=h), "/heartbeat", "post")
    check(client.get("/api/v1/roster", headers=h), "/roster", "get")
    check(client.get("/api/v1/roster?since=v0", headers=h), "/roster", "get")
    check(client.post("/api/v1/excuses", headers=h, json={"excuses": [{
        "excuse_id": "e1", "person_id": "1", "kind": "cuti", "date_from": "2026-12-01",
        "date_to": "2026-12-05"}]}), "/excuses", "post")
    check(client.post("/api/v1/devices/enroll", json={"claim_code": "x", "hardware_id": "y"}),
          "/devices/enroll", "post")
    check(client.get("/api/v1/health"), "/health", "get")


def test_validator_covers_every_request_body():
    validator = RequestValidator()
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            assert validator.has_body(path, method) == ("requestBody" in op)


@pytest.mark.parametrize("value, ok", [("abc", True), ("abc\n", False), ("a\nb", False),
                                       ("-abc", False), ("a" * 64, True)])
def test_patterns_follow_ecma_dollar(value, ok):
    validator = RequestValidator()
    body = {"excuses": [{"excuse_id": value, "person_id": "1", "kind": "izin",
                         "date_from": "2026-01-01", "date_to": "2026-01-01"}]}
    if ok:
        validator.body("/excuses", "POST", body)
    else:
        with pytest.raises(Exception):
            validator.body("/excuses", "POST", body)


# -- the compiled fast path agrees with jsonschema -------------------------------------------
import json  # noqa: E402

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from server.openapi import _SUSPICIOUS, Problem  # noqa: E402

VALIDATOR = RequestValidator()


def deep(n):
    value = []
    for _ in range(n):
        value = [value]
    return value


POOL = [None, True, False, 0, 1, -1, 1.0, 1.5, 2**63 - 1, 2**63, -(2**63), "", "x", "-x",
        "04A1B2C3", "04a1b2c3", "04A1B2C3D4E5F6", "abc\n", "a" * 65, "a" * 1001, "ÄÖ漢字",
        "2026-11-23T07:00:00+07:00", "2026-11-23T07:00:00", "2026-02-30T00:00:00Z",
        "2026-11-23", "2026-02-30", "0001-01-01T00:00:00+01:00", "accepted", "sakit",
        [], {}, [1, 2], {"a": 1}, deep(31), deep(40), {"name": "r"}, [{"name": "r"}],
        {"software": "1"}, {"x": deep(35)}]

SAMPLES = {
    ("/taps", "post"): {"clock": {"boot_id": "b", "mono_ns": 5, "wall_time": "2026-11-23T07:00:00Z",
                                  "clock_synced": True},
                        "taps": [make_tap(1, "dev_x"), make_tap(2)]},
    ("/heartbeat", "post"): {"boot_id": "b", "mono_ns": 1, "wall_time": "2026-11-23T07:00:00Z",
                             "clock_synced": False, "backlog": 0, "oldest_unsent_at": None,
                             "reader_ok": True, "readers": [{"name": "r", "driver": "pcsc",
                                                             "connected": True, "error": None}],
                             "versions": {"software": "0.1.0"}},
    ("/excuses", "post"): {"excuses": [{"excuse_id": "e1", "person_id": "0051234567",
                                        "kind": "izin", "date_from": "2026-11-23",
                                        "date_to": "2026-11-24", "note": "x"}]},
    ("/devices/enroll", "post"): {"claim_code": "ABCD-EFGH-JKMN", "hardware_id": "pi",
                                  "name": "gerbang"},
    ("/cards/requests", "post"): {"requests": [
        {"request_id": "6f1c2a1e-1b7e-4d0a-9a51-0c2b8f7d9e10", "kind": "bind",
         "card_uid": "04A1B2C3D4E5F6", "person_id": "0051234567",
         "requested_at": "2026-11-23T07:00:00+07:00"},
        {"request_id": "r-2", "kind": "lost", "card_uid": "8c3f2a11", "person_id": None,
         "requested_at": "2026-11-23T07:00:00.123Z"}]},
}


def paths_of(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from paths_of(sub, (*prefix, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from paths_of(sub, (*prefix, i))


def mutate(body, path, action, replacement):
    body = json.loads(json.dumps(body))
    if not path:
        return replacement if action == "replace" else body
    parent = body
    for part in path[:-1]:
        parent = parent[part]
    key = path[-1]
    if action == "replace":
        parent[key] = replacement
    elif action == "delete":
        del parent[key]
    elif action == "extra" and isinstance(parent, dict):
        parent["unknown_" + str(key)] = replacement
    return body


@st.composite
def mutated(draw):
    (path, method), sample = draw(st.sampled_from(sorted(SAMPLES.items())))
    body = sample
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(list(paths_of(body))))
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        body = mutate(body, where, action, draw(st.sampled_from(POOL)))
    return path, method, body


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutated())
def test_compiled_check_agrees_with_jsonschema(case):
    path, method, body = case
    raw = json.dumps(body).encode()
    fast = not _SUSPICIOUS.search(raw) and VALIDATOR.fast_check(path, method, body)
    try:
        VALIDATOR.body(path, method, body)  # no raw text: jsonschema decides
        slow = True
    except Problem:
        slow = False
    assert fast == slow, (path, body)


def test_deep_values_are_refused_with_a_message():
    body = {"taps": deep(900)}
    with pytest.raises(Problem) as info:
        VALIDATOR.body("/taps", "POST", body, json.dumps(body).encode())
    assert "nested more than" in str(info.value)
