"""Card requests from devices: bind a card to a person, or report a card lost.

An operator at the gate (the edge's local page) gives a new card to a person
of the site, or says that a card was lost; the edge queues the request and
sends it with ``POST /cards/requests``. The server applies it with the card
register's own functions (:func:`server.cards.bind_card`,
:func:`server.cards.set_card_status`), so the card's history is kept, the
site's roster gets a new version (the edges pull the change) and past days
are queued for reconciliation when the change is dated before now.

Rules:

* idempotent by ``request_id``: the first delivery is stored with its outcome
  (``applied`` or ``rejected``); a repeat answers ``duplicate`` and changes
  nothing, whatever it contains;
* a device acts only for its own site: it may bind a card only to a person of
  the site (registered there, or assigned there today), only a card that is new
  or whose holder is a person of the site, and may report lost only a card
  whose holder is a person of the site;
* the change takes effect at ``requested_at`` (the device's clock). A time in
  the future, or more than :data:`MAX_AGE` ago (a device clock that is wrong:
  a Raspberry Pi has no battery clock), counts as the moment the server got
  it, so a bad clock can never mark weeks of taps as made with a lost card;
* a request that cannot be applied is ``rejected`` with the reason; the other
  requests of the batch are applied all the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server import cards
from server.clock import parse_timestamp
from server.db import insert_for
from server.errors import NotFound
from server.roster import RosterLine, import_roster, site_cards
from server.schema import card_requests
from server.schema import cards as cards_table
from server.schema import people, person_sites, sites

log = logging.getLogger(__name__)

#: Requests dated longer ago than this take effect when the server receives them.
MAX_AGE = timedelta(days=30)
ERROR_MAX = 300


@dataclass(frozen=True)
class Requester:
    """The device that sent the requests, and its site."""

    device_id: str
    site_code: str


class Rejected(Exception):
    """A request that cannot be applied; the message is the reason sent back."""


def effective_time(requested_at: datetime, received_at: datetime) -> datetime:
    """When a request takes effect: ``requested_at``, unless it is in the future or more
    than :data:`MAX_AGE` before ``received_at`` (then ``received_at``)."""
    if requested_at > received_at or requested_at < received_at - MAX_AGE:
        return received_at
    return requested_at


# -- who belongs to a site -------------------------------------------------------------------
def site_today(conn: Connection, site_code: str, now: datetime) -> date:
    zone = conn.execute(sa.select(sites.c.timezone).where(sites.c.code == site_code)).scalar()
    return now.astimezone(ZoneInfo(zone or cards.DEFAULT_ZONE)).date()


def is_person_of_site(conn: Connection, person_id: str, site_code: str, today: date) -> bool:
    """Whether ``person_id`` is an active person registered at ``site_code`` or assigned
    there on ``today`` (the site's local date)."""
    p, ps = people.c, person_sites.c
    row = conn.execute(sa.select(p.site_code, p.active).where(p.person_id == person_id)).first()
    if row is None or not row.active:
        return False
    if row.site_code == site_code:
        return True
    return conn.execute(sa.select(ps.id).where(
        ps.person_id == person_id, ps.site_code == site_code, ps.valid_from <= today,
        sa.or_(ps.valid_to.is_(None), ps.valid_to >= today)).limit(1)).first() is not None


def card_holder(conn: Connection, uid: str) -> str | None:
    """The card's current holder (newest history row, else the ``cards`` row), or None for
    a card the register does not know."""
    latest = cards.latest_state(conn, uid)
    if latest is not None:
        return latest.person_id
    return conn.execute(sa.select(cards_table.c.person_id)
                        .where(cards_table.c.card_uid == uid)).scalar()


# -- applying ------------------------------------------------------------------------------------
def _bind(conn: Connection, who: Requester, uid: str, person_id: str | None, at: datetime,
          now: datetime, today: date) -> None:
    if not person_id:
        raise Rejected("person_id: required for bind")
    if conn.execute(sa.select(people.c.person_id).where(people.c.person_id == person_id)
                    ).first() is None:
        raise Rejected(f"no person {person_id} in the registry")
    if not is_person_of_site(conn, person_id, who.site_code, today):
        raise Rejected(f"{person_id} is not a person of site {who.site_code}")
    holder = card_holder(conn, uid)
    if holder is not None and holder != person_id \
            and not is_person_of_site(conn, holder, who.site_code, today):
        raise Rejected(f"card {uid} belongs to a person of another site; only the registry "
                       f"(Diskominfo) can give it to someone else")
    row = conn.execute(sa.select(cards_table.c.status).where(cards_table.c.card_uid == uid)
                       ).first()
    latest = cards.latest_state(conn, uid)
    status = latest.status if latest is not None else (row.status if row else None)
    if holder != person_id or status != "active":
        cards.bind_card(conn, uid, person_id, at=at, now=now)
    _put_on_site_roster(conn, who.site_code, uid, person_id)


def _put_on_site_roster(conn: Connection, site_code: str, uid: str, person_id: str) -> None:
    """A person the registry places nowhere (loaded by a roster file) has no placement
    for the card register to follow: add the card to the site's roster directly."""
    placed = conn.execute(sa.select(person_sites.c.id)
                          .where(person_sites.c.person_id == person_id).limit(1)).first()
    on_site = conn.execute(sa.select(cards_table.c.site_code)
                           .where(cards_table.c.card_uid == uid)).scalar()
    if placed is not None or on_site == site_code:
        return
    person = conn.execute(sa.select(people.c.name, people.c.kind, people.c.group_name)
                          .where(people.c.person_id == person_id)).one()
    lines = [RosterLine(c["card_uid"], c["person_id"], c["name"], c["kind"], c["group"],
                        c["status"]) for c in site_cards(conn, site_code)]
    lines.append(RosterLine(uid, person_id, person.name or "", person.kind or "",
                            person.group_name or "", "active"))
    import_roster(conn, site_code, lines)


def _lost(conn: Connection, who: Requester, uid: str, at: datetime, now: datetime,
          today: date) -> None:
    holder = card_holder(conn, uid)
    if holder is None:
        raise Rejected(f"card {uid} is not in the register")
    if not is_person_of_site(conn, holder, who.site_code, today):
        raise Rejected(f"card {uid} belongs to a person of another site")
    cards.set_card_status(conn, uid, "lost", at=at, now=now)


def apply_requests(conn: Connection, who: Requester, items: Sequence[dict[str, Any]],
                   received_at: datetime) -> list[dict[str, str]]:
    """Store and apply validated requests in the caller's transaction; the per-item results
    (``applied``, ``duplicate`` or ``rejected`` with ``error``), in the order given.

    Each request is first claimed by inserting its row (a second delivery racing with
    the first waits for it and finds the row), then applied inside a savepoint, so a
    rejected one leaves nothing half-written.
    """
    today = site_today(conn, who.site_code, received_at)
    results: list[dict[str, str]] = []
    for item in items:
        request_id = item["request_id"]
        requested_at = parse_timestamp(item["requested_at"])
        at = effective_time(requested_at, received_at)
        claim = insert_for(conn, card_requests).values(
            request_id=request_id, device_id=who.device_id, site_code=who.site_code,
            kind=item["kind"], card_uid=item["card_uid"], person_id=item.get("person_id"),
            requested_at=requested_at, effective_at=at, status="applied",
            received_at=received_at)
        stored = conn.execute(claim.on_conflict_do_nothing()
                              .returning(card_requests.c.request_id)).first()
        if stored is None:
            results.append(_duplicate(conn, request_id))
            continue
        try:
            with conn.begin_nested():
                try:
                    uid = cards.parse_card_uid(item["card_uid"])
                except ValueError as exc:
                    raise Rejected(f"card_uid: {exc}") from None
                if item["kind"] == "bind":
                    _bind(conn, who, uid, item.get("person_id"), at, received_at, today)
                else:
                    _lost(conn, who, uid, at, received_at, today)
        except (Rejected, NotFound, ValueError) as exc:
            reason = str(exc)[:ERROR_MAX]
            conn.execute(card_requests.update()
                         .where(card_requests.c.request_id == request_id)
                         .values(status="rejected", error=reason, effective_at=None))
            log.info("device %s: card request %s (%s %s) rejected: %s", who.device_id,
                     request_id, item["kind"], item["card_uid"], reason)
            results.append({"request_id": request_id, "status": "rejected", "error": reason})
            continue
        log.info("device %s: card request %s applied: %s %s%s", who.device_id, request_id,
                 item["kind"], item["card_uid"],
                 f" -> {item.get('person_id')}" if item["kind"] == "bind" else "")
        results.append({"request_id": request_id, "status": "applied"})
    return results


def _duplicate(conn: Connection, request_id: str) -> dict[str, str]:
    """A repeat: ``duplicate``, with what the first delivery did (``outcome``)."""
    first = conn.execute(sa.select(card_requests.c.status, card_requests.c.error)
                         .where(card_requests.c.request_id == request_id)).one()
    reply = {"request_id": request_id, "status": "duplicate", "outcome": first.status}
    if first.status == "rejected" and first.error:
        reply["error"] = first.error
    return reply
