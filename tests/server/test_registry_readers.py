"""Registry file reading without a database: encodings, header detection, cell values."""

import json
from datetime import date, datetime

import pytest
from hypothesis import given, strategies as st

from server.registry.diff import DiffEntry, RegistryDiff
from server.registry.problems import Problem, RegistryImportError
from server.registry.readers import (Column, decode_text, header_key, id_text, parse_date,
                                     parse_sex, read_table)

COLUMNS = (Column("nisn", (), required=True), Column("name", ("nama",), required=True),
           Column("group", ("rombel_saat_ini",)))


def read(tmp_path, text, name="f.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return read_table(path, COLUMNS)


def problems(excinfo):
    return [(p.line, p.field) for p in excinfo.value.problems]


@pytest.mark.parametrize("text, expected", [
    ("2026-03-02", date(2026, 3, 2)),
    ("2026-3-2", date(2026, 3, 2)),
    ("02/03/2026", date(2026, 3, 2)),
    ("2/3/2026", date(2026, 3, 2)),
    ("02-03-2026", date(2026, 3, 2)),
    ("2026-03-02 00:00:00", date(2026, 3, 2)),
    (datetime(2026, 3, 2, 0, 0), date(2026, 3, 2)),
    (date(2026, 3, 2), date(2026, 3, 2)),
    (46083, date(2026, 3, 2)),  # an Excel day number
])
def test_dates(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("2026-02-30", "not a real date"),
    ("31/13/2026", "not a real date"),
    ("March 2nd", "not a date"),
    ("", "not a date"),
])
def test_bad_dates(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_date(text)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)))
def test_both_text_forms_give_the_same_date(day):
    assert parse_date(day.isoformat()) == parse_date(day.strftime("%d/%m/%Y")) == day


@pytest.mark.parametrize("text, sex", [("L", "L"), ("p", "P"), ("Laki-laki", "L"),
                                       ("PEREMPUAN", "P"), (" Laki - Laki ", "L")])
def test_sex(text, sex):
    assert parse_sex(text) == sex


def test_bad_sex():
    with pytest.raises(ValueError, match="not L"):
        parse_sex("X")


def test_header_keys_and_ids():
    assert header_key(" Rombel Saat Ini ") == "rombel_saat_ini"
    assert header_key("L/P") == "l_p"
    assert id_text("'0123 456") == "0123456"


def test_title_rows_and_column_order(tmp_path):
    table = read(tmp_path, "Daftar Peserta Didik\nSDN 1\n\nNo,Rombel Saat Ini,NISN,Nama\n"
                           "1,6A,0123456789,Andi\n\n2,6B,0123456780,Budi\n")
    assert table.header_line == 4
    assert [(r.line, r.text("nisn"), r.text("name"), r.text("group")) for r in table.rows] == [
        (5, "0123456789", "Andi", "6A"), (7, "0123456780", "Budi", "6B")]
    assert table.titles == [(1, "Daftar Peserta Didik"), (2, "SDN 1"), (3, "")]


def test_quoted_newlines_count_physical_lines(tmp_path):
    table = read(tmp_path, 'nisn,nama\n0123456789,"Andi\nPratama"\n0123456780,Budi\n')
    assert [(r.line, r.text("name")) for r in table.rows] == [(2, "Andi\nPratama"), (4, "Budi")]


def test_tab_and_semicolon_delimiters(tmp_path):
    for delimiter in ("\t", ";"):
        table = read(tmp_path, f"nisn{delimiter}nama\n0123456789{delimiter}Andi, S\n")
        assert table.rows[0].text("name") == "Andi, S"


def test_too_many_fields(tmp_path):
    with pytest.raises(RegistryImportError) as excinfo:
        read(tmp_path, "nisn,nama\n0123456789,Andi,Pratama\n")
    assert problems(excinfo) == [(2, "")]


def test_no_header(tmp_path):
    with pytest.raises(RegistryImportError, match="no header row"):
        read(tmp_path, "a,b\n1,2\n")


def test_missing_and_doubled_columns(tmp_path):
    with pytest.raises(RegistryImportError) as excinfo:
        read(tmp_path, "x\nnama,rombel_saat_ini\n")
    assert [str(p) for p in excinfo.value.problems] == [
        f"{tmp_path / 'f.csv'}:2: nisn: required column nisn is missing"]
    with pytest.raises(RegistryImportError) as excinfo:
        read(tmp_path, "nisn,name,nama\n")
    assert "columns 'name' and 'nama' both give name" in str(excinfo.value)


@pytest.mark.parametrize("raw, line, hint", [
    ("nisn,nama\n0123456789,Andi\n0123456780,Ren\xe9\n".encode("latin-1"), 3, "Latin-1"),
    ("nisn,nama\n0123456789,Andi\n".encode("utf-16"), 1, "UTF-16"),
    ("nisn,nama\n0123456789,Andi\n".encode("utf-16-le"), 1, "UTF-16"),
])
def test_wrong_encodings_name_the_line(raw, line, hint):
    with pytest.raises(RegistryImportError) as excinfo:
        decode_text(raw, "f.csv")
    [problem] = excinfo.value.problems
    assert (problem.file, problem.line) == ("f.csv", line)
    assert hint in problem.reason and "save it as UTF-8" in problem.reason


def test_bom_is_dropped():
    assert decode_text(b"\xef\xbb\xbfnisn", "f.csv") == "nisn"


def test_xlsx_and_old_xls(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["Judul"])
    workbook.active.append(["NISN", "Nama"])
    workbook.active.append(["0123456789", "Andi"])
    workbook.save(tmp_path / "f.xlsx")
    table = read_table(tmp_path / "f.xlsx", COLUMNS)
    assert [(r.line, r.text("nisn")) for r in table.rows] == [(3, "0123456789")]
    with pytest.raises(RegistryImportError, match="old Excel .xls"):
        read(tmp_path, b"\xd0\xcf\x11\xe0" + b"\0" * 100, name="f.xls")
    with pytest.raises(RegistryImportError, match="not a readable XLSX"):
        read(tmp_path, b"PK\x03\x04broken", name="g.xlsx")


def test_json_rows(tmp_path):
    table = read(tmp_path, json.dumps({"rows": [{"NISN": "0123456789", "nama": "Andi"},
                                                {"nisn": None, "nama": "Budi"}]}),
                 name="f.json")
    assert table.unit == "row"
    assert [(r.line, r.text("nisn"), r.text("name")) for r in table.rows] == [
        (1, "0123456789", "Andi"), (2, "", "Budi")]
    with pytest.raises(RegistryImportError) as excinfo:
        read(tmp_path, '{"rows": [\n{"nama": 1},\n]}', name="f.json")
    assert problems(excinfo) == [(3, "")]
    with pytest.raises(RegistryImportError, match="missing from every row"):
        read(tmp_path, '{"rows": [{"nama": "A"}]}', name="f.json")


def test_problem_text():
    assert str(Problem("a.csv", 7, "nip", "bad")) == "a.csv:7: nip: bad"
    assert str(Problem("a.csv", 0, "--npsn", "bad")) == "a.csv: --npsn: bad"
    assert str(Problem("a.json", 3, "nisn", "bad", "row")) == "a.json: row 3: nisn: bad"
    error = RegistryImportError([Problem("a.csv", 7, "nip", "bad"), Problem("a.csv", 9, "", "x")])
    assert str(error) == "a.csv:7: nip: bad\na.csv:9: x"
    assert error.summary() == "a.csv: 2 problems, nothing was imported"
    assert isinstance(error, ValueError)


def test_diff_describe_and_dict():
    diff = RegistryDiff("employees", "e.csv")
    diff.add("transfers", DiffEntry("1985", "Budi", 3, "OPD-A", "OPD-B", date(2026, 2, 20),
                                    {"unit": ("A", "B")}))
    for n in range(3):
        diff.add("joiners", DiffEntry(f"P{n}", site_to="OPD-A", effective=date(2026, 3, 2)))
    diff.unchanged = 5
    assert diff.describe(limit=2).splitlines() == [
        "e.csv: employees: 3 joiners, 0 leavers, 1 transfers, 0 changes, 5 unchanged",
        "joiners:",
        "  + P0: OPD-A from 2026-03-02",
        "  + P1: OPD-A from 2026-03-02",
        "  … and 1 more",
        "transfers:",
        "  > 1985 Budi: OPD-A -> OPD-B from 2026-02-20; unit A -> B",
    ]
    data = json.loads(json.dumps(diff.to_dict(limit=1)))
    assert data["counts"] == {"joiners": 3, "leavers": 0, "transfers": 1, "changes": 0,
                              "unchanged": 5}
    assert data["transfers"] == [{"key": "1985", "name": "Budi", "line": 3, "site_from": "OPD-A",
                                  "site_to": "OPD-B", "effective": "2026-02-20",
                                  "changes": {"unit": ["A", "B"]}, "note": ""}]
    assert len(data["joiners"]) == 1 and not diff.is_empty()
