"""The card register: which person a card UID belongs to, and its status, over time.

Two tables hold it:

* ``card_history``: every state a card has had, the person and registry status
  (active, lost, blocked, replaced) in force from ``effective_at`` (UTC). A tap
  is judged by the row in force when it happened, so a card reported lost
  today leaves last week's taps counted, and a UID given to someone else keeps
  its old taps with their old person.
* ``cards``: the card today, as the gates see it. ``person_id`` is the current
  holder, ``valid_from``/``valid_to`` the validity of the current binding (local
  dates, inclusive), ``status_since`` when the registry status last changed,
  and ``status`` the status the site's edges are sent: the registry status,
  except that a ``replaced`` card and a card outside its validity dates are
  sent as ``blocked``. The registry status itself is the latest history row.

Rules of :func:`card_state_at` (and :func:`card_states_for`):

* before a card's first history row it has no state (``None``);
* the validity dates apply to the current binding only (from the first row
  of the latest run of rows naming the current holder): outside them an
  ``active`` card counts as ``blocked``; other statuses stay as they are;
* a card made by a roster import (``attendance-server roster import``) and
  never changed by the registry has no history: its ``cards`` row is in force
  since always. The first registry change dates that state from 1970, so its
  old taps keep their person.

Every change here is followed, in the same transaction, by a refresh of the
affected sites' rosters (:func:`server.roster.import_roster`, so the edges get
the delta) and, for a change dated in the past, by queueing the site days from
then to today for re-reconciliation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hardware.errors import InvalidUID
from hardware.uid import is_random_uid, normalise_uid
from server.errors import NotFound
from server.schema import CARD_STATUSES, card_history, cards, people, sites

if TYPE_CHECKING:
    from server.registry.apply import Changes

DEFAULT_ZONE = "Asia/Jakarta"
#: When the state of a card made by a roster import starts, once history is written for it.
SINCE_ALWAYS = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: How far in the future an explicit ``at`` may be (clock skew between machines).
FUTURE_SLACK = timedelta(minutes=5)
_CHUNK = 5000


class CardState(NamedTuple):
    """Whom a card named, and with what status, at some moment."""

    person_id: str
    status: str


class CardStateChange(NamedTuple):
    """A state of a card in force from ``effective_at`` until the next change."""

    effective_at: datetime
    person_id: str
    status: str


# -- pure rules ------------------------------------------------------------------------------
def parse_card_uid(text: str) -> str:
    """A card UID as stored (uppercase hex, no separators); ValueError for a bad or random UID."""
    try:
        uid = normalise_uid(text.strip())
    except InvalidUID as exc:
        raise ValueError(str(exc)) from None
    if is_random_uid(uid):
        raise ValueError(f"{uid} is a random (per-session) UID and cannot identify a card")
    return uid


def is_outside(valid_from: date | None, valid_to: date | None, day: date) -> bool:
    """True when ``day`` is before ``valid_from`` or after ``valid_to`` (both inclusive)."""
    return (valid_from is not None and day < valid_from) or \
        (valid_to is not None and day > valid_to)


def gate_status(status: str, valid_from: date | None, valid_to: date | None,
                today: date) -> str:
    """The status a site's edges are sent for a card with this registry status today."""
    if status == "replaced":
        return "blocked"
    if status == "active" and is_outside(valid_from, valid_to, today):
        return "blocked"
    return status


def local_midnight(day: date, zone: str) -> datetime:
    """The start of ``day`` in ``zone``, in UTC."""
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(timezone.utc)


def build_timeline(rows: Sequence[tuple[datetime, str, str]], *,
                   valid_from: date | None = None, valid_to: date | None = None,
                   zone: str = DEFAULT_ZONE) -> list[CardStateChange]:
    """A card's states from its history rows (effective_at, person_id, status), in
    order, with the validity dates of the current binding applied (see the module text)."""
    if not rows:
        return []
    holder = rows[-1][1]
    first = len(rows) - 1
    while first > 0 and rows[first - 1][1] == holder:
        first -= 1
    binding_start = rows[first][0]
    starts = local_midnight(valid_from, zone) if valid_from else None
    ends = local_midnight(valid_to + timedelta(days=1), zone) if valid_to else None
    moments = sorted({r[0] for r in rows} | {m for m in (starts, ends)
                                            if m is not None and m > binding_start})
    out: list[CardStateChange] = []
    index = 0
    for moment in moments:
        while index + 1 < len(rows) and rows[index + 1][0] <= moment:
            index += 1
        if rows[index][0] > moment:
            continue
        _at, person, status = rows[index]
        if moment >= binding_start and status == "active" and (
                (starts is not None and moment < starts) or (ends is not None and moment >= ends)):
            status = "blocked"
        if out and (out[-1].person_id, out[-1].status) == (person, status):
            continue
        out.append(CardStateChange(moment, person, status))
    return out


def state_at(timeline: Sequence[CardStateChange], moment: datetime) -> CardState | None:
    """The state in force at ``moment`` in a timeline (from :func:`card_states_for`)."""
    found = None
    for change in timeline:
        if change.effective_at > moment:
            break
        found = change
    return CardState(found.person_id, found.status) if found else None


# -- reading -----------------------------------------------------------------------------------
def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _card_rows(conn: Connection, uids: Sequence[str]) -> dict[str, Any]:
    """cards rows with the holder's zone (``zone``), by UID."""
    c = cards.c
    found = {}
    for chunk in _chunks(uids):
        for r in conn.execute(sa.select(c.card_uid, c.person_id, c.status, c.valid_from,
                                        c.valid_to, c.site_code, sites.c.timezone)
                              .join_from(cards, people, c.person_id == people.c.person_id)
                              .outerjoin(sites, sites.c.code == sa.func.coalesce(
                                  people.c.site_code, c.site_code))
                              .where(c.card_uid.in_(chunk))):
            found[r.card_uid] = r
    return found


HistoryRow = tuple[datetime, str, str]  # effective_at, person_id, status


def _history_rows(conn: Connection, uids: Sequence[str]) -> dict[str, list[HistoryRow]]:
    h = card_history.c
    found: dict[str, list[HistoryRow]] = {}
    for chunk in _chunks(uids):
        for r in conn.execute(sa.select(h.card_uid, h.effective_at, h.person_id, h.status)
                              .where(h.card_uid.in_(chunk))
                              .order_by(h.card_uid, h.effective_at, h.id)):
            found.setdefault(r.card_uid, []).append((r.effective_at, r.person_id, r.status))
    return found


def card_timelines(conn: Connection, card_uids: Iterable[str]) -> dict[str, list[CardStateChange]]:
    """Every state of each card (two queries for any number of cards)."""
    uids = sorted(set(card_uids))
    rows = _card_rows(conn, uids)
    history = _history_rows(conn, uids)
    out = {}
    for uid in uids:
        card = rows.get(uid)
        events = history.get(uid)
        if not events:
            if card is None:
                continue
            events = [(SINCE_ALWAYS, card.person_id, card.status)]
        zone = (card.timezone if card is not None and card.timezone else DEFAULT_ZONE)
        out[uid] = build_timeline(events, valid_from=card.valid_from if card else None,
                                  valid_to=card.valid_to if card else None, zone=zone)
    return out


def card_state_at(conn: Connection, card_uid: str, moment: datetime) -> CardState | None:
    """Whom ``card_uid`` named and its status at ``moment`` (aware), or None when the card
    was not registered then. Outside the validity dates an active card is ``blocked``."""
    timeline = card_timelines(conn, [card_uid]).get(card_uid, [])
    return state_at(timeline, moment)


def card_states_for(conn: Connection, card_uids: Iterable[str], start: datetime,
                    end: datetime) -> dict[str, list[CardStateChange]]:
    """For reconciling a period: per card, the state in force at ``start`` (if any) and
    every change in (start, end). Use :func:`state_at` on a card's list to judge a tap.

    Cards unknown in the whole period are left out.
    """
    out = {}
    for uid, timeline in card_timelines(conn, card_uids).items():
        before = [s for s in timeline if s.effective_at <= start]
        during = [s for s in timeline if start < s.effective_at < end]
        period = before[-1:] + during
        if period:
            out[uid] = period
    return out


def latest_state(conn: Connection, card_uid: str) -> CardStateChange | None:
    """The card's newest history row (registry status, no validity applied), or None."""
    h = card_history.c
    r = conn.execute(sa.select(h.effective_at, h.person_id, h.status)
                     .where(h.card_uid == card_uid)
                     .order_by(h.effective_at.desc(), h.id.desc()).limit(1)).first()
    return CardStateChange(r.effective_at, r.person_id, r.status) if r else None


def card_info(conn: Connection, card_uid: str) -> dict[str, Any]:
    """Everything about one card, for ``attendance-server card show``."""
    uid = normalise_uid(card_uid.strip())
    row = conn.execute(sa.select(cards).where(cards.c.card_uid == uid)).mappings().first()
    if row is None:
        raise NotFound(f"no card {uid} in the register")
    latest = latest_state(conn, uid)
    holder = conn.execute(sa.select(people.c.name, people.c.kind, people.c.nip, people.c.nisn,
                                    people.c.nik, people.c.active)
                          .where(people.c.person_id == row["person_id"])).mappings().first()
    h = card_history.c
    history = [dict(r) for r in conn.execute(
        sa.select(h.effective_at, h.person_id, h.status, h.recorded_at)
        .where(h.card_uid == uid).order_by(h.effective_at, h.id)).mappings()]
    return {
        "card_uid": uid,
        "person_id": row["person_id"],
        "person": dict(holder) if holder else None,
        "status": latest.status if latest else row["status"],
        "gate_status": row["status"],
        "site_code": row["site_code"],
        "valid_from": row["valid_from"],
        "valid_to": row["valid_to"],
        "status_since": row["status_since"],
        "history": history,
    }


def person_zone(conn: Connection, person_id: str) -> str:
    """The time zone of the person's site (Asia/Jakarta when they have none)."""
    zone = conn.execute(sa.select(sites.c.timezone)
                        .join_from(people, sites, people.c.site_code == sites.c.code)
                        .where(people.c.person_id == person_id)).scalar()
    return zone or DEFAULT_ZONE


def card_zone(conn: Connection, card_uid: str) -> str:
    """The time zone of the card holder's site (Asia/Jakarta when unknown)."""
    row = _card_rows(conn, [card_uid]).get(card_uid)
    return row.timezone if row is not None and row.timezone else DEFAULT_ZONE


def find_person(conn: Connection, *, nip: str | None = None, nisn: str | None = None,
                nik: str | None = None) -> str:
    """The person id named by a NIP, NISN or NIK (several must name the same person)."""
    given = {k: v.strip() for k, v in (("nip", nip), ("nisn", nisn), ("nik", nik)) if v}
    if not given:
        raise ValueError("name the person with --nip, --nisn or --nik")
    found = {}
    for key, value in given.items():
        pid = conn.execute(sa.select(people.c.person_id).where(people.c[key] == value)).scalar()
        if pid is None:
            raise NotFound(f"no person with {key.upper()} {value} in the registry")
        found[key] = pid
    if len(set(found.values())) > 1:
        raise ValueError("these ids name different people: " + ", ".join(
            f"{k.upper()} {given[k]} is {v}" for k, v in found.items()))
    return next(iter(found.values()))


# -- writing ---------------------------------------------------------------------------------
def _check_at(at: datetime | None, now: datetime) -> None:
    if at is None:
        return
    if at.tzinfo is None:
        raise ValueError("the time of a card change needs a UTC offset "
                         "(e.g. 2026-03-02T07:15+07:00)")
    if at > now + FUTURE_SLACK:
        raise ValueError(f"{at.isoformat()} is in the future; a card change can only be "
                         f"recorded once it happened")


def _add_history(conn: Connection, uid: str, person_id: str, status: str, effective_at: datetime,
                 now: datetime) -> None:
    conn.execute(card_history.insert().values(card_uid=uid, person_id=person_id, status=status,
                                              effective_at=effective_at, recorded_at=now))


def _seed_history(conn: Connection, card: Any, now: datetime) -> CardStateChange:
    """Give a card made by a roster import its first history row (in force since always)."""
    _add_history(conn, card.card_uid, card.person_id, card.status, SINCE_ALWAYS, now)
    return CardStateChange(SINCE_ALWAYS, card.person_id, card.status)


@dataclass(frozen=True)
class CardWrite:
    """What the register should say about one card (see :func:`write_cards`)."""

    card_uid: str
    person_id: str
    status: str = "active"
    valid_from: date | None = None
    valid_to: date | None = None
    at: datetime | None = None


def latest_states(conn: Connection, uids: Sequence[str]) -> dict[str, CardStateChange]:
    """The newest history row of each card that has one."""
    return {uid: CardStateChange(*rows[-1]) for uid, rows in _history_rows(conn, uids).items()}


def write_cards(conn: Connection, changes: Changes, wanted: Sequence[CardWrite]
                ) -> list[str | None]:
    """Make the register say what ``wanted`` says, in a few statements for any number of
    cards (each UID at most once). Returns per card what happened: ``new``, ``rebound``,
    ``changes`` or None (already so). The rosters are refreshed by ``changes.finish()``.

    A new card is in force from the local midnight of its first valid day (so
    taps made that morning before it was registered count); any other change
    from ``at`` (default: now), which may not be before the card's latest change.
    """
    uids = [w.card_uid for w in wanted]
    if len(set(uids)) != len(uids):
        raise ValueError("a card can be written only once per batch")
    now = changes.now
    for w in wanted:
        if w.status not in CARD_STATUSES:
            raise ValueError(f"card status {w.status!r} is not one of "
                             f"{', '.join(CARD_STATUSES)}")
        if w.valid_from and w.valid_to and w.valid_from > w.valid_to:
            raise ValueError(f"card {w.card_uid}: valid_from {w.valid_from} is after "
                             f"valid_to {w.valid_to}")
        _check_at(w.at, now)
    existing: dict[str, Any] = {}
    for chunk in _chunks(uids):
        for r in conn.execute(sa.select(cards).where(cards.c.card_uid.in_(chunk))):
            existing[r.card_uid] = r
    latest = latest_states(conn, [u for u in uids if u in existing])
    changes.load_people({w.person_id for w in wanted} | {r.person_id for r in existing.values()}
                        | {s.person_id for s in latest.values()})

    new_cards: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    results: list[str | None] = []
    for w in wanted:
        uid = w.card_uid
        zone = changes.person_zone(w.person_id)
        today = now.astimezone(ZoneInfo(zone)).date()
        card = existing.get(uid)
        if card is None:
            effective = w.at or local_midnight(w.valid_from or today, zone)
            new_cards.append({
                "card_uid": uid, "person_id": w.person_id,
                "status": gate_status(w.status, w.valid_from, w.valid_to, today),
                "site_code": None, "changed_version": changes.roster_version(),
                "updated_at": now, "valid_from": w.valid_from, "valid_to": w.valid_to,
                "status_since": effective})
            history.append(_history(uid, w.person_id, w.status, effective, now))
            changes.card_changed(uid, [w.person_id], effective if effective < now else None)
            results.append("new")
            continue
        state = latest.get(uid)
        seed = None
        if state is None:
            # A card from a roster import: its state so far becomes history first.
            state = CardStateChange(SINCE_ALWAYS, card.person_id, card.status)
            seed = _history(uid, card.person_id, card.status, SINCE_ALWAYS, now)
        if w.at is not None and w.at < state.effective_at:
            raise ValueError(f"card {uid} already changed at {state.effective_at.isoformat()}; "
                             f"a change cannot be dated before that")
        category = "rebound" if state.person_id != w.person_id else (
            "changes" if state.status != w.status else None)
        if category is None and (card.valid_from, card.valid_to) == (w.valid_from, w.valid_to):
            results.append(None)
            continue
        # A card registered ahead of its first valid day has its newest row in the
        # future; a change before then takes effect with it, not under it.
        effective = w.at or max(now, state.effective_at)
        if seed is not None:
            history.append(seed)
        history.append(_history(uid, w.person_id, w.status, effective, now))
        updates.append({"uid": uid, "valid_from": w.valid_from, "valid_to": w.valid_to,
                        "status_since": effective if category else card.status_since,
                        "updated_at": now})
        changes.touch(card.site_code)
        changes.card_changed(uid, [state.person_id, w.person_id],
                             w.at if w.at and w.at < now else None)
        results.append(category or "changes")
    if new_cards:
        conn.execute(cards.insert(), new_cards)
    if history:
        conn.execute(card_history.insert(), history)
    if updates:
        conn.execute(cards.update().where(cards.c.card_uid == sa.bindparam("uid")).values(
            valid_from=sa.bindparam("valid_from"), valid_to=sa.bindparam("valid_to"),
            status_since=sa.bindparam("status_since"), updated_at=sa.bindparam("updated_at")),
            updates)
    return results


def _history(uid: str, person_id: str, status: str, effective_at: datetime,
             now: datetime) -> dict[str, Any]:
    return {"card_uid": uid, "person_id": person_id, "status": status,
            "effective_at": effective_at, "recorded_at": now}


def write_card(conn: Connection, changes: Changes, uid: str, person_id: str, *,
               status: str = "active", valid_from: date | None = None,
               valid_to: date | None = None, at: datetime | None = None) -> str | None:
    """:func:`write_cards` for one card."""
    return write_cards(conn, changes, [CardWrite(uid, person_id, status, valid_from, valid_to,
                                                 at)])[0]


def _changes(conn: Connection, now: datetime | None) -> Changes:
    from server.registry.apply import Changes, lock_registry

    lock_registry(conn)
    return Changes(conn, now=now)


def _require_person(conn: Connection, person_id: str) -> None:
    if conn.execute(sa.select(people.c.person_id).where(people.c.person_id == person_id)
                    ).first() is None:
        raise NotFound(f"no person {person_id!r} in the registry")


def bind_card(conn: Connection, card_uid: str, person_id: str, *, at: datetime | None = None,
              valid_from: date | None = None, valid_to: date | None = None,
              now: datetime | None = None) -> str | None:
    """Give the card to ``person_id`` (status active) with these validity dates.

    A new card is in force from the local midnight of ``valid_from`` (default:
    today), a card given to someone else from ``at`` (default: now); its old
    holder keeps the taps made before. Returns ``new``, ``rebound``,
    ``changes`` or None when the register already said so.
    """
    uid = parse_card_uid(card_uid)
    _require_person(conn, person_id)
    changes = _changes(conn, now)
    result = write_card(conn, changes, uid, person_id, status="active", valid_from=valid_from,
                        valid_to=valid_to, at=at)
    changes.finish()
    return result


def set_card_status(conn: Connection, card_uid: str, status: str, *,
                    at: datetime | None = None, now: datetime | None = None) -> bool:
    """Record that the card became ``status`` (active, lost, blocked, replaced) at ``at``
    (default now). Taps after that moment are judged with the new status; a lost
    card's later taps become anomalies. Returns False when it already had that status.
    """
    if status not in CARD_STATUSES:
        raise ValueError(f"card status {status!r} is not one of {', '.join(CARD_STATUSES)}")
    uid = normalise_uid(card_uid.strip())
    changes = _changes(conn, now)
    now = changes.now
    card = conn.execute(sa.select(cards).where(cards.c.card_uid == uid)).first()
    if card is None:
        raise NotFound(f"no card {uid} in the register")
    _check_at(at, now)
    latest = latest_state(conn, uid)
    if latest is not None and latest.status == status:
        return False
    if latest is None:
        if card.status == status:
            return False
        latest = _seed_history(conn, card, now)
    if at is not None and at < latest.effective_at:
        raise ValueError(f"card {uid} already changed at {latest.effective_at.isoformat()}; "
                         f"a change cannot be dated before that")
    effective = at or max(now, latest.effective_at)
    _add_history(conn, uid, latest.person_id, status, effective, now)
    conn.execute(cards.update().where(cards.c.card_uid == uid)
                 .values(status_since=effective, updated_at=now))
    changes.touch(card.site_code)
    changes.card_changed(uid, [latest.person_id], at if at and at < now else None)
    changes.finish()
    return True


def replace_card(conn: Connection, old_card_uid: str, new_card_uid: str, *,
                 at: datetime | None = None, now: datetime | None = None) -> str:
    """The holder of the old card gets the new one: the old card becomes ``replaced``
    and the new card is bound to the same person. Returns the person id."""
    old = normalise_uid(old_card_uid.strip())
    new = parse_card_uid(new_card_uid)
    if old == new:
        raise ValueError("the old and the new card are the same card")
    changes = _changes(conn, now)
    card = conn.execute(sa.select(cards).where(cards.c.card_uid == old)).first()
    if card is None:
        raise NotFound(f"no card {old} in the register")
    latest = latest_state(conn, old)
    person_id = latest.person_id if latest else card.person_id
    new_latest = latest_state(conn, new)
    new_card = conn.execute(sa.select(cards.c.person_id).where(cards.c.card_uid == new)).first()
    new_holder = new_latest.person_id if new_latest else (new_card.person_id if new_card else None)
    if new_holder is not None and new_holder != person_id:
        raise ValueError(f"card {new} belongs to {new_holder}; to give it to {person_id} "
                         f"use: attendance-server card bind")
    write_card(conn, changes, old, person_id, status="replaced",
               valid_from=card.valid_from, valid_to=card.valid_to, at=at)
    write_card(conn, changes, new, person_id, status="active", at=at)
    changes.finish()
    return person_id


def refresh_rosters(conn: Connection, site_codes: Iterable[str] | None = None, *,
                    now: datetime | None = None) -> list[Any]:
    """Rebuild the rosters of these sites (default: all) from the register as of today.

    Run it daily: a card whose validity starts or ends today changes status on
    the edges only through a refresh. Returns the :class:`server.roster.ImportSummary`
    of each site (``version`` None where nothing changed).
    """
    from server.registry.apply import refresh_rosters as refresh

    return refresh(conn, site_codes, now=now)
