"""Small registry files for the registry and card tests (synthetic people, valid ids)."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from server.ids import make_nik, make_nip, make_nisn
from server.synthetic import EMPLOYEES_CSV_HEADER, EmployeeRow

#: A Monday, 10:00 in Jakarta: the "now" of the registry tests.
NOW = datetime(2026, 3, 2, 3, 0, tzinfo=timezone.utc)
TODAY = NOW.date()
REGION = "147101"  # Pekanbaru

SITES_HEADER = ("code", "name", "kind", "timezone", "schedule", "regency")
SITES = [
    ("OPD-DISDIK", "Dinas Pendidikan", "office", "WIB", "asn", "Kota Pekanbaru"),
    ("OPD-BKD", "Badan Kepegawaian Daerah", "kantor", "Asia/Jakarta", "asn", "Kota Pekanbaru"),
    ("20401234", "SD Negeri 001 Pekanbaru", "school", "WIB", "sekolah", "Kota Pekanbaru"),
    ("20405678", "SMP Negeri 2 Pekanbaru", "sekolah", "WIB", "", "Kota Pekanbaru"),
    ("60101234", "SD Negeri 3 Makassar", "school", "WITA", "sekolah", "Kota Makassar"),
]

#: The test employees are the generator's rows (server.synthetic), in its CSV format.
Employee = EmployeeRow
EMPLOYEES_HEADER = EMPLOYEES_CSV_HEADER


@dataclass(frozen=True)
class Student:
    nisn: str
    nik: str
    name: str
    sex: str
    birth_date: date
    rombel: str


def _employee(seed: int, name: str, site: str, unit: str, sex: str, born: date,
              status: str = "PNS") -> Employee:
    rng = random.Random(seed)
    return Employee(make_nip(rng, born, born.year + 25, 3, sex, serial=seed % 999 + 1),
                    make_nik(rng, REGION, born, sex), name, site, unit, "Analis", status, sex,
                    born)


EMPLOYEES = [
    _employee(1, "Budi Santoso", "OPD-DISDIK", "Sekretariat", "L", date(1985, 3, 15)),
    _employee(2, "Siti Aminah", "OPD-DISDIK", "Bidang SD", "P", date(1990, 7, 1)),
    _employee(3, "Agus Salim", "OPD-BKD", "Mutasi", "L", date(1979, 12, 31), "PPPK"),
    _employee(4, "Dewi Lestari", "20401234", "Guru", "P", date(1988, 2, 29)),
]


def _student(seed: int, name: str, sex: str, born: date, rombel: str) -> Student:
    rng = random.Random(1000 + seed)
    return Student(make_nisn(rng, born), make_nik(rng, REGION, born, sex), name, sex, born,
                   rombel)


STUDENTS = [
    _student(1, "Andi Pratama", "L", date(2014, 5, 2), "Kelas 6A"),
    _student(2, "Rina Wati", "P", date(2015, 1, 20), "Kelas 5B"),
    _student(3, "Joko Susilo", "L", date(2014, 11, 9), "Kelas 6A"),
]

#: Card UIDs: employees first, then students (7-byte and 4-byte UIDs).
EMPLOYEE_CARDS = ["04A1B2C3D4E5F6", "04A1B2C3D4E5F7", "8C3F2A11", "04A1B2C3D4E5F9"]
STUDENT_CARDS = ["04B1B2C3D4E501", "04B1B2C3D4E502", "1A2B3C4D"]

DAPODIK_HEADER = ("No", "Nama", "NIPD", "JK", "NISN", "Tempat Lahir", "Tanggal Lahir", "NIK",
                  "Agama", "Alamat", "Rombel Saat Ini")
DAPODIK_TITLES = ["Daftar Peserta Didik", "SD NEGERI 001 PEKANBARU",
                  "Kecamatan Sukajadi, Kota Pekanbaru, Prov. Riau",
                  "Tanggal Unduh: 2026-03-01 09:12:44", "Pengunduh: operator@sdn001.sch.id", ""]


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
              encoding: str = "utf-8", delimiter: str = ",",
              titles: Sequence[str] = ()) -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        for title in titles:
            writer.writerow([title] if title else [])
        writer.writerow(header)
        writer.writerows(rows)
    return path


def sites_csv(tmp_path: Path, rows: Iterable[Sequence[Any]] = SITES,
              name: str = "sites.csv") -> Path:
    return write_csv(tmp_path / name, SITES_HEADER, rows)


def employees_csv(tmp_path: Path, employees: Iterable[Employee] = EMPLOYEES, *,
                  name: str = "employees.csv", extra: dict[str, list[str]] | None = None
                  ) -> Path:
    """employees.csv; ``extra`` adds columns (name -> one value per employee)."""
    employees = list(employees)
    header = list(EMPLOYEES_HEADER) + list(extra or {})
    rows = [list(e.csv_row()) + [values[i] for values in (extra or {}).values()]
            for i, e in enumerate(employees)]
    return write_csv(tmp_path / name, header, rows)


def cards_csv(tmp_path: Path, rows: Iterable[Sequence[Any]], *, name: str = "cards.csv",
              header: Sequence[str] = ("card_uid", "nip", "nisn", "nik", "status",
                                       "valid_from", "valid_to")) -> Path:
    return write_csv(tmp_path / name, header, rows)


def all_cards() -> list[tuple[str, ...]]:
    """cards.csv rows: one active card per employee (by NIP) and student (by NISN)."""
    rows = [(uid, e.nip, "", e.nik, "active", "", "") for uid, e in zip(EMPLOYEE_CARDS, EMPLOYEES)]
    rows += [(uid, "", s.nisn, "", "aktif", "", "") for uid, s in zip(STUDENT_CARDS, STUDENTS)]
    return rows


def dapodik_cells(student: Student, number: int) -> dict[str, Any]:
    return {"No": number, "Nama": student.name, "NIPD": f"{number:05d}", "JK": student.sex,
            "NISN": student.nisn, "Tempat Lahir": "Pekanbaru",
            "Tanggal Lahir": student.birth_date.isoformat(), "NIK": student.nik,
            "Agama": "Islam", "Alamat": f"Jl. Contoh No. {number}",
            "Rombel Saat Ini": student.rombel}


def dapodik_xlsx(path: Path, students: Iterable[Student] = STUDENTS, *,
                 header: Sequence[str] = DAPODIK_HEADER, titles: Sequence[str] = DAPODIK_TITLES,
                 date_cells: bool = False, overrides: dict[int, dict[str, Any]] | None = None
                 ) -> Path:
    """A Dapodik-like export; ``date_cells`` writes birth dates as real Excel dates,
    ``overrides`` replaces cells of the n-th student (0-based)."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Peserta Didik"
    for title in titles:
        sheet.append([title] if title else [])
    sheet.append(list(header))
    for index, student in enumerate(students):
        cells = dapodik_cells(student, index + 1)
        if date_cells:
            cells["Tanggal Lahir"] = datetime.combine(student.birth_date, datetime.min.time())
        cells.update((overrides or {}).get(index, {}))
        sheet.append([cells[h] for h in header])
    workbook.save(path)
    return path


def dapodik_csv(path: Path, students: Iterable[Student] = STUDENTS, *,
                header: Sequence[str] = DAPODIK_HEADER, titles: Sequence[str] = DAPODIK_TITLES,
                encoding: str = "utf-8", delimiter: str = ",") -> Path:
    rows = [[dapodik_cells(s, i + 1)[h] for h in header] for i, s in enumerate(students)]
    return write_csv(path, header, rows, encoding=encoding, delimiter=delimiter, titles=titles)


def dapodik_json(path: Path, students: Iterable[Student] = STUDENTS) -> Path:
    path.write_text(json.dumps({"results": 3, "rows": [
        {"peserta_didik_id": f"id-{s.nisn}", "nama": s.name, "nisn": s.nisn, "nik": s.nik,
         "jenis_kelamin": s.sex, "tempat_lahir": "Pekanbaru",
         "tanggal_lahir": s.birth_date.isoformat(), "nama_rombel": s.rombel}
        for s in students]}, indent=1), encoding="utf-8")
    return path


def moved(employee: Employee, **changes: Any) -> Employee:
    return replace(employee, **changes)


#: Tables an import may write; a no-op import leaves every row of them as it was.
WRITTEN_TABLES = ("sites", "people", "person_sites", "cards", "card_history", "roster_changes",
                  "counters", "reconcile_queue")


def snapshot(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an import writes, in a stable order."""
    from server.schema import metadata

    out = {}
    with engine.connect() as conn:
        for name in WRITTEN_TABLES:
            table = metadata.tables[name]
            out[name] = [tuple(r) for r in conn.execute(
                sa.select(table).order_by(*table.primary_key.columns))]
    return out
