"""Writing a batch's attendance: new rows by chunks beside the deciding, the fallback to an
upsert when a new row was stored after all, failures, and the paused garbage collector."""

from __future__ import annotations

import gc
import threading
from datetime import datetime, timedelta

import pytest

import server.reconcile as reconcile
from server.attendance_rules import RulesConfig
from server.reconcile import reconcile_days
from tests.server.attendance_data import (MONDAY, UTC, add_device, add_person, add_site, assign,
                                          at, attendance, counter, insert_taps)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CONFIG = RulesConfig()


def _school(engine) -> None:
    """Site A with P0 (to move to B on MONDAY); site B with P1…P6; every card taps."""
    for code in "AB":
        add_site(engine, code)
        add_device(engine, code, last_seen_at=NOW)
    add_person(engine, "P0", "A", card="K0")
    for n in range(1, 7):
        add_person(engine, f"P{n}", "B", card=f"K{n}")
    device_b = add_device(engine, "B", last_seen_at=NOW)
    insert_taps(engine, device_b, [(f"K{n}", at(MONDAY, f"07:0{n}")) for n in range(7)]
                + [(f"K{n}", at(MONDAY, "16:30")) for n in range(7)])


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_a_new_row_stored_after_all_is_upserted(engine, monkeypatch, chunk):
    # P0's row of the day is kept by site A; then P0 is assigned to B from that day, and
    # only B is reconciled: A's row is not among B's rows read, so P0's row is believed
    # new, its insert meets A's row, and that chunk is upserted instead.
    monkeypatch.setattr(reconcile, "NEW_ROWS_CHUNK", chunk)
    _school(engine)
    reconcile_days(engine, [("A", MONDAY)], config=CONFIG, now=NOW)
    assert attendance(engine)[("P0", MONDAY)]["site_code"] == "A"
    assign(engine, "P0", "B", MONDAY)

    reconcile_days(engine, [("B", MONDAY)], config=CONFIG, now=NOW)

    rows = attendance(engine, day=MONDAY)
    assert sorted(rows) == [(f"P{n}", MONDAY) for n in range(7)]
    assert {row["site_code"] for row in rows.values()} == {"B"}
    assert {row["status"] for row in rows.values()} == {"H"}
    assert rows[("P0", MONDAY)]["check_in"] == at(MONDAY, "07:00")
    assert len({row["version"] for row in rows.values()}) == 1  # one run, one version


# Chunks are SQLite's: PostgreSQL copies every new row at the end.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failed_chunk_writes_nothing_and_leaves_no_thread(engine, monkeypatch):
    _school(engine)
    monkeypatch.setattr(reconcile, "NEW_ROWS_CHUNK", 2)
    monkeypatch.setattr(reconcile, "_INSERT_JSON", "INSERT INTO no_such_table VALUES (?)")
    before = counter(engine)
    threads = threading.active_count()

    with pytest.raises(Exception, match="no_such_table"):
        reconcile_days(engine, [("B", MONDAY)], config=CONFIG, now=NOW)

    assert attendance(engine) == {}
    assert counter(engine) == before  # the version taken was rolled back with the rest
    assert threading.active_count() == threads


def test_an_error_while_deciding_waits_for_the_chunk_being_written(engine, monkeypatch):
    # The rules fail on the second site after the first site's rows went to the writing
    # thread: the error reaches the caller, the thread is joined, nothing is kept.
    _school(engine)
    add_site(engine, "C")
    add_person(engine, "P9", "C")
    monkeypatch.setattr(reconcile, "NEW_ROWS_CHUNK", 1)
    decide_site = reconcile._decide_site

    def failing(site, *args, **kwargs):
        if site.code == "C":
            raise RuntimeError("rules failed at C")
        return decide_site(site, *args, **kwargs)

    monkeypatch.setattr(reconcile, "_decide_site", failing)
    threads = threading.active_count()
    with pytest.raises(RuntimeError, match="rules failed at C"):
        reconcile_days(engine, [(code, MONDAY) for code in "ABC"], config=CONFIG, now=NOW)
    assert attendance(engine) == {}
    assert threading.active_count() == threads


def test_the_collector_is_paused_and_restored():
    was = gc.isenabled()
    try:
        gc.enable()
        with reconcile._collector_paused():
            assert not gc.isenabled()
            with reconcile._collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the outer block still runs
        assert gc.isenabled()
        gc.disable()  # a program that turned it off keeps it off
        with reconcile._collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_the_collector_is_restored_when_reconciling_fails(engine, monkeypatch):
    monkeypatch.setattr(reconcile, "_read_facts", lambda *a, **k: 1 / 0)
    add_site(engine, "A")
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        reconcile_days(engine, [("A", MONDAY - timedelta(days=7))], config=CONFIG, now=NOW)
    assert gc.isenabled()
