"""``POST /excuses``: sakit / izin / dinas luar / cuti records.

Three kinds of sender:

* a device (its token): the excuses are recorded for the device's site;
* an operator (API key of one site): only for people of that site (registered
  there now, or assigned there on a day the excuse covers); any other person
  refuses the whole batch with 403, nothing stored;
* diskominfo (API key): for anyone; recorded without a site, so the excuse
  applies wherever the person is expected on those days.

``POST /excuses/withdraw`` takes the same items back: a device or an operator
key withdraws excuses recorded for its site, diskominfo any (see
server.excuses.withdraw_excuses).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import Blueprint
from sqlalchemy.engine import Connection

from server.api import authenticate, engine, reply, request_body
from server.api.keyauth import authenticate_key, bearer_token
from server.apikeys import is_api_key
from server.db import utcnow
from server.errors import ApiError
from server.excuses import Source, store_excuses, withdraw_excuses
from server.schema import people, person_sites

bp = Blueprint("excuses", __name__)


@bp.post("/excuses")
def push_excuses() -> Any:
    token = bearer_token()
    if token is not None and is_api_key(token):
        key = authenticate_key(token)
        body = request_body(batch_key="excuses")
        source = Source(site_code=key.site_code if not key.is_diskominfo else None,
                        operator=key.label)
        with engine().begin() as conn:
            if not key.is_diskominfo:
                assert key.site_code is not None
                _check_people_of_site(conn, body["excuses"], key.site_code)
            results = store_excuses(conn, body["excuses"], source, utcnow())
        return reply({"results": results})
    device = authenticate()
    body = request_body(batch_key="excuses")
    source = Source(site_code=device["site_code"], device_id=device["device_id"])
    with engine().begin() as conn:
        results = store_excuses(conn, body["excuses"], source, utcnow())
    return reply({"results": results})


@bp.post("/excuses/withdraw")
def withdraw() -> Any:
    """Withdraw excuses: a device or an operator key those of its site, diskominfo any."""
    token = bearer_token()
    if token is not None and is_api_key(token):
        key = authenticate_key(token)
        body = request_body(batch_key="withdrawals")
        source = Source(site_code=key.site_code if not key.is_diskominfo else None,
                        operator=key.label)
        with engine().begin() as conn:
            check = None
            if not key.is_diskominfo:
                site_code = key.site_code
                assert site_code is not None

                def check(new: list[int]) -> None:
                    _check_people_of_site(conn, body["withdrawals"], site_code,
                                          batch="withdrawals", only=set(new),
                                          nothing="nothing withdrawn")
            results = withdraw_excuses(conn, body["withdrawals"], source, utcnow(),
                                       check_new=check)
        return reply({"results": results})
    device = authenticate()
    body = request_body(batch_key="withdrawals")
    source = Source(site_code=device["site_code"], device_id=device["device_id"])
    with engine().begin() as conn:
        results = withdraw_excuses(conn, body["withdrawals"], source, utcnow())
    return reply({"results": results})


def _check_people_of_site(conn: Connection, items: list[dict[str, Any]], site_code: str, *,
                          batch: str = "excuses", only: set[int] | None = None,
                          nothing: str = "nothing stored") -> None:
    """403 unless every excuse's person (of the items at indexes ``only``, default all)
    belongs to ``site_code`` (see the module docstring)."""
    checked = [item if only is None or i in only else None for i, item in enumerate(items)]
    ids = {item["person_id"] for item in checked if item is not None}
    here = set(conn.execute(sa.select(people.c.person_id).where(
        people.c.person_id.in_(ids), people.c.site_code == site_code)).scalars())
    ps = person_sites.c
    spans: dict[str, list[tuple[date, date | None]]] = defaultdict(list)
    for row in conn.execute(sa.select(ps.person_id, ps.valid_from, ps.valid_to).where(
            ps.person_id.in_(ids - here), ps.site_code == site_code)):
        spans[row.person_id].append((row.valid_from, row.valid_to))
    details = []
    for index, item in enumerate(checked):
        if item is None:
            continue
        person = item["person_id"]
        if person in here:
            continue
        start, end = date.fromisoformat(item["date_from"]), date.fromisoformat(item["date_to"])
        if end < start:
            continue  # refused as a bad request by store_excuses, which says why
        if any(first <= end and (last is None or start <= last)
               for first, last in spans.get(person, ())):
            continue
        details.append({"path": f"{batch}[{index}].person_id",
                        "message": f"{person} is not a person of site {site_code}"})
    if details:
        raise ApiError(403, "forbidden", f"{details[0]['path']}: {details[0]['message']}"
                       + (f" (and {len(details) - 1} more)" if len(details) > 1 else "")
                       + f"; {nothing}", details=details[:100])
