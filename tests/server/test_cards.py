"""The card lifecycle: binding, lost/blocked/replaced, validity dates, history lookups
for reconciliation, roster deltas and requeued days (both backends)."""

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from server.cards import (CardState, CardStateChange, bind_card, build_timeline, card_info,
                          card_state_at, card_states_for, find_person, gate_status,
                          refresh_rosters, replace_card, set_card_status, state_at)
from server.errors import NotFound
from server.registry import import_employees, import_sites
from server.roster import RosterLine, import_roster, roster_for_site
from server.schema import card_history, cards
from tests.server.helpers import count, rows
from tests.server.registry_data import EMPLOYEES, NOW, employees_csv, sites_csv, snapshot

BUDI, SITI, AGUS, DEWI = EMPLOYEES
CARD, OTHER = "04A1B2C3D4E5F6", "04D1D2D3D4D5D6"
UTC = timezone.utc


def at(text):
    """A moment written in Jakarta time (WIB, UTC+7)."""
    return datetime.fromisoformat(text + "+07:00")


@pytest.fixture
def registry(engine, tmp_path):
    with engine.begin() as conn:
        import_sites(conn, sites_csv(tmp_path), now=NOW)
        import_employees(conn, employees_csv(tmp_path), effective=date(2026, 1, 5), now=NOW)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM reconcile_queue"))


def bind(engine, uid, person, **options):
    with engine.begin() as conn:
        return bind_card(conn, uid, person, now=options.pop("now", NOW), **options)


def status(engine, uid, value, **options):
    with engine.begin() as conn:
        return set_card_status(conn, uid, value, now=options.pop("now", NOW), **options)


def state(engine, uid, moment):
    with engine.connect() as conn:
        return card_state_at(conn, uid, moment)


def feed(engine, site, since=None):
    with engine.connect() as conn:
        return roster_for_site(conn, site, since)


def history(engine, uid):
    h = card_history.c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(h.person_id, h.status, h.effective_at).where(h.card_uid == uid)
            .order_by(h.effective_at, h.id))]


def card_row(engine, uid):
    with engine.connect() as conn:
        return conn.execute(sa.select(cards).where(cards.c.card_uid == uid)).mappings().one()


def queued(engine):
    return sorted((r["site_code"], str(r["day"])) for r in rows(
        engine, "SELECT * FROM reconcile_queue"))


# -- pure rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize("registry_status, valid_from, valid_to, today, expected", [
    ("active", None, None, date(2026, 3, 2), "active"),
    ("active", date(2026, 3, 2), date(2026, 3, 2), date(2026, 3, 2), "active"),
    ("active", date(2026, 3, 3), None, date(2026, 3, 2), "blocked"),
    ("active", None, date(2026, 3, 1), date(2026, 3, 2), "blocked"),
    ("lost", None, date(2026, 3, 1), date(2026, 3, 2), "lost"),
    ("blocked", None, None, date(2026, 3, 2), "blocked"),
    ("replaced", None, None, date(2026, 3, 2), "blocked"),
])
def test_gate_status(registry_status, valid_from, valid_to, today, expected):
    assert gate_status(registry_status, valid_from, valid_to, today) == expected


def test_timeline_applies_validity_to_the_current_binding_only():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows_ = [(t0, "A", "active"), (t0 + timedelta(days=30), "B", "active")]
    timeline = build_timeline(rows_, valid_from=date(2026, 2, 5), valid_to=date(2026, 2, 10),
                              zone="Asia/Jakarta")
    assert timeline == [
        CardStateChange(t0, "A", "active"),
        CardStateChange(t0 + timedelta(days=30), "B", "blocked"),  # 31 Jan, before 5 Feb
        CardStateChange(at("2026-02-05T00:00"), "B", "active"),
        CardStateChange(at("2026-02-11T00:00"), "B", "blocked"),
    ]
    assert state_at(timeline, t0 + timedelta(days=3)) == CardState("A", "active")
    assert state_at(timeline, t0 - timedelta(seconds=1)) is None


# -- binding -----------------------------------------------------------------------------------
def test_new_card_counts_from_local_midnight_of_its_first_day(engine, registry):
    assert bind(engine, CARD, BUDI.nip, valid_from=date(2026, 2, 1)) == "new"
    assert history(engine, CARD) == [(BUDI.nip, "active", at("2026-02-01T00:00"))]
    assert state(engine, CARD, at("2026-01-31T23:59")) is None
    assert state(engine, CARD, at("2026-02-01T00:00")) == (BUDI.nip, "active")
    [card] = rows(engine, "SELECT * FROM cards")
    assert (card["person_id"], card["status"], card["site_code"], str(card["valid_from"])) == (
        BUDI.nip, "active", "OPD-DISDIK", "2026-02-01")
    assert [c["card_uid"] for c in feed(engine, "OPD-DISDIK")["cards"]] == [CARD]
    # Taps since 1 February count now: those days are queued.
    assert queued(engine)[0] == ("OPD-DISDIK", "2026-02-01") and len(queued(engine)) == 30
    # Binding it again to the same person with the same dates changes nothing.
    before = snapshot(engine)
    assert bind(engine, CARD, BUDI.nip, valid_from=date(2026, 2, 1)) is None
    assert snapshot(engine) == before


def test_new_card_without_dates_counts_from_today(engine, registry):
    bind(engine, "04:a1:b2:c3:d4:e5:f6", BUDI.nip)
    assert history(engine, CARD) == [(BUDI.nip, "active", at("2026-03-02T00:00"))]


def test_rebinding_keeps_the_old_taps_with_the_old_holder(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 1, 5))
    cursor = feed(engine, "OPD-DISDIK")["cursor"]
    handed_over = at("2026-02-16T12:00")
    assert bind(engine, CARD, SITI.nip, at=handed_over) == "rebound"
    assert state(engine, CARD, handed_over - timedelta(seconds=1)) == (BUDI.nip, "active")
    assert state(engine, CARD, handed_over) == (SITI.nip, "active")
    assert history(engine, CARD) == [(BUDI.nip, "active", at("2026-01-05T00:00")),
                                     (SITI.nip, "active", handed_over)]
    [card] = rows(engine, "SELECT person_id FROM cards")
    assert card["person_id"] == SITI.nip
    delta = feed(engine, "OPD-DISDIK", cursor)
    assert [(c["card_uid"], c["person_id"], c["name"]) for c in delta["cards"]] == [
        (CARD, SITI.nip, "Siti Aminah")]


def test_rebinding_to_someone_at_another_site_moves_the_card(engine, registry):
    bind(engine, CARD, BUDI.nip)
    cursors = {s: feed(engine, s)["cursor"] for s in ("OPD-DISDIK", "OPD-BKD")}
    bind(engine, CARD, AGUS.nip)
    assert feed(engine, "OPD-DISDIK", cursors["OPD-DISDIK"])["removed"] == [CARD]
    assert [c["person_id"] for c in feed(engine, "OPD-BKD", cursors["OPD-BKD"])["cards"]] == [
        AGUS.nip]


# -- status changes ----------------------------------------------------------------------------
def test_lost_card_later_taps_change_earlier_taps_stay(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 1, 5))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM reconcile_queue"))
    cursor = feed(engine, "OPD-DISDIK")["cursor"]
    lost_at = at("2026-02-27T15:00")
    assert status(engine, CARD, "lost", at=lost_at) is True
    assert state(engine, CARD, lost_at - timedelta(minutes=1)) == (BUDI.nip, "active")
    assert state(engine, CARD, lost_at) == (BUDI.nip, "lost")
    assert state(engine, CARD, NOW) == (BUDI.nip, "lost")
    card = card_row(engine, CARD)
    assert (card["status"], card["status_since"]) == ("lost", lost_at)
    assert [(c["card_uid"], c["status"]) for c in feed(engine, "OPD-DISDIK", cursor)["cards"]] \
        == [(CARD, "lost")]
    # The days since the loss are judged again.
    assert queued(engine) == [("OPD-DISDIK", d) for d in
                              ("2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02")]
    # Reporting it lost again changes nothing.
    before = snapshot(engine)
    assert status(engine, CARD, "lost") is False
    assert snapshot(engine) == before
    # Found again: active from now.
    assert status(engine, CARD, "active", now=NOW + timedelta(hours=1)) is True
    assert state(engine, CARD, NOW + timedelta(hours=2)) == (BUDI.nip, "active")
    assert state(engine, CARD, NOW) == (BUDI.nip, "lost")


def test_change_times_are_checked(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 2, 1))
    with pytest.raises(ValueError, match="in the future"):
        status(engine, CARD, "lost", at=NOW + timedelta(hours=1))
    with pytest.raises(ValueError, match="cannot be dated before"):
        status(engine, CARD, "lost", at=at("2026-01-20T08:00"))
    with pytest.raises(ValueError, match="UTC offset"):
        status(engine, CARD, "lost", at=datetime(2026, 2, 20, 8, 0))
    with pytest.raises(ValueError, match="status"):
        status(engine, CARD, "stolen")
    assert history(engine, CARD) == [(BUDI.nip, "active", at("2026-02-01T00:00"))]


def test_unknown_cards_people_and_random_uids(engine, registry):
    with pytest.raises(NotFound):
        status(engine, CARD, "lost")
    with pytest.raises(NotFound):
        bind(engine, CARD, "199999999999999999")
    with pytest.raises(ValueError, match="random"):
        bind(engine, "08A1B2C3", BUDI.nip)
    with pytest.raises(ValueError, match="bytes"):
        bind(engine, "04A1B2", BUDI.nip)
    assert count(engine, "cards") == 0 and count(engine, "card_history") == 0


def test_replace(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 1, 5))
    cursor = feed(engine, "OPD-DISDIK")["cursor"]
    with engine.begin() as conn:
        assert replace_card(conn, CARD, OTHER, now=NOW) == BUDI.nip
    assert state(engine, CARD, NOW) == (BUDI.nip, "replaced")
    assert state(engine, CARD, NOW - timedelta(seconds=1)) == (BUDI.nip, "active")
    assert state(engine, OTHER, NOW) == (BUDI.nip, "active")
    # The edges are sent the replaced card as blocked.
    assert sorted((c["card_uid"], c["status"]) for c in feed(engine, "OPD-DISDIK", cursor)
                  ["cards"]) == [(CARD, "blocked"), (OTHER, "active")]
    with engine.connect() as conn:
        info = card_info(conn, CARD)
    assert (info["status"], info["gate_status"]) == ("replaced", "blocked")
    # A card of someone else cannot be the replacement.
    bind(engine, "04E1E2E3E4E5E6", SITI.nip)
    with engine.begin() as conn, pytest.raises(ValueError, match="belongs to"):
        replace_card(conn, OTHER, "04E1E2E3E4E5E6", now=NOW)


# -- validity dates ----------------------------------------------------------------------------
def test_expired_card_is_blocked_at_the_gate_and_for_reconciliation(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 1, 5), valid_to=date(2026, 2, 28))
    assert state(engine, CARD, at("2026-02-28T23:59")) == (BUDI.nip, "active")
    assert state(engine, CARD, at("2026-03-01T00:00")) == (BUDI.nip, "blocked")
    [card] = rows(engine, "SELECT status FROM cards")
    assert card["status"] == "blocked"
    assert [c["status"] for c in feed(engine, "OPD-DISDIK")["cards"]] == ["blocked"]
    # The register still says active (the gates are told blocked).
    with engine.connect() as conn:
        assert card_info(conn, CARD)["status"] == "active"


def test_refresh_activates_a_card_on_its_first_valid_day(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 3, 4))
    assert [c["status"] for c in feed(engine, "OPD-DISDIK")["cards"]] == ["blocked"]
    cursor = feed(engine, "OPD-DISDIK")["cursor"]
    with engine.begin() as conn:
        assert all(s.version is None for s in refresh_rosters(conn, now=NOW))
    with engine.begin() as conn:
        refresh_rosters(conn, now=at("2026-03-04T00:05"))
    assert [(c["card_uid"], c["status"]) for c in feed(engine, "OPD-DISDIK", cursor)["cards"]] \
        == [(CARD, "active")]


def test_lost_before_its_first_valid_day(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 3, 9))
    status(engine, CARD, "lost")
    assert state(engine, CARD, at("2026-03-09T07:00")) == (BUDI.nip, "lost")
    assert [s for _p, s, _t in history(engine, CARD)] == ["active", "lost"]


# -- reconciliation lookups --------------------------------------------------------------------
def test_card_states_for_a_day(engine, registry):
    bind(engine, CARD, BUDI.nip, valid_from=date(2026, 1, 5))
    bind(engine, OTHER, SITI.nip, valid_from=date(2026, 1, 5))
    status(engine, CARD, "lost", at=at("2026-02-27T10:00"))
    bind(engine, "04F1F2F3F4F5F6", AGUS.nip, valid_from=date(2026, 3, 1))
    start, end = at("2026-02-27T00:00"), at("2026-02-28T00:00")
    with engine.connect() as conn:
        found = card_states_for(conn, [CARD, OTHER, "04F1F2F3F4F5F6", "04000000000000"],
                                start, end)
    assert found == {
        CARD: [CardStateChange(at("2026-01-05T00:00"), BUDI.nip, "active"),
               CardStateChange(at("2026-02-27T10:00"), BUDI.nip, "lost")],
        OTHER: [CardStateChange(at("2026-01-05T00:00"), SITI.nip, "active")],
    }
    assert state_at(found[CARD], at("2026-02-27T07:30")) == (BUDI.nip, "active")
    assert state_at(found[CARD], at("2026-02-27T16:00")) == (BUDI.nip, "lost")


# -- cards made by a roster import -------------------------------------------------------------
def test_roster_import_cards_keep_their_past_and_their_site(engine, registry):
    with engine.begin() as conn:
        import_roster(conn, "20405678", [
            RosterLine("04C1C2C3C4C5C6", "P-1", "Legacy One", "employee", "TU"),
            RosterLine("04C1C2C3C4C5C7", "P-2", "Legacy Two", "employee", "TU")])
    assert state(engine, "04C1C2C3C4C5C6", at("2020-01-01T08:00")) == ("P-1", "active")
    status(engine, "04C1C2C3C4C5C6", "blocked")
    assert state(engine, "04C1C2C3C4C5C6", at("2020-01-01T08:00")) == ("P-1", "active")
    assert state(engine, "04C1C2C3C4C5C6", NOW) == ("P-1", "blocked")
    # The site's roster keeps both cards; the blocked one is sent as blocked.
    with engine.begin() as conn:
        refresh_rosters(conn, now=NOW)
    assert [(c["card_uid"], c["status"]) for c in feed(engine, "20405678")["cards"]] == [
        ("04C1C2C3C4C5C6", "blocked"), ("04C1C2C3C4C5C7", "active")]


def test_find_person(engine, registry):
    with engine.connect() as conn:
        assert find_person(conn, nik=SITI.nik) == SITI.nip
        assert find_person(conn, nip=SITI.nip, nik=SITI.nik) == SITI.nip
        with pytest.raises(ValueError, match="different people"):
            find_person(conn, nip=BUDI.nip, nik=SITI.nik)
        with pytest.raises(NotFound):
            find_person(conn, nisn="0000000001")
