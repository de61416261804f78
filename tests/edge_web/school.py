"""The registry of a test school, put into a real central server by its own import commands.

The edge's tests need the server to know people (with and without a card) the
way a deployment does: ``attendance-server import sites|employees|students|cards``
with the file formats of docs/REGISTRY.md, not rows written behind its back.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable, Sequence

from tests.sync_env import CentralServer

NPSN = "20401234"
OTHER_NPSN = "20405678"


@dataclass(frozen=True)
class Student:
    nisn: str
    name: str
    sex: str
    rombel: str
    card: str | None = None


@dataclass(frozen=True)
class Employee:
    nip: str
    name: str
    unit: str
    card: str | None = None


SITI = Student("0051234567", "Siti Aminah", "P", "VII-A", "04A1B2C3D4E5F6")
BUDI = Student("0051234568", "Budi Santoso", "L", "VII-A", "04A1B2C3D4E5F7")
CITRA = Student("0051234569", "Citra Lestari", "P", "VII-B", "04A1B2C3D4E5F8")
EKA = Student("0051234570", "Eka Putri", "P", "VII-B")  # no card yet: to be enrolled
DEWI = Employee("198703152010012003", "Dewi Kartika", "Guru", "8C3F2A11")

#: The school of the operator's page tests: four students (one without a card), a teacher.
STUDENTS = (SITI, BUDI, CITRA, EKA)
EMPLOYEES = (DEWI,)


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]],
           titles: Sequence[str] = ()) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        for line in titles:
            handle.write(line + "\n")
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def import_students(server: CentralServer, workdir: Path, students: Iterable[Student], *,
                    npsn: str = NPSN, effective: date | None = None) -> None:
    """A Dapodik "Daftar Peserta Didik" export of school ``npsn`` (its whole list)."""
    path = _write(workdir / f"peserta-didik-{npsn}.csv",
                  ["No", "Nama", "JK", "NISN", "Rombel Saat Ini"],
                  [[str(i), s.name, s.sex, s.nisn, s.rombel]
                   for i, s in enumerate(students, 1)],
                  titles=["Daftar Peserta Didik", f"NPSN : {npsn}", ""])
    server.cli("import", "students", str(path), "--npsn", npsn,
               *(["--effective", effective.isoformat()] if effective else []))


def import_employees(server: CentralServer, workdir: Path, employees: Iterable[Employee], *,
                     site: str = NPSN, effective: date | None = None) -> None:
    """The ASN registry (the whole regency's, here only this school's teachers)."""
    path = _write(workdir / "employees.csv", ["nip", "name", "site_code", "unit"],
                  [[e.nip, e.name, site, e.unit] for e in employees])
    server.cli("import", "employees", str(path),
               *(["--effective", effective.isoformat()] if effective else []))


def import_cards(server: CentralServer, workdir: Path,
                 holders: Iterable[Student | Employee], *, valid_from: date | None = None) -> None:
    """The card register: an active card for every holder that has one."""
    rows = []
    for holder in holders:
        if holder.card is None:
            continue
        nip, nisn = (holder.nip, "") if isinstance(holder, Employee) else ("", holder.nisn)
        rows.append([holder.card, nip, nisn, "active",
                     valid_from.isoformat() if valid_from else ""])
    path = _write(workdir / "cards.csv", ["card_uid", "nip", "nisn", "status", "valid_from"],
                  rows)
    server.cli("import", "cards", str(path))


def load_school(server: CentralServer, workdir: Path, *,
                students: Sequence[Student] = STUDENTS,
                employees: Sequence[Employee] = EMPLOYEES, schedule: str = "",
                other_school: Sequence[Student] = (), since: date | None = None) -> None:
    """Sites, teachers, students and cards of school :data:`NPSN` (already added with
    ``site add``), and of :data:`OTHER_NPSN` when ``other_school`` lists its students.

    ``since`` dates the placements and cards (default: today), so that a later import
    can make someone a leaver without ending a stay on the day it began.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sites = [[NPSN, "SDN 001 Pekanbaru", "school", "WIB", schedule, "Kota Pekanbaru"]]
    if other_school:
        sites.append([OTHER_NPSN, "SDN 002 Pekanbaru", "school", "WIB", "", "Kota Pekanbaru"])
    server.cli("import", "sites", str(_write(
        workdir / "sites.csv", ["code", "name", "kind", "timezone", "schedule", "regency"],
        sites)))
    import_employees(server, workdir, employees, effective=since)
    import_students(server, workdir, students, effective=since)
    if other_school:
        import_students(server, workdir, other_school, npsn=OTHER_NPSN, effective=since)
    import_cards(server, workdir, [*employees, *students, *other_school], valid_from=since)
