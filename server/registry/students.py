"""The student registry of one school: a Dapodik "Daftar Peserta Didik" export.

Accepted shapes:

* the spreadsheet export (XLSX, or CSV saved from it): title rows above the
  header, many columns of which only ``Nama``, ``NISN``, ``NIK``, ``JK``,
  ``Tanggal Lahir`` and ``Rombel Saat Ini`` are read, by name, in any order;
* the Dapodik web service answer ``{"rows": [{"nama", "nisn", "nik",
  "jenis_kelamin", "tanggal_lahir", "nama_rombel", …}]}`` (``getPesertaDidik``).

The school is given with ``npsn=`` or found in a title row ("NPSN : 12345678").
The file is the school's full list: a student of the school absent from a
new export is a leaver, or a transfer once another school's export lists
them. The person id is the NISN; the group is the rombel.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server.ids import nisn_problem, npsn_problem
from server.registry.apply import Changes, lock_registry
from server.registry.diff import RegistryDiff
from server.registry.people import (PersonRecord, Progress, apply_people, check_effective,
                                    check_effective_option, check_name, check_person_ids,
                                    no_progress, plan_people)
from server.registry.problems import Problem, Problems, RegistryImportError
from server.registry.readers import (Column, Source, Table, detect_format, load_source,
                                     parse_date, parse_sex, read_csv, read_json_rows, read_xlsx)
from server.schema import sites

COLUMNS = (
    Column("name", ("nama", "nama_peserta_didik", "nama_siswa"), required=True),
    Column("nisn", (), required=True),
    Column("nik", ("no_ktp",)),
    Column("sex", ("jk", "jenis_kelamin", "l_p")),
    Column("birth_date", ("tanggal_lahir", "tgl_lahir")),
    Column("group", ("rombel_saat_ini", "rombel", "nama_rombel", "kelas", "rombongan_belajar"),
           required=True),
    Column("effective_from", ("tanggal_efektif", "berlaku_mulai")),
)
FORMATS = ("csv", "xlsx", "dapodik-json")
LABELS = {"group_name": "rombel"}
_TITLE_NPSN = re.compile(r"\bNPSN\b\s*[:=]?\s*(\d{8})\b", re.IGNORECASE)


def read_students(source: Source, *, name: str | None = None, fmt: str | None = None) -> Table:
    """The rows of a Dapodik export (format detected unless ``fmt`` is given)."""
    file, raw = load_source(source, name)
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    fmt = {"dapodik-json": "json"}.get(fmt or "", fmt) or detect_format(raw, file)
    if fmt == "xlsx":
        return read_xlsx(raw, file, COLUMNS)
    if fmt == "json":
        return read_json_rows(raw, file, COLUMNS)
    return read_csv(raw, file, COLUMNS)


def school_of(table: Table, npsn: str | None) -> tuple[str, int]:
    """The school's NPSN and the line it comes from (0: the option)."""
    found = [(m.group(1), line) for line, text in table.titles
             for m in [_TITLE_NPSN.search(text)] if m]
    if npsn is not None:
        npsn = npsn.strip()
        problem = npsn_problem(npsn)
        if problem:
            raise RegistryImportError([Problem(table.file, 0, "--npsn", problem)])
        for value, line in found:
            if value != npsn:
                raise RegistryImportError([Problem(
                    table.file, line, "npsn", f"the file is the export of NPSN {value}, "
                                              f"not {npsn}")])
        return npsn, 0
    if not found:
        raise RegistryImportError([Problem(
            table.file, 0, "--npsn", "which school is this? give --npsn (the file's title "
                                     "rows name no NPSN)")])
    return found[0]


def parse_students(table: Table, problems: Problems, npsn: str) -> list[PersonRecord]:
    """Check every row; a record per row (``valid`` False for a row with problems)."""
    records: list[PersonRecord] = []
    seen: dict[str, dict[str, int]] = {"nisn": {}, "nik": {}}
    unit = table.unit + "s" if table.unit == "row" else "lines"
    for row in table.rows:
        before = len(problems)
        line = row.line
        nisn, nik = check_person_ids(row, problems, seen, "nisn", nisn_problem, unit)
        name = check_name(row, problems)
        fields: dict[str, Any] = {"name": name, "nisn": nisn, "group_name": row.text("group")}
        if row.has("nik"):
            fields["nik"] = nik
        if row.has("sex"):
            fields["sex"] = None
            if row.text("sex"):
                try:
                    fields["sex"] = parse_sex(row.values["sex"])
                except ValueError as exc:
                    problems.add(line, "sex", str(exc))
        if row.has("birth_date"):
            fields["birth_date"] = None
            if row.text("birth_date"):
                try:
                    fields["birth_date"] = parse_date(row.values["birth_date"])
                except ValueError as exc:
                    problems.add(line, "birth_date", str(exc))
        effective = check_effective(row, problems)
        records.append(PersonRecord(line, nisn, npsn, fields, effective,
                                    valid=len(problems) == before))
    return records


def import_students(conn: Connection, source: Source, *, npsn: str | None = None,
                    name: str | None = None, fmt: str | None = None, dry_run: bool = False,
                    effective: date | None = None, now: datetime | None = None,
                    progress: Progress[Any] = no_progress) -> RegistryDiff:
    """Import one school's students from a Dapodik export (XLSX, CSV or web-service JSON).

    ``fmt``: ``xlsx``, ``csv`` or ``dapodik-json`` (default: detected). All or
    nothing, in the caller's transaction: raises
    :class:`~server.registry.problems.RegistryImportError` listing every problem,
    or returns the diff, applied unless ``dry_run``.
    """
    if not dry_run:
        lock_registry(conn)
    table = read_students(source, name=name, fmt=fmt)
    npsn, npsn_line = school_of(table, npsn)
    problems = Problems(table.file, table.unit)
    site = conn.execute(sa.select(sites.c.code, sites.c.kind).where(sites.c.code == npsn)).first()
    if site is None:
        problems.add(npsn_line, "npsn" if npsn_line else "--npsn",
                     f"unknown school {npsn} (import sites.csv first, or attendance-server "
                     f"site add)")
    elif site.kind == "office":
        problems.add(npsn_line, "npsn" if npsn_line else "--npsn",
                     f"site {npsn} is an office, not a school")
    if not table.rows:
        problems.add(table.header_line, "", "no students below the header (an empty list "
                                            "would make every student of the school a leaver)")
    records = parse_students(table, problems, npsn)
    if site is None:
        problems.raise_if_any()
    changes = Changes(conn, now=now)
    check_effective_option(problems, effective, changes, [npsn])
    diff, plan = plan_people(conn, changes, problems, records, kind="student",
                             registry="students", scope_site=npsn, effective=effective,
                             labels=LABELS, key_field="nisn", progress=progress)
    problems.raise_if_any()
    if dry_run or diff.is_empty():
        return diff
    apply_people(conn, changes, plan, progress)
    diff.applied = True
    return diff
