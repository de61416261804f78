"""POST /excuses: idempotent by excuse_id, validated dates."""

import pytest

from tests.server.helpers import count, rows

URL = "/api/v1/excuses"


def excuse(excuse_id="ex-1", **fields):
    body = {"excuse_id": excuse_id, "person_id": "0051234567", "kind": "sakit",
            "date_from": "2026-11-23", "date_to": "2026-11-24", "note": "demam"}
    body.update(fields)
    return body


def test_excuses_are_idempotent(client, engine, device):
    batch = {"excuses": [excuse(), excuse("ex-2", kind="dinas_luar", note=None)]}
    reply = client.post(URL, json=batch, headers=device.headers)
    assert reply.status_code == 200
    assert reply.json["results"] == [{"excuse_id": "ex-1", "status": "accepted"},
                                     {"excuse_id": "ex-2", "status": "accepted"}]
    again = client.post(URL, json=batch, headers=device.headers)
    assert [r["status"] for r in again.json["results"]] == ["duplicate", "duplicate"]
    stored = rows(engine, "SELECT * FROM excuses ORDER BY excuse_id")
    assert len(stored) == 2
    assert stored[0]["source_device_id"] == device.device_id
    assert stored[0]["site_code"] == device.site
    assert str(stored[0]["date_from"]) == "2026-11-23" and stored[1]["note"] == ""


def test_repeat_inside_a_batch_and_changed_content(client, engine, device):
    reply = client.post(URL, json={"excuses": [excuse(), excuse(kind="izin")]},
                        headers=device.headers)
    assert [r["status"] for r in reply.json["results"]] == ["accepted", "duplicate"]
    assert rows(engine, "SELECT kind FROM excuses") == [{"kind": "sakit"}]


@pytest.mark.parametrize("change, path", [
    ({"kind": "libur"}, "excuses[0].kind"),
    ({"date_from": "2026-02-30"}, "excuses[0].date_from"),
    ({"date_to": "2026-11-22"}, "excuses[0].date_to"),
    ({"date_to": "23-11-2026"}, "excuses[0].date_to"),
    ({"person_id": ""}, "excuses[0].person_id"),
    ({"note": "x" * 1001}, "excuses[0].note"),
])
def test_excuse_validation(client, engine, device, change, path):
    reply = client.post(URL, json={"excuses": [excuse(**change)]}, headers=device.headers)
    assert reply.status_code == 400
    assert reply.json["error"]["details"][0]["path"] == path
    assert count(engine, "excuses") == 0


def test_too_many_excuses(client, device):
    batch = {"excuses": [excuse(f"ex-{i}") for i in range(1001)]}
    assert client.post(URL, json=batch, headers=device.headers).status_code == 413
