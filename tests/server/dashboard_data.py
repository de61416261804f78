"""A small city for the dashboard tests: three sites, people with cards, devices in every
state the fleet page shows, taps over the last weeks and the attendance and anomalies the
real reconciler makes of them, and two dashboard accounts.

Dates are relative to the day the tests run (the fleet page is about *now*):
:attr:`City.days` are the working days of the last three weeks, all reconciled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from server import accounts
from server.attendance_rules import RulesConfig
from server.db import utcnow
from server.excuses import Source, store_excuses
from server.reconcile import reconcile_days
from server.schedule import Calendar
from server.schema import devices
from tests.server.attendance_data import add_device, add_site, card_state, insert_taps
from tests.server.report_data import add_person
from tests.server.web_helpers import PASSWORD

DISKOMINFO = "diskominfo.admin"
OPERATOR = "operator.sdn001"
WIB = ZoneInfo("Asia/Jakarta")

SITES = [("OPD-KOMINFO", "Dinas Komunikasi dan Informatika", "office"),
         ("OPD-DINKES", "Dinas Kesehatan", "office"),
         ("20401234", "SD Negeri 001 Pekanbaru", "school")]
NAMES = ["Siti Rahmawati", "Budi Santoso", "Agus Salim", "Dewi Lestari", "Rina Wati",
         "Joko Susilo", "Andi Pratama", "Nur Aini", "Yusuf Hidayat", "Putri Maharani",
         "Eko Prasetyo", "Lestari Handayani", "Fajar Nugroho", "Indah Permata", "Hendra Gunawan",
         "Wulan Sari", "Rizky Ramadhan", "Maya Anggraini", "Bayu Saputra", "Citra Kirana"]
UNKNOWN_CARDS = ["04FFEE0000000%d" % n for n in range(1, 4)]


@dataclass
class City:
    today: date
    days: list[date]  # reconciled working days, oldest first
    people: dict[str, list[str]] = field(default_factory=dict)  # site -> person ids
    names: dict[str, str] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # role -> device id

    @property
    def last_day(self) -> date:
        return self.days[-1]

    @property
    def month(self) -> str:
        return f"{self.last_day:%Y-%m}"


def _workdays(today: date, back: int = 21) -> list[date]:
    calendar = Calendar()
    days = [today - timedelta(days=n) for n in range(back, 0, -1)]
    return [d for d in days if d.weekday() < 5 and calendar.holiday_name(d) is None]


def _device(engine: Any, site: str, name: str, **health: Any) -> str:
    extra = {k: health.pop(k) for k in ("reader_ok", "readers", "versions", "clock_offset_ms")
             if k in health}
    device_id = add_device(engine, site, **health)
    with engine.begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == device_id)
                     .values(name=name, **extra))
    return device_id


def build_city(engine: Any, *, now: datetime | None = None, seed: int = 7) -> City:
    """Fill the database behind ``engine`` (migrated, empty) with the city."""
    now = now or utcnow()
    rng = random.Random(seed)
    today = now.astimezone(WIB).date()
    city = City(today=today, days=_workdays(today))
    for code, _name, kind in SITES:
        add_site(engine, code, kind=kind)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE sites SET name = :n WHERE code = :c"),
                         {"n": _name, "c": code})

    # People with cards: six per office; at the school two teachers and six pupils.
    names = iter(NAMES)
    for code, _name, kind in SITES:
        ids = []
        for n in range(6 if kind == "office" else 8):
            student = kind == "school" and n >= 2
            person = (f"00{5100000 + len(city.names):08d}" if student
                      else f"1985{len(city.names):02d}152010011{n:03d}")
            name = next(names)
            group = (f"Kelas {5 + n % 2}A" if student else
                     ("Guru" if kind == "school" else ("Sekretariat" if n < 3 else "Bidang TI")))
            add_person(engine, person, name, "student" if student else "employee", code, group,
                       nip=None if student else person, nisn=person if student else None)
            card_state(engine, f"04A1{len(city.names):010X}", person, "active",
                       datetime(2026, 1, 1, tzinfo=timezone.utc))
            city.names[person] = name
            ids.append(person)
        city.people[code] = ids

    # Devices: online, offline with a backlog, reader down, never seen, revoked.
    minute = timedelta(minutes=1)
    city.devices["online"] = _device(
        engine, "OPD-KOMINFO", "gerbang utama", last_seen_at=now - minute, backlog=0,
        reader_ok=True, readers=[{"name": "ACR122U", "driver": "pcsc", "connected": True,
                                  "error": None}],
        versions={"software": "0.1.0"}, clock_offset_ms=-412)
    city.devices["offline"] = _device(
        engine, "OPD-DINKES", "pintu samping", last_seen_at=now - 180 * minute, backlog=37,
        oldest_unsent_at=now - 150 * minute, reader_ok=True, versions={"software": "0.0.9"},
        clock_offset_ms=185_000)
    city.devices["reader_down"] = _device(
        engine, "20401234", "gerbang sekolah", last_seen_at=now - 2 * minute, backlog=3,
        oldest_unsent_at=now - 2 * minute, reader_ok=False,
        readers=[{"name": "PN532", "driver": "nfc", "connected": False,
                  "error": "reader unplugged"}], versions={"software": "0.1.0"},
        clock_offset_ms=900)
    city.devices["never_seen"] = _device(engine, "20401234", "cadangan",
                                         created_at=now - 30 * minute, backlog=None)
    city.devices["revoked"] = _device(engine, "OPD-KOMINFO", "lama",
                                      last_seen_at=now - timedelta(days=40),
                                      revoked_at=now - timedelta(days=30))

    # Taps: most arrive on time, some late, a few leave early, some stay away.
    gate = {"OPD-KOMINFO": city.devices["online"], "OPD-DINKES": city.devices["offline"],
            "20401234": city.devices["reader_down"]}
    uid_of = {pid: f"04A1{i:010X}" for i, pid in enumerate(city.names)}
    for code, _name, kind in SITES:
        start = 7 * 60 + (0 if kind == "school" else 30)
        end = 14 * 60 if kind == "school" else 16 * 60
        taps = []
        for day in city.days:
            for pid in city.people[code]:
                roll = rng.random()
                if roll < 0.07:
                    continue  # alpa
                arrive = start - rng.randint(5, 40)
                if roll > 0.8:
                    arrive = start + rng.randint(3, 95)  # late, in every bracket
                leave = end + rng.randint(0, 40)
                if rng.random() < 0.08:
                    leave = end - rng.randint(10, 70)
                for minutes in (arrive, leave):
                    moment = datetime.combine(day, datetime.min.time(), WIB) + timedelta(
                        minutes=minutes, seconds=rng.randint(0, 59))
                    taps.append((uid_of[pid], moment.astimezone(timezone.utc)))
            if day.weekday() in (1, 3):  # an unknown card tries the gate
                unknown = UNKNOWN_CARDS[SITES.index((code, _name, kind))]
                moment = datetime.combine(day, datetime.min.time(), WIB) + timedelta(hours=7)
                taps.append((unknown, moment.astimezone(timezone.utc)))
        insert_taps(engine, gate[code], taps)
    # Excuses (sakit, izin) and a card reported lost that is used again.
    sick, pupil = city.people["OPD-KOMINFO"][1], city.people["20401234"][3]
    with engine.begin() as conn:
        store_excuses(conn, [
            {"excuse_id": "dash-sakit-1", "person_id": sick, "kind": "sakit",
             "date_from": city.days[2].isoformat(), "date_to": city.days[3].isoformat()},
            {"excuse_id": "dash-izin-1", "person_id": pupil, "kind": "izin",
             "date_from": city.days[5].isoformat(), "date_to": city.days[5].isoformat()}],
            Source(site_code=None, operator="tests"), now)
    loser = city.people["OPD-DINKES"][4]
    card_state(engine, uid_of[loser], loser, "lost",
               datetime.combine(city.days[-4], datetime.min.time(), WIB).astimezone(timezone.utc))
    reconcile_days(engine, [(code, day) for code, _n, _k in SITES for day in city.days],
                   config=RulesConfig(), now=now)

    with engine.begin() as conn:
        accounts.create_user(conn, DISKOMINFO, PASSWORD, "diskominfo")
        accounts.create_user(conn, OPERATOR, PASSWORD, "operator", "20401234")
    return city
