"""Plain cards (taps summarized by the database) decide exactly as taps read one by one.

``server.reconcile`` reads most cards as one row per site and card (first and
last tap, count, any unverified clock) and only the others tap by tap (see
``_plain_and_detailed``). A random town with every kind of trouble is reconciled
twice, once with every card read tap by tap (the reference: the path the other
tests pin down), once as in production; attendance and anomalies must be the
same, on SQLite and PostgreSQL, for a batch of every site and for single sites.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

import server.reconcile as reconcile
from server.attendance_rules import (RulesConfig, TapFact, TapSummary, decide_day,
                                     evaluate_day, summarize)
from server.reconcile import CardStates, reconcile_days
from server.schedule import DEFAULT_SCHEDULES, Calendar, plan_day
from tests.server.attendance_data import (LONG_AGO, MONDAY, UTC, WIB, WIT, WITA, add_device,
                                          add_person, add_site, anomaly_rows, assign,
                                          attendance, card_state, insert_taps)

CONFIG = RulesConfig(many_taps=4)
ZONES = {"A": WIB, "B": WIB, "C": WITA, "D": WIT}


def _town(engine, seed: int) -> None:
    rng = random.Random(seed)
    devices = {}
    for code, zone in ZONES.items():
        add_site(engine, code, tz=zone.key, kind="office")
        devices[code] = add_device(engine, code, last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    cards: list[tuple[str, str]] = []  # (card, home site)
    for n in range(40):
        home = rng.choice("ABCD")
        pid = f"P{n:02d}"
        trouble = rng.random()
        if trouble < 0.1:  # transferred: a newer assignment elsewhere from Monday
            add_person(engine, pid, home, card=f"K{n:02d}")
            assign(engine, pid, rng.choice("ABCD"), MONDAY)
        elif trouble < 0.15:  # no assignment at all
            add_person(engine, pid, None, card=f"K{n:02d}")
        else:
            add_person(engine, pid, home, card=f"K{n:02d}")
        cards.append((f"K{n:02d}", home))
        trouble = rng.random()
        moment = datetime.combine(MONDAY, datetime.min.time(), ZONES[home]).astimezone(UTC)
        if trouble < 0.08:  # lost in the middle of the day
            card_state(engine, f"K{n:02d}", pid, "lost", moment + timedelta(hours=10))
        elif trouble < 0.12:  # blocked long ago
            card_state(engine, f"K{n:02d}", pid, "blocked", LONG_AGO + timedelta(days=1))
        elif trouble < 0.18:  # replaced at noon by a second card
            card_state(engine, f"K{n:02d}", pid, "replaced", moment + timedelta(hours=12))
            card_state(engine, f"R{n:02d}", pid, "active", moment + timedelta(hours=12))
            cards.append((f"R{n:02d}", home))
        elif trouble < 0.22:  # issued at 09:00 that day
            with engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM card_history WHERE card_uid = :c"),
                             {"c": f"K{n:02d}"})
            card_state(engine, f"K{n:02d}", pid, "active", moment + timedelta(hours=9))
        elif trouble < 0.26:  # valid until Sunday only
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE cards SET valid_to = :d WHERE card_uid = :c"),
                             {"d": MONDAY - timedelta(days=1), "c": f"K{n:02d}"})
    cards += [(f"UNKNOWN{n}", rng.choice("ABCD")) for n in range(3)]
    with engine.begin() as conn:
        for n in range(6):
            conn.execute(sa.text(
                "INSERT INTO excuses (excuse_id, person_id, kind, date_from, date_to, site_code,"
                " received_at) VALUES (:id, :p, :k, :f, :t, :s, :now)"),
                {"id": f"e{n}", "p": f"P{rng.randrange(40):02d}",
                 "k": rng.choice(["sakit", "izin", "dinas_luar", "cuti"]), "f": MONDAY,
                 "t": MONDAY, "s": rng.choice([None, "A", "B", "C", "D"]), "now": LONG_AGO})
    for card, home in cards:
        for _ in range(rng.choice([0, 1, 2, 2, 2, 2, 3, 6])):
            site = home if rng.random() < 0.85 else rng.choice("ABCD")
            local = datetime.combine(MONDAY, datetime.min.time(), ZONES[site])
            # Mostly working hours, sometimes just around midnight of either side.
            minutes = (rng.randrange(6 * 60, 18 * 60) if rng.random() < 0.75
                       else rng.choice([rng.randrange(-90, 0), rng.randrange(1380, 1530)]))
            moment = (local + timedelta(minutes=minutes, seconds=rng.randrange(60))).astimezone(UTC)
            insert_taps(engine, devices[site], [(card, moment)],
                        clock_status="unverified" if rng.random() < 0.05 else "verified")


def _results(engine) -> tuple[dict, list]:
    rows = {key: {k: v for k, v in row.items() if k not in ("version", "updated_at")}
            for key, row in attendance(engine).items()}
    found = [{k: v for k, v in row.items() if k not in ("id", "first_seen_at")}
             for row in anomaly_rows(engine)]
    return rows, found


def _forget(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM attendance_days"))
        conn.execute(sa.text("DELETE FROM anomalies"))


def _reconcile(engine, batch_sites: int) -> None:
    for day in (MONDAY - timedelta(days=1), MONDAY, MONDAY + timedelta(days=1)):
        reconcile_days(engine, [(code, day) for code in ZONES], config=CONFIG,
                       now=datetime(2030, 1, 1, tzinfo=UTC), batch_sites=batch_sites)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch_sites", [50, 1])  # every site at once; one site per batch
def test_plain_cards_decide_as_taps_read_one_by_one(engine, monkeypatch, seed, batch_sites):
    _town(engine, seed)
    split = reconcile._plain_and_detailed
    plain_seen = []

    def every_card(groups, *args, **kwargs):
        return [], {group[1] for group in groups}

    monkeypatch.setattr(reconcile, "_plain_and_detailed", every_card)
    _reconcile(engine, batch_sites)
    expected = _results(engine)

    def counting(groups, *args, **kwargs):
        plain, detailed = split(groups, *args, **kwargs)
        plain_seen.extend(plain)
        return plain, detailed

    _forget(engine)
    monkeypatch.setattr(reconcile, "_plain_and_detailed", counting)
    _reconcile(engine, batch_sites)
    assert _results(engine) == expected
    assert expected[0] and expected[1]  # the town has attendance and anomalies
    assert len(plain_seen) > 20  # and most cards were plain


def test_steady_card_states():
    t0 = datetime(2026, 11, 16, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    states = CardStates(
        timelines={"T": [(t0, "p", "active"), (t0 + 2 * hour, "p", "lost")]},
        single={"S": (t0, "p", "active", None, None, "Asia/Jakarta"),
                "V": (LONG_AGO, "p", "active", None, date(2026, 11, 16), "Asia/Jakarta")})
    assert states.steady("S", t0, t0 + hour) and not states.steady("S", t0 - hour, t0)
    assert states.steady("S", t0 - 2 * hour, t0 - hour)  # unknown all along
    assert states.steady("T", t0, t0 + hour) and not states.steady("T", t0 + hour, t0 + 3 * hour)
    # Valid until Monday: blocked from Tuesday 00:00 WIB (Monday 17:00 UTC).
    monday_end = datetime(2026, 11, 16, 17, tzinfo=UTC)
    assert states.steady("V", t0, monday_end - hour)
    assert not states.steady("V", monday_end - hour, monday_end)
    assert states.at("V", monday_end)[1] == "blocked"
    assert states.steady("NEVER", t0, t0 + hour)


@pytest.mark.parametrize("seed", range(20))
def test_merged_summaries_decide_as_the_taps(seed):
    rng = random.Random(seed)
    plan = plan_day(DEFAULT_SCHEDULES["asn"], Calendar(), MONDAY, WIB)
    start = datetime.combine(MONDAY, datetime.min.time(), WIB).astimezone(UTC)
    taps = [TapFact(start + timedelta(minutes=rng.randrange(5 * 60, 19 * 60)),
                    rng.choice(["A", "A", "A", "B"]), f"e{n}", rng.choice(["K1", "K2"]),
                    rng.choice(["verified"] * 9 + ["unverified"]),
                    rng.choice(["active"] * 5 + ["lost"]), "P")
            for n in range(rng.randrange(0, 5))]
    pending = rng.random() < 0.3
    reference = evaluate_day(plan, taps, [], site_code="A", pending=pending, config=CONFIG)
    merged = TapSummary()
    for card in ("K1", "K2"):
        merged = merged.merge(summarize([t for t in taps if t.card_uid == card], "A"))
    assert decide_day(plan, merged, [], pending=pending, config=CONFIG) == reference


def test_a_batch_across_zones_keeps_each_site_to_its_own_day(engine):
    """Read together, a WIT site widens the window by two hours: a WIB card's tap late on
    Sunday falls in it, but not in its own site's Monday."""
    add_site(engine, "WEST", tz="Asia/Jakarta")
    add_site(engine, "EAST", tz="Asia/Jayapura")
    west = add_device(engine, "WEST", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    add_device(engine, "EAST", last_seen_at=datetime(2030, 1, 1, tzinfo=UTC))
    add_person(engine, "P1", "WEST", card="K1")
    sunday = MONDAY - timedelta(days=1)
    insert_taps(engine, west, [
        ("K1", datetime.combine(sunday, datetime.min.time(), WIB).replace(hour=22)
         .astimezone(UTC)),
        ("K1", datetime.combine(MONDAY, datetime.min.time(), WIB).replace(hour=7, minute=20)
         .astimezone(UTC)),
        ("K1", datetime.combine(MONDAY, datetime.min.time(), WIB).replace(hour=16, minute=10)
         .astimezone(UTC))])
    [_, summary] = reconcile_days(engine, [("WEST", MONDAY), ("EAST", MONDAY)], config=CONFIG,
                                  now=datetime(2030, 1, 1, tzinfo=UTC))
    assert summary.site_code == "WEST" and summary.statuses == {"H": 1}
    [row] = attendance(engine).values()
    assert row["tap_count"] == 2 and row["check_in"].astimezone(WIB).hour == 7


@pytest.mark.parametrize("seed", [4, 5])
def test_new_rows_written_in_chunks_are_the_rows_written_at_once(engine, monkeypatch, seed):
    # On SQLite a batch's new rows are inserted by chunks on a second thread while the
    # next sites are decided (server.reconcile._NewRows); chunks of 3 rows make a town
    # of 40 people many chunks, against one insert.
    _town(engine, seed)
    monkeypatch.setattr(reconcile, "NEW_ROWS_CHUNK", 10**6)
    _reconcile(engine, 50)
    expected = _results(engine)
    _forget(engine)
    monkeypatch.setattr(reconcile, "NEW_ROWS_CHUNK", 3)
    _reconcile(engine, 50)
    assert _results(engine) == expected
    assert len(expected[0]) > 3 * 10
