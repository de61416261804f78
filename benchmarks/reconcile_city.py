"""Reconciliation and recap of a synthetic city, against one SQL GROUP BY pass.

The city (``server.synthetic.SyntheticCity``): by default 10,000 ASN staff and
150,000 students in 400 sites, one device per site, two taps a day on each of
the 22 working days of October 2026 (about 7 million taps). The registries,
devices and taps are bulk-loaded straight into the tables (this is not the
import or ingest benchmark), then, timed:

* **day**: reconcile one day for every site (``server.reconcile``);
* **month**: reconcile every day of the month for every site (weekends make
  "LIBUR" rows);
* **recap**: the month's recap per person and site (``server.reports``);
* **baseline**: in the same run, one ``GROUP BY`` over the same taps (first and
  last tap and count per card and local day) for the day and for the month.

    .venv/bin/python benchmarks/reconcile_city.py [--database-url URL] [--sites 400]
        [--staff 10000] [--students 150000] [--workers 1] [--keep DIR]
        [--reuse] [--only day|month|recap]

SQLite by default (a file in a temporary directory); PostgreSQL with
``--database-url postgresql://…/DB`` — a scratch database the script may empty.
``--reuse`` keeps a city loaded by an earlier run (``--keep DIR`` on SQLite) and
only empties the attendance tables, so each measurement starts from the same
state without loading 7 million taps again.
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import os
import shutil
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from server.db import create_db_engine, migrate  # noqa: E402
from server.synthetic import SyntheticCity  # noqa: E402

MONTH = date(2026, 10, 1)  # 22 working days, no national holiday
SINCE = date(2025, 7, 1)
UTC = timezone.utc


def month_days(month: date) -> list[date]:
    last = calendar.monthrange(month.year, month.month)[1]
    return [month.replace(day=d) for d in range(1, last + 1)]


# -- loading ---------------------------------------------------------------------------------
def _sqlite_ts(value: datetime) -> str:
    """SQLAlchemy's SQLite text form of an aware UTC datetime (see server.schema.UTCDateTime)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Loader:
    """Bulk rows into the tables: executemany on SQLite, COPY on PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    def rows(self, table: str, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        raw = self.engine.raw_connection()
        try:
            if self.sqlite:
                cur = raw.cursor()
                # The random event_id index needs the cache: the default 2 MB makes
                # every insert a disk round trip once the table outgrows it.
                cur.execute("PRAGMA cache_size = -4000000")
                # The engine's connections run in autocommit mode (BEGIN comes from
                # SQLAlchemy's begin event): without this every row is a commit.
                cur.execute("BEGIN")
                sql = (f"INSERT INTO {table} ({', '.join(columns)}) "
                       f"VALUES ({', '.join('?' for _ in columns)})")
                batch: list[tuple[Any, ...]] = []
                for row in rows:
                    batch.append(tuple(_sqlite_ts(v) if isinstance(v, datetime) else
                                       (v.isoformat() if isinstance(v, date) else v)
                                       for v in row))
                    if len(batch) >= 50_000:
                        cur.executemany(sql, batch)
                        count += len(batch)
                        batch.clear()
                cur.executemany(sql, batch)
                count += len(batch)
            else:
                cur = raw.cursor()
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        count += 1
            raw.commit()
        finally:
            raw.close()
        return count


def load_city(engine: sa.Engine, city: SyntheticCity, month: date) -> dict[str, float]:
    """Registries, one device per site, and the month's taps; returns timings."""
    load = Loader(engine)
    now = datetime.now(UTC)
    created = datetime(SINCE.year, SINCE.month, SINCE.day, tzinfo=UTC)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    sites = city.sites()
    load.rows("sites", ["code", "name", "timezone", "created_at", "kind", "schedule", "regency",
                        "updated_at"],
              ((s.code, s.name, s.timezone, created, s.kind, s.schedule, s.regency, now)
               for s in sites))
    people = []
    for e in city.employees():
        people.append((e.nip, "employee", e.name, e.site_code, e.unit, now, e.nik, e.nip, None,
                       e.position, e.status, e.sex, e.birth_date, True))
    for s in city.students():
        people.append((s.nisn, "student", s.name, s.npsn, s.rombel, now, s.nik, None, s.nisn,
                       "", "", s.sex, s.birth_date, True))
    load.rows("people", ["person_id", "kind", "name", "site_code", "group_name", "updated_at",
                         "nik", "nip", "nisn", "position", "employment", "sex", "birth_date",
                         "active"], people)
    load.rows("person_sites", ["person_id", "site_code", "group_name", "valid_from"],
              ((p[0], p[3], p[4], SINCE) for p in people))
    site_of = {p[0]: p[3] for p in people}
    cards = [(c.card_uid, c.nip or c.nisn) for c in city.cards()]
    load.rows("cards", ["card_uid", "person_id", "status", "site_code", "changed_version",
                        "updated_at"],
              ((uid, pid, "active", site_of[pid], 1, now) for uid, pid in cards))
    load.rows("card_history", ["card_uid", "person_id", "status", "effective_at", "recorded_at"],
              ((uid, pid, "active", created, now) for uid, pid in cards))
    last_day = month_days(month)[-1]
    caught_up = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(2)
    device_of = {s.code: f"dev-{i:04d}" for i, s in enumerate(sites)}
    load.rows("devices", ["device_id", "site_code", "name", "hardware_id", "token_hash",
                          "created_at", "last_seen_at", "backlog", "reader_ok", "highest_seq"],
              ((device_of[s.code], s.code, "gerbang", f"bench-{i}",
                hashlib.sha256(os.urandom(16)).hexdigest(), created, caught_up, 0, True, 0)
               for i, s in enumerate(sites)))
    load.rows("clock_anchors", ["id", "device_id", "boot_id", "mono_ns", "device_wall",
                                "device_synced", "server_time", "source"],
              ((i + 1, device_of[s.code], "bench-boot", 0, created, True, created, "heartbeat")
               for i, s in enumerate(sites)))
    anchor_of = {s.code: i + 1 for i, s in enumerate(sites)}
    timings["registries_s"] = time.perf_counter() - start

    start = time.perf_counter()
    seq = {code: 0 for code in device_of}
    taps = 0

    def tap_rows() -> Iterator[tuple[Any, ...]]:
        nonlocal taps
        for day in month_days(month):
            for tap in city.taps_for_day(day):
                seq[tap.site_code] += 1
                at = tap.local_time.astimezone(UTC)
                taps += 1
                # Increasing ids keep the unique index append-only: loading is not
                # what this script measures (edges make random UUIDs).
                yield (f"{taps:032x}", device_of[tap.site_code], seq[tap.site_code],
                       tap.card_uid, tap.local_time.isoformat(timespec="milliseconds"), at,
                       "bench-boot", seq[tap.site_code], True, "gerbang", "accepted",
                       at + timedelta(seconds=5), at, "verified", anchor_of[tap.site_code],
                       tap.site_code)

    load.rows("taps", ["event_id", "device_id", "seq", "card_uid", "tapped_at", "tapped_at_utc",
                       "boot_id", "mono_ns", "clock_synced", "reader", "verdict", "received_at",
                       "corrected_at", "clock_status", "clock_anchor_id", "site_code"],
              tap_rows())
    with engine.begin() as conn:
        for code, last in seq.items():
            conn.execute(sa.text("UPDATE devices SET highest_seq = :s WHERE device_id = :d"),
                         {"s": last, "d": device_of[code]})
        if not load.sqlite:
            conn.execute(sa.text("ANALYZE"))
    if load.sqlite:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    timings["taps"] = taps
    timings["taps_s"] = time.perf_counter() - start
    return timings


# -- the baseline ------------------------------------------------------------------------------
def group_by_pass(engine: sa.Engine, first: date, last: date) -> tuple[float, int]:
    """First and last tap and count per card and local day, one statement; (seconds, groups)."""
    lo = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=7)
    hi = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(hours=17)
    if engine.dialect.name == "sqlite":
        local_day = "date(corrected_at, '+7 hours')"
        params = {"lo": _sqlite_ts(lo), "hi": _sqlite_ts(hi)}
    else:
        local_day = "(corrected_at AT TIME ZONE 'Asia/Jakarta')::date"
        params = {"lo": lo, "hi": hi}
    sql = sa.text(f"SELECT site_code, card_uid, {local_day} AS d, min(corrected_at), "
                  f"max(corrected_at), count(*) FROM taps "
                  f"WHERE corrected_at >= :lo AND corrected_at < :hi "
                  f"GROUP BY site_code, card_uid, {local_day}")
    start = time.perf_counter()
    with engine.connect() as conn:
        groups = len(conn.execute(sql, params).all())
    return time.perf_counter() - start, groups


# -- the system under test -----------------------------------------------------------------------
def reconcile(engine: sa.Engine, site_codes: list[str], days: list[date],
              workers: int) -> tuple[float, Any]:
    from server.attendance_rules import RulesConfig
    from server.reconcile import reconcile_days

    now = datetime(days[-1].year, days[-1].month, days[-1].day, tzinfo=UTC) + timedelta(2)
    start = time.perf_counter()
    result = reconcile_days(engine, [(code, day) for day in days for code in site_codes],
                            config=RulesConfig(), now=now, workers=workers)
    return time.perf_counter() - start, result


def recap(engine: sa.Engine, month: date) -> tuple[float, int]:
    from server.attendance_rules import RulesConfig
    from server.reports import monthly_recap

    start = time.perf_counter()
    with engine.connect() as conn:
        rows = monthly_recap(conn, month, config=RulesConfig())
    return time.perf_counter() - start, len(rows)


def loaded_taps(engine: sa.Engine) -> int:
    """Taps already in the database (0 when its tables do not exist yet)."""
    if "taps" not in sa.inspect(engine).get_table_names():
        return 0
    return count(engine, "taps")


def empty_results(engine: sa.Engine) -> None:
    """Forget earlier reconciliations: the measurements start from no attendance at all."""
    tables = ("attendance_days", "anomalies", "reconcile_queue")
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # TRUNCATE, not DELETE: five million dead rows would slow every later query.
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)}"))
        else:
            for table in tables:
                conn.execute(sa.text(f"DELETE FROM {table}"))


def count(engine: sa.Engine, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL scratch database (default: SQLite)")
    parser.add_argument("--sites", type=int, default=400)
    parser.add_argument("--staff", type=int, default=10_000)
    parser.add_argument("--students", type=int, default=150_000)
    parser.add_argument("--keep", type=Path, help="keep the SQLite file in this directory")
    parser.add_argument("--workers", type=int, default=1,
                        help="reconciliation processes (attendance-server reconcile --workers)")
    parser.add_argument("--reuse", action="store_true",
                        help="use the city already loaded (--keep DIR or the PostgreSQL database)")
    parser.add_argument("--only", choices=["day", "month", "recap"],
                        help="measure only this (recap needs the month reconciled)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="reconcile-city-"))
    url = args.database_url or f"sqlite:///{(args.keep or workdir) / 'city.db'}"
    engine = create_db_engine(url)
    reuse = args.reuse and loaded_taps(engine) > 0
    if args.reuse and not reuse:
        print("no city loaded yet: loading it", flush=True)
    if engine.dialect.name == "postgresql" and not reuse:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate(engine)
    try:
        city = SyntheticCity(1, sites=args.sites, staff=args.staff, students=args.students)
        print(f"city: {args.sites} sites, {args.staff} staff, {args.students} students; "
              f"{engine.dialect.name}; {args.workers} reconciliation worker(s)", flush=True)
        if reuse:
            if args.only != "recap":
                empty_results(engine)
            print(f"load: reusing the city loaded earlier ({loaded_taps(engine):,} taps)",
                  flush=True)
        else:
            loaded = load_city(engine, city, MONTH)
            print(f"load: registries {loaded['registries_s']:.1f} s; "
                  f"{int(loaded['taps']):,} taps in {loaded['taps_s']:.1f} s", flush=True)
        sites = [s.code for s in city.sites()]
        days = month_days(MONTH)
        one_day = [date(2026, 10, 14)]
        if args.only == "recap":
            recap_s, recap_rows = recap(engine, MONTH)
            print(f"month recap: {recap_s:.2f} s ({recap_rows:,} rows)", flush=True)
            return
        if args.only == "month":
            base_month, groups_month = group_by_pass(engine, days[0], days[-1])
            month_s, _ = reconcile(engine, sites, days, args.workers)
            print(f"month: reconcile {month_s:.1f} s "
                  f"({count(engine, 'attendance_days'):,} person-days); GROUP BY "
                  f"{base_month:.2f} s; ratio {month_s / base_month:.1f}", flush=True)
            return

        base_day, groups_day = group_by_pass(engine, one_day[0], one_day[0])
        day_s, _ = reconcile(engine, sites, one_day, args.workers)
        rows_day = count(engine, "attendance_days")
        print(f"one day: reconcile {day_s:.2f} s ({rows_day:,} person-days); "
              f"GROUP BY {base_day:.2f} s ({groups_day:,} groups); ratio {day_s / base_day:.1f}",
              flush=True)
        again_s, _ = reconcile(engine, sites, one_day, args.workers)
        print(f"one day again (nothing changes): {again_s:.2f} s", flush=True)
        if args.only == "day":
            return

        base_month, groups_month = group_by_pass(engine, days[0], days[-1])
        month_s, _ = reconcile(engine, sites, days, args.workers)
        rows_month = count(engine, "attendance_days")
        print(f"month: reconcile {month_s:.1f} s ({rows_month:,} person-days); "
              f"GROUP BY {base_month:.2f} s ({groups_month:,} groups); "
              f"ratio {month_s / base_month:.1f}", flush=True)

        recap_s, recap_rows = recap(engine, MONTH)
        print(f"month recap: {recap_s:.2f} s ({recap_rows:,} rows); "
              f"ratio to the month's GROUP BY {recap_s / base_month:.2f}", flush=True)
    finally:
        engine.dispose()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
