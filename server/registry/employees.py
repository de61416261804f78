"""The ASN employee registry: ``employees.csv`` (or the same columns in an XLSX sheet).

Columns (header names in English or Indonesian, any order, title rows above
the header allowed): ``nip`` (required), ``name``/``nama`` (required),
``site_code``/``kode_opd``/``kode_unit`` (required), ``nik``,
``unit``/``unit_kerja``, ``position``/``jabatan``,
``status``/``status_pegawai`` (PNS, PPPK, …), ``sex``/``jenis_kelamin``/``jk``,
``birth_date``/``tanggal_lahir``, ``effective_from``.

The file is the whole registry of the regency: an employee placed anywhere
and absent from the file is a leaver. The person id is the NIP; the birth
date and sex written in the NIP must agree with the ``birth_date`` and
``sex`` columns when those are filled, and fill them when they are not.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from server.ids import nip_birth_date, nip_problem, nip_sex
from server.registry.apply import Changes, lock_registry
from server.registry.diff import RegistryDiff
from server.registry.people import (PersonRecord, Progress, apply_people, check_effective,
                                    check_effective_option, check_name, check_person_ids,
                                    no_progress, plan_people)
from server.registry.problems import Problems
from server.registry.readers import Column, Source, Table, parse_date, parse_sex, read_table

COLUMNS = (
    Column("nip", ("nip_baru",), required=True),
    Column("nik", ("no_ktp", "nomor_ktp")),
    Column("name", ("nama", "nama_lengkap", "nama_pegawai"), required=True),
    Column("site_code", ("site", "kode_opd", "kode_unit", "kode_unit_kerja", "kode_site"),
           required=True),
    Column("unit", ("unit_kerja", "nama_unit", "nama_unit_kerja", "nama_opd")),
    Column("position", ("jabatan", "nama_jabatan")),
    Column("status", ("status_pegawai", "status_kepegawaian", "jenis_pegawai")),
    Column("sex", ("jenis_kelamin", "jk", "l_p", "gender")),
    Column("birth_date", ("tanggal_lahir", "tgl_lahir")),
    Column("effective_from", ("tanggal_efektif", "berlaku_mulai")),
)
#: How the people fields are called in the diff of this registry.
LABELS = {"group_name": "unit", "employment": "status"}


def parse_employees(table: Table, problems: Problems) -> list[PersonRecord]:
    """Check every row; a record per row (``valid`` False for a row with problems)."""
    records: list[PersonRecord] = []
    seen: dict[str, dict[str, int]] = {"nip": {}, "nik": {}}
    lines = table.unit + "s" if table.unit == "row" else "lines"
    for row in table.rows:
        before = len(problems)
        line = row.line
        nip, nik = check_person_ids(row, problems, seen, "nip", nip_problem, lines)
        name = check_name(row, problems)
        site_code = row.text("site_code")
        if not site_code:
            problems.add(line, "site_code", "is empty")
        fields: dict[str, Any] = {"name": name, "nip": nip}
        if row.has("nik"):
            fields["nik"] = nik
        for key, target in (("unit", "group_name"), ("position", "position"),
                            ("status", "employment")):
            if row.has(key):
                fields[target] = row.text(key)
        nip_ok = not nip_problem(nip)
        fields["sex"] = nip_sex(nip) if nip_ok else None
        fields["birth_date"] = nip_birth_date(nip) if nip_ok else None
        if row.text("sex"):
            try:
                sex = parse_sex(row.values["sex"])
            except ValueError as exc:
                problems.add(line, "sex", str(exc))
            else:
                if nip_ok and sex != fields["sex"]:
                    problems.add(line, "sex", f"is {sex} but the NIP's sex digit says "
                                              f"{fields['sex']}")
        if row.text("birth_date"):
            try:
                born = parse_date(row.values["birth_date"])
            except ValueError as exc:
                problems.add(line, "birth_date", str(exc))
            else:
                if nip_ok and born != fields["birth_date"]:
                    problems.add(line, "birth_date",
                                 f"is {born} but the NIP says {fields['birth_date']}")
        effective = check_effective(row, problems)
        records.append(PersonRecord(line, nip, site_code, fields, effective,
                                    valid=len(problems) == before))
    return records


def import_employees(conn: Connection, source: Source, *, name: str | None = None,
                     fmt: str | None = None, dry_run: bool = False,
                     effective: date | None = None, now: datetime | None = None,
                     progress: Progress[Any] = no_progress) -> RegistryDiff:
    """Import the employee registry from ``source`` (a path, or bytes named ``name``).

    All or nothing, in the caller's transaction: raises
    :class:`~server.registry.problems.RegistryImportError` listing every problem,
    or returns the diff, applied unless ``dry_run``. Re-importing the same file
    writes nothing.
    """
    if not dry_run:
        lock_registry(conn)
    table = read_table(source, COLUMNS, name=name, fmt=fmt)
    problems = Problems(table.file, table.unit)
    if not table.rows:
        problems.add(table.header_line, "", "no employees below the header (an empty "
                                            "registry would make everyone a leaver)")
        problems.raise_if_any()
    records = parse_employees(table, problems)
    changes = Changes(conn, now=now)
    check_effective_option(problems, effective, changes, {r.site_code for r in records})
    diff, plan = plan_people(conn, changes, problems, records, kind="employee",
                             registry="employees", scope_site=None, effective=effective,
                             labels=LABELS, key_field="nip", progress=progress)
    problems.raise_if_any()
    if dry_run or diff.is_empty():
        return diff
    apply_people(conn, changes, plan, progress)
    diff.applied = True
    return diff
