"""The local roster cache: which card belongs to whom, and which cards are refused.

The sync worker fills it from the server; until then (or on a site that is
never online) it can be loaded from a CSV file::

    card_uid,person_id,name,kind,group,status
    04A1B2C3D4E5F6,0051234567,Siti Aminah,student,VII-A,active
    8C3F2A11,198703152010012003,Budi Santoso,employee,Tata Usaha,blocked

``card_uid``, ``person_id`` are required; ``name``, ``kind`` (student,
employee), ``group`` (rombel or unit) and ``status`` (active, blocked, lost,
replaced; default active) are optional. A load replaces the whole cache,
and is all-or-nothing: a file with any bad row changes nothing and every bad
row is reported with file, line and field.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from edge.errors import RosterImportError
from edge.rules import CARD_STATUSES, RosterEntry
from hardware.errors import InvalidUID
from hardware.uid import is_random_uid, normalise_uid

REQUIRED = ("card_uid", "person_id")
OPTIONAL = ("name", "kind", "group", "status")
KINDS = ("", "student", "employee")


def parse_roster_csv(path: str | Path) -> list[RosterEntry]:
    """Parse and validate a roster CSV; raise :class:`RosterImportError` listing every problem."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RosterImportError([(name, 0, "-", f"cannot read file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RosterImportError(
            [(name, line, "-", "not UTF-8 text (save the file as CSV UTF-8)")]
        ) from None
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    problems: list[tuple[str, int, str, str]] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise RosterImportError([(name, 1, "-", "the file is empty")]) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RosterImportError(
            [(name, 1, c, "required column is missing") for c in missing]
        )
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    for col in unknown:
        problems.append((name, 1, col, f"unknown column (known: {', '.join(REQUIRED + OPTIONAL)})"))
    index = {h: i for i, h in enumerate(header)}
    entries: list[RosterEntry] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append((name, line, "-", f"{len(row)} fields, the header has {len(header)}"))
            continue

        def cell(col: str) -> str:
            return row[index[col]].strip() if col in index else ""

        uid_text = cell("card_uid")
        try:
            uid = normalise_uid(uid_text)
        except InvalidUID as exc:
            problems.append((name, line, "card_uid", str(exc)))
            uid = None
        if uid and is_random_uid(uid):
            problems.append((name, line, "card_uid",
                             f"{uid} is a random (per-session) UID and cannot identify a card"))
        elif uid and uid in seen:
            problems.append((name, line, "card_uid", f"{uid} already on line {seen[uid]}"))
        elif uid:
            seen[uid] = line
        person = cell("person_id")
        if not person:
            problems.append((name, line, "person_id", "is empty"))
        status = cell("status").lower() or "active"
        if status not in CARD_STATUSES:
            problems.append((name, line, "status",
                             f"{status!r} is not one of {', '.join(CARD_STATUSES)}"))
        kind = cell("kind").lower()
        if kind not in KINDS:
            problems.append((name, line, "kind", f"{kind!r} is not student or employee"))
        if uid and person:
            entries.append(RosterEntry(uid, person, cell("name"), kind, cell("group"), status))
    if problems:
        raise RosterImportError(problems)
    return entries
