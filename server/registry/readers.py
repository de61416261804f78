"""Reading registry files: CSV, XLSX and Dapodik JSON, with header detection.

Exports from Dapodik, SIMPEG and spreadsheets differ in small ways that must
not matter: title rows above the header, column order, Indonesian column
names, ``;`` instead of ``,`` (Excel in an Indonesian locale), a UTF-8 byte
order mark, dates as text or as real spreadsheet dates. So the header row is
found by looking for known column names among the first rows, and columns
are taken by name, never by position.

What must not be guessed is the text encoding: a Latin-1 or UTF-16 file is
refused with the line of the first bad byte, so that a name is never stored
garbled.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

from server.registry.problems import Problem, RegistryImportError

#: Where a registry file comes from: a path, or the bytes of an upload.
Source = str | Path | bytes

#: How many rows from the top may hold titles before the header row.
HEADER_SEARCH_ROWS = 50
FORMATS = ("csv", "xlsx", "json")
_DELIMITERS = (",", ";", "\t")
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls format
_EXCEL_EPOCH = date(1899, 12, 30)


@dataclass(frozen=True)
class Column:
    """A column the importer understands: canonical ``key`` and the header names it may have.

    Header names are compared after :func:`header_key` (case, spaces and
    punctuation do not matter: "Tanggal Lahir" is ``tanggal_lahir``).
    """

    key: str
    aliases: tuple[str, ...]
    required: bool = False


class NumberCell(str):
    """Text that came from a numeric spreadsheet cell (leading zeros may have been lost)."""


@dataclass
class Row:
    """One data row: its line (or row) number and the values of the known columns present."""

    line: int
    values: dict[str, Any]

    def text(self, key: str) -> str:
        """The cell as stripped text ("" when empty or when the column is absent)."""
        return cell_text(self.values.get(key))

    def has(self, key: str) -> bool:
        return key in self.values


@dataclass
class Table:
    """A file's rows below its header, keyed by canonical column name."""

    file: str
    rows: list[Row]
    columns: frozenset[str]
    header_line: int = 1
    titles: list[tuple[int, str]] = field(default_factory=list)
    unit: str = "line"


def header_key(text: Any) -> str:
    """A header cell in canonical form: lower case, words joined by ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", str(text or "").strip().lower()).strip("_")


def cell_text(value: Any) -> str:
    """A cell as text: numbers without ``.0``, dates as YYYY-MM-DD, whitespace stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return NumberCell(str(int(value)))
    if isinstance(value, int):
        return NumberCell(str(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() \
            else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    return NumberCell(text) if isinstance(value, NumberCell) else text


def load_source(source: Source, name: str | None = None) -> tuple[str, bytes]:
    """The file's name (for messages) and its bytes."""
    if isinstance(source, bytes):
        return name or "upload", source
    path = Path(source)
    try:
        return name or str(source), path.read_bytes()
    except OSError as exc:
        raise RegistryImportError([Problem(name or str(source), 0, "",
                                           f"cannot read the file: {exc.strerror}")]) from None


def detect_format(raw: bytes, name: str) -> str:
    """``xlsx``, ``json`` or ``csv``, from the content first and the file name second."""
    if raw.startswith(_XLSX_MAGIC):
        return "xlsx"
    if raw.startswith(_OLE_MAGIC):
        raise RegistryImportError([Problem(
            name, 0, "", "this is an old Excel .xls file: save it as .xlsx or as CSV UTF-8")])
    head = raw[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if name.lower().endswith(".json") or head.startswith((b"{", b"[")):
        return "json"
    return "csv"


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 text (a byte order mark is dropped); anything else is refused with the line
    of the first bad byte."""
    advice = 'save it as UTF-8 (in Excel: "CSV UTF-8 (Comma delimited)")'
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RegistryImportError([Problem(
            name, 1, "", f"the file is UTF-16 text, not UTF-8; {advice}")])
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise RegistryImportError([Problem(
            name, line, "", f"the file contains NUL bytes (UTF-16 or binary), not UTF-8 text; "
                            f"{advice}")])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        raise RegistryImportError([Problem(
            name, line, "", f"byte 0x{byte:02X} at column {column} is not UTF-8 (the file "
                            f"looks like Latin-1 or Windows-1252); {advice}")]) from None


# -- header detection ----------------------------------------------------------------------
def _match_header(cells: Sequence[Any], columns: Sequence[Column]) -> dict[str, list[int]]:
    """Canonical key -> positions of the cells that name it."""
    by_alias = {alias: col.key for col in columns for alias in (col.key, *col.aliases)}
    found: dict[str, list[int]] = {}
    for position, cell in enumerate(cells):
        key = by_alias.get(header_key(cell))
        if key is not None:
            found.setdefault(key, []).append(position)
    return found


def _find_header(rows: list[tuple[int, Sequence[Any]]], columns: Sequence[Column]
                 ) -> tuple[int, dict[str, list[int]]] | None:
    """The index (in ``rows``) of the row naming the most known columns (at least two)."""
    best: tuple[int, dict[str, list[int]]] | None = None
    for index, (_line, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        found = _match_header(cells, columns)
        if len(found) >= 2 and (best is None or len(found) > len(best[1])):
            best = (index, found)
    return best


def _build_table(name: str, rows: list[tuple[int, Sequence[Any]]], columns: Sequence[Column],
                 *, check_width: bool) -> Table:
    """Find the header among ``rows`` (line number, cells) and key the rows below it."""
    found = _find_header(rows, columns)
    if found is None:
        expected = ", ".join(c.key for c in columns if c.required) or \
            ", ".join(c.key for c in columns)
        raise RegistryImportError([Problem(
            name, 0, "", f"no header row found in the first {HEADER_SEARCH_ROWS} lines "
                         f"(expected columns: {expected})")])
    index, positions = found
    header_line, header = rows[index]
    problems: list[Problem] = []
    for key, where in positions.items():
        if len(where) > 1:
            names = " and ".join(repr(str(header[i]).strip()) for i in where)
            problems.append(Problem(name, header_line, key,
                                    f"columns {names} both give {key}; keep one"))
    for col in columns:
        if col.required and col.key not in positions:
            aliases = [a for a in col.aliases if a != col.key]
            also = f" (or {', '.join(aliases)})" if aliases else ""
            problems.append(Problem(name, header_line, col.key,
                                    f"required column {col.key}{also} is missing"))
    if problems:
        raise RegistryImportError(problems)
    take = {key: where[0] for key, where in positions.items()}
    width = len(header)
    titles = [(line, " ".join(cell_text(c) for c in cells if cell_text(c)))
              for line, cells in rows[:index]]
    data: list[Row] = []
    for line, cells in rows[index + 1:]:
        values = {key: (cells[pos] if pos < len(cells) else None) for key, pos in take.items()}
        if not any(cell_text(v) for v in values.values()):
            continue  # blank lines and footers outside the known columns
        if check_width and len(cells) > width and any(cell_text(c) for c in cells[width:]):
            problems.append(Problem(name, line, "",
                                    f"{len(cells)} fields but the header has {width} "
                                    f"(a comma inside a name must be quoted)"))
            continue
        data.append(Row(line, values))
    if problems:
        raise RegistryImportError(problems)
    return Table(name, data, frozenset(take), header_line, titles)


# -- CSV -----------------------------------------------------------------------------------
def _csv_rows(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        rows.append((start, cells))


def read_csv(raw: bytes, name: str, columns: Sequence[Column]) -> Table:
    """A CSV table; the delimiter (``,``, ``;`` or tab) is the one whose header row names
    the most known columns."""
    text = decode_text(raw, name)
    if not text.strip():
        raise RegistryImportError([Problem(name, 0, "", "the file is empty")])
    best: tuple[int, str] | None = None
    for delimiter in _DELIMITERS:
        try:
            head = _csv_rows("\n".join(text.splitlines()[:HEADER_SEARCH_ROWS]), delimiter)
        except csv.Error:
            continue
        found = _find_header(head, columns)
        score = len(found[1]) if found else 0
        if best is None or score > best[0]:
            best = (score, delimiter)
    delimiter = best[1] if best else ","
    try:
        rows = _csv_rows(text, delimiter)
    except csv.Error as exc:
        raise RegistryImportError([Problem(name, 0, "", f"not a readable CSV file: {exc}")]
                                  ) from None
    return _build_table(name, rows, columns, check_width=True)


# -- XLSX ----------------------------------------------------------------------------------
def read_xlsx(raw: bytes, name: str, columns: Sequence[Column]) -> Table:
    """The first sheet of an XLSX workbook that has a header row."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise RegistryImportError([Problem(name, 0, "", f"not a readable XLSX file ({exc})")]
                                  ) from None
    try:
        first_error: RegistryImportError | None = None
        for sheet in workbook.worksheets:
            rows = [(number, cells) for number, cells in
                    enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)]
            try:
                table = _build_table(name, rows, columns, check_width=False)
            except RegistryImportError as exc:
                first_error = first_error or exc
                continue
            if len(workbook.worksheets) > 1:
                table.file = f"{name} [{sheet.title}]"
            return table
    finally:
        workbook.close()
    raise first_error or RegistryImportError([Problem(name, 0, "", "the workbook has no sheet")])


# -- JSON ----------------------------------------------------------------------------------
def read_json_rows(raw: bytes, name: str, columns: Sequence[Column], *,
                   list_key: str = "rows") -> Table:
    """The objects of ``{"rows": [...]}`` (or a bare list); row numbers count from 1."""
    text = decode_text(raw, name)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryImportError([Problem(name, exc.lineno, "",
                                           f"not valid JSON: {exc.msg} (column {exc.colno})")]
                                  ) from None
    items = document.get(list_key) if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise RegistryImportError([Problem(
            name, 0, "", f'expected {{"{list_key}": [...]}} (the Dapodik web-service answer)')])
    by_alias = {alias: col.key for col in columns for alias in (col.key, *col.aliases)}
    problems: list[Problem] = []
    data: list[Row] = []
    present: set[str] = set()
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.append(Problem(name, number, "", "is not an object", "row"))
            continue
        values: dict[str, Any] = {}
        for raw_key, value in item.items():
            key = by_alias.get(header_key(raw_key))
            if key is not None and key not in values:
                values[key] = value if not isinstance(value, (dict, list)) else json.dumps(value)
        present.update(values)
        data.append(Row(number, values))
    if items:
        for col in columns:
            if col.required and col.key not in present:
                problems.append(Problem(name, 0, col.key,
                                        f"required field {col.key} is missing from every row"))
    if problems:
        raise RegistryImportError(problems)
    for row in data:
        for key in present:
            row.values.setdefault(key, None)
    return Table(name, data, frozenset(present), 0, [], unit="row")


def read_table(source: Source, columns: Sequence[Column], *, name: str | None = None,
               fmt: str | None = None) -> Table:
    """Read a registry file (CSV, XLSX or JSON, detected unless ``fmt`` says)."""
    name, raw = load_source(source, name)
    fmt = fmt or detect_format(raw, name)
    if fmt == "xlsx":
        return read_xlsx(raw, name, columns)
    if fmt == "json":
        return read_json_rows(raw, name, columns)
    if fmt == "csv":
        return read_csv(raw, name, columns)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


# -- cell values ---------------------------------------------------------------------------
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_DMY_DATE = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")


def parse_date(value: Any) -> date:
    """A date from a cell: a spreadsheet date, YYYY-MM-DD or DD/MM/YYYY (also DD-MM-YYYY).

    Raises ValueError with a reason for anything else.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and 0 < value < 2958466:
        # A date cell that lost its date format shows as Excel's day number.
        return _EXCEL_EPOCH + timedelta(days=int(value))
    text = cell_text(value)
    match = _ISO_DATE.fullmatch(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _DMY_DATE.fullmatch(text)
        if not match:
            raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")
        day, month, year = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date") from None


_SEXES = {"l": "L", "p": "P", "laki_laki": "L", "laki": "L", "pria": "L", "lk": "L",
          "perempuan": "P", "wanita": "P", "pr": "P"}


def parse_sex(value: Any) -> str:
    """``L`` (laki-laki) or ``P`` (perempuan); ValueError otherwise."""
    text = cell_text(value)
    sex = _SEXES.get(header_key(text))
    if sex is None:
        raise ValueError(f"{text!r} is not L (laki-laki) or P (perempuan)")
    return sex


def id_text(value: Any) -> str:
    """An identity number as typed: stripped, spaces and a leading apostrophe (Excel's
    "keep as text" mark) removed."""
    text = cell_text(value)
    cleaned = text.lstrip("'").replace(" ", "")
    return NumberCell(cleaned) if isinstance(text, NumberCell) else cleaned


def number_hint(value: str, problem: str) -> str:
    """``problem``, plus advice when the value came from a numeric spreadsheet cell."""
    if isinstance(value, NumberCell):
        return (problem + " (the cell is a number: format the column as Text so leading "
                          "zeros and long numbers are kept)")
    return problem

