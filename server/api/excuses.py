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

from typing import Any

from flask import Blueprint

from server.api import authenticate, engine, reply, request_body
from server.api.keyauth import authenticate_key, bearer_token
from server.apikeys import is_api_key
from server.db import utcnow
from server.excuses import Source, check_people_of_site, store_excuses, withdraw_excuses

bp = Blueprint("excuses", __name__)


def _sender(batch_key: str) -> tuple[Source, dict[str, Any], str | None]:
    """Who sends (an API key or a device token), the checked body, and the site whose people
    an operator key is limited to (None: no such limit)."""
    token = bearer_token()
    if token is not None and is_api_key(token):
        key = authenticate_key(token)
        body = request_body(batch_key=batch_key)
        site = None if key.is_diskominfo else key.site_code
        return Source(site_code=site, operator=key.label), body, site
    device = authenticate()
    body = request_body(batch_key=batch_key)
    return Source(site_code=device["site_code"], device_id=device["device_id"]), body, None


@bp.post("/excuses")
def push_excuses() -> Any:
    source, body, limited_to = _sender("excuses")
    with engine().begin() as conn:
        if limited_to is not None:
            check_people_of_site(conn, body["excuses"], limited_to)
        results = store_excuses(conn, body["excuses"], source, utcnow())
    return reply({"results": results})


@bp.post("/excuses/withdraw")
def withdraw() -> Any:
    """Withdraw excuses: a device or an operator key those of its site, diskominfo any."""
    source, body, limited_to = _sender("withdrawals")
    items = body["withdrawals"]
    with engine().begin() as conn:
        check = None
        if limited_to is not None:
            site_code = limited_to

            def check(new: list[int]) -> None:
                check_people_of_site(conn, items, site_code, batch="withdrawals",
                                     only=set(new), nothing="nothing withdrawn")
        results = withdraw_excuses(conn, items, source, utcnow(), check_new=check)
    return reply({"results": results})
