"""Student registry import from Dapodik exports (XLSX, CSV, web-service JSON): header
detection, transfers between schools, class changes, malformed files (both backends)."""

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from server.registry import RegistryImportError, import_cards, import_sites, import_students
from server.roster import roster_for_site
from tests.server.helpers import count, rows
from tests.server.registry_data import (DAPODIK_HEADER, DAPODIK_TITLES, NOW, STUDENT_CARDS,
                                        STUDENTS, all_cards, cards_csv, dapodik_csv,
                                        dapodik_json, dapodik_xlsx, sites_csv, snapshot)

#: The shape of a real export (synthetic people), kept with the tests.
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "dapodik-peserta-didik-sample.xlsx"
ANDI, RINA, JOKO = STUDENTS
SD, SMP = "20401234", "20405678"


def run(engine, path, **options):
    with engine.begin() as conn:
        return import_students(conn, path, now=options.pop("now", NOW), **options)


@pytest.fixture
def sites(engine, tmp_path):
    with engine.begin() as conn:
        import_sites(conn, sites_csv(tmp_path), now=NOW)


def where(excinfo):
    return [(p.line, p.field) for p in excinfo.value.problems]


def placements(engine, person_id):
    return [(r["site_code"], r["group_name"], str(r["valid_from"]),
             str(r["valid_to"]) if r["valid_to"] else None)
            for r in rows(engine, "SELECT * FROM person_sites WHERE person_id = :p ORDER BY id",
                          p=person_id)]


def test_the_dapodik_sample_imports(engine, sites):
    sample = SAMPLE
    diff = run(engine, sample, npsn=SMP)
    assert diff.counts()["joiners"] == 30 and diff.site == SMP
    [siti] = rows(engine, "SELECT * FROM people WHERE nisn = '0128990608'")
    assert (siti["person_id"], siti["kind"], siti["name"], siti["sex"], str(siti["birth_date"]),
            siti["nik"], siti["group_name"], siti["site_code"]) == (
        "0128990608", "student", "Siti Pratama", "P", "2012-07-21", "1471076107121543",
        "Kelas 7B", SMP)
    assert run(engine, sample, npsn=SMP).is_empty()


def test_npsn_from_a_title_row(engine, tmp_path, sites):
    titles = DAPODIK_TITLES[:2] + [f"NPSN : {SD}"] + DAPODIK_TITLES[2:]
    diff = run(engine, dapodik_xlsx(tmp_path / "pd.xlsx", titles=titles))
    assert (diff.site, diff.counts()["joiners"]) == (SD, 3)
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, tmp_path / "pd.xlsx", npsn=SMP, dry_run=True)
    assert [str(p) for p in excinfo.value.problems] == [
        f"{tmp_path / 'pd.xlsx'}:3: npsn: the file is the export of NPSN {SD}, not {SMP}"]


def test_school_is_required(engine, tmp_path, sites):
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, dapodik_xlsx(tmp_path / "pd.xlsx"))
    assert where(excinfo) == [(0, "--npsn")]


def test_columns_in_another_order_with_extra_columns_and_date_cells(engine, tmp_path, sites):
    header = ("Rombel Saat Ini", "NIK", "Alamat", "Tanggal Lahir", "Nama", "NISN", "JK", "No")
    path = dapodik_xlsx(tmp_path / "pd.xlsx", header=header, titles=["Daftar Peserta Didik"],
                        date_cells=True)
    assert run(engine, path, npsn=SD).counts()["joiners"] == 3
    [rina] = rows(engine, "SELECT * FROM people WHERE person_id = :p", p=RINA.nisn)
    assert (rina["name"], rina["sex"], str(rina["birth_date"]), rina["group_name"]) == (
        "Rina Wati", "P", "2015-01-20", "Kelas 5B")
    # The default layout of the same students is a no-op.
    assert run(engine, dapodik_xlsx(tmp_path / "again.xlsx"), npsn=SD).is_empty()


def test_csv_export_with_title_rows_and_semicolons(engine, tmp_path, sites):
    path = dapodik_csv(tmp_path / "pd.csv", delimiter=";")
    assert run(engine, path, npsn=SD).counts()["joiners"] == 3
    assert run(engine, dapodik_xlsx(tmp_path / "pd.xlsx"), npsn=SD).is_empty()


def test_dapodik_web_service_json(engine, tmp_path, sites):
    path = dapodik_json(tmp_path / "getPesertaDidik.json")
    diff = run(engine, path, npsn=SD)
    assert diff.counts()["joiners"] == 3
    [andi] = rows(engine, "SELECT * FROM people WHERE person_id = :p", p=ANDI.nisn)
    assert (andi["name"], andi["nik"], andi["group_name"], str(andi["birth_date"])) == (
        ANDI.name, ANDI.nik, "Kelas 6A", "2014-05-02")
    # Bytes (an upload) with an explicit format give the same, so nothing changes.
    with engine.begin() as conn:
        again = import_students(conn, path.read_bytes(), name="upload", fmt="dapodik-json",
                                npsn=SD, now=NOW)
    assert again.is_empty() and again.source == "upload"


def test_reimport_writes_nothing(engine, tmp_path, sites):
    path = dapodik_xlsx(tmp_path / "pd.xlsx")
    run(engine, path, npsn=SD)
    with engine.begin() as conn:
        import_cards(conn, cards_csv(tmp_path, all_cards()[4:]), now=NOW)
    before = snapshot(engine)
    assert run(engine, path, npsn=SD, now=NOW + timedelta(days=1)).is_empty()
    assert snapshot(engine) == before


def test_class_change_is_not_a_transfer(engine, tmp_path, sites):
    run(engine, dapodik_xlsx(tmp_path / "pd.xlsx"), npsn=SD, effective=date(2026, 1, 5))
    with engine.begin() as conn:
        import_cards(conn, cards_csv(tmp_path, all_cards()[4:]), now=NOW)
        cursor = roster_for_site(conn, SD, None)["cursor"]
    path = dapodik_xlsx(tmp_path / "new.xlsx", overrides={0: {"Rombel Saat Ini": "Kelas 6B"}})
    diff = run(engine, path, npsn=SD)
    [change] = diff.entries["changes"]
    assert (change.key, change.changes) == (ANDI.nisn, {"rombel": ("Kelas 6A", "Kelas 6B")})
    assert diff.counts()["transfers"] == 0
    assert placements(engine, ANDI.nisn) == [(SD, "Kelas 6B", "2026-01-05", None)]
    with engine.connect() as conn:
        delta = roster_for_site(conn, SD, cursor)
    assert [(c["card_uid"], c["group"]) for c in delta["cards"]] == [
        (STUDENT_CARDS[0], "Kelas 6B")]


def test_transfer_between_schools(engine, tmp_path, sites):
    run(engine, dapodik_xlsx(tmp_path / "sd.xlsx"), npsn=SD, effective=date(2026, 1, 5))
    with engine.begin() as conn:
        import_cards(conn, cards_csv(tmp_path, all_cards()[4:]), now=NOW)
        cursor = roster_for_site(conn, SMP, None)["cursor"]
    # The SMP's export lists Andi first: a transfer from the SD, from 16 February.
    diff = run(engine, dapodik_xlsx(tmp_path / "smp.xlsx", [ANDI]), npsn=SMP,
               effective=date(2026, 2, 16))
    [transfer] = diff.entries["transfers"]
    assert (transfer.key, transfer.site_from, transfer.site_to, transfer.effective) == (
        ANDI.nisn, SD, SMP, date(2026, 2, 16))
    assert diff.counts()["leavers"] == 0
    assert placements(engine, ANDI.nisn) == [(SD, "Kelas 6A", "2026-01-05", "2026-02-15"),
                                             (SMP, "Kelas 6A", "2026-02-16", None)]
    with engine.connect() as conn:
        assert [c["card_uid"] for c in roster_for_site(conn, SMP, cursor)["cards"]] == [
            STUDENT_CARDS[0]]
    # The SD's next export no longer lists him: he is not its leaver any more.
    diff = run(engine, dapodik_xlsx(tmp_path / "sd2.xlsx", [RINA, JOKO]), npsn=SD)
    assert diff.is_empty()


def test_leaver_then_listed_by_another_school(engine, tmp_path, sites):
    run(engine, dapodik_xlsx(tmp_path / "sd.xlsx"), npsn=SD, effective=date(2026, 1, 5))
    diff = run(engine, dapodik_xlsx(tmp_path / "sd2.xlsx", [ANDI, JOKO]), npsn=SD,
               effective=date(2026, 2, 2))
    [leaver] = diff.entries["leavers"]
    assert (leaver.key, leaver.effective) == (RINA.nisn, date(2026, 2, 2))
    assert not rows(engine, "SELECT active FROM people WHERE person_id = :p",
                    p=RINA.nisn)[0]["active"]
    diff = run(engine, dapodik_xlsx(tmp_path / "smp.xlsx", [RINA]), npsn=SMP,
               effective=date(2026, 2, 9))
    [transfer] = diff.entries["transfers"]
    assert (transfer.site_from, transfer.site_to) == (SD, SMP)
    assert placements(engine, RINA.nisn) == [(SD, "Kelas 5B", "2026-01-05", "2026-02-01"),
                                             (SMP, "Kelas 5B", "2026-02-09", None)]
    assert rows(engine, "SELECT active FROM people WHERE person_id = :p",
                p=RINA.nisn)[0]["active"]


def test_a_later_transfer_date_shortens_the_leavers_last_placement(engine, tmp_path, sites):
    run(engine, dapodik_xlsx(tmp_path / "sd.xlsx"), npsn=SD, effective=date(2026, 1, 5))
    run(engine, dapodik_xlsx(tmp_path / "sd2.xlsx", [ANDI, JOKO]), npsn=SD)  # Rina left today
    run(engine, dapodik_xlsx(tmp_path / "smp.xlsx", [RINA]), npsn=SMP, effective=date(2026, 2, 9))
    assert placements(engine, RINA.nisn) == [(SD, "Kelas 5B", "2026-01-05", "2026-02-08"),
                                             (SMP, "Kelas 5B", "2026-02-09", None)]


def test_school_in_another_time_zone(engine, tmp_path, sites):
    # 23:30 in Jakarta is already tomorrow in Makassar (WITA).
    late = datetime(2026, 3, 2, 16, 30, tzinfo=NOW.tzinfo)
    run(engine, dapodik_xlsx(tmp_path / "pd.xlsx"), npsn="60101234", now=late)
    assert placements(engine, ANDI.nisn)[0][2] == "2026-03-03"


# -- malformed files --------------------------------------------------------------------------
def test_duplicate_nisn_and_other_bad_rows(engine, tmp_path, sites):
    path = dapodik_xlsx(tmp_path / "pd.xlsx", [ANDI, RINA, ANDI, JOKO], overrides={
        1: {"Tanggal Lahir": "2015-02-30", "JK": "X"},
        3: {"NISN": "01483440", "NIK": ""},
    })
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path, npsn=SD)
    header_line = len(DAPODIK_TITLES) + 1
    assert where(excinfo) == [
        (header_line + 2, "sex"), (header_line + 2, "birth_date"),
        (header_line + 3, "nisn"), (header_line + 3, "nik"),
        (header_line + 4, "nisn")]
    message = str(excinfo.value)
    assert f"pd.xlsx:{header_line + 3}: nisn: NISN {ANDI.nisn} is on lines {header_line + 1} " \
           f"and {header_line + 3}" in message
    assert f"pd.xlsx:{header_line + 4}: nisn: NISN must be 10 digits (got 8)" in message
    assert count(engine, "people") == 0


def test_missing_nisn_column(engine, tmp_path, sites):
    header = tuple(h for h in DAPODIK_HEADER if h != "NISN")
    path = dapodik_xlsx(tmp_path / "pd.xlsx", header=header)
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path, npsn=SD)
    assert [str(p) for p in excinfo.value.problems] == [
        f"{path}:{len(DAPODIK_TITLES) + 1}: nisn: required column nisn is missing"]
    assert count(engine, "people") == 0


def test_wrong_encoding_csv(engine, tmp_path, sites):
    path = dapodik_csv(tmp_path / "pd.csv")
    text = path.read_text(encoding="utf-8").replace("Rina Wati", "Rina Wâti")
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path, npsn=SD)
    [problem] = excinfo.value.problems
    assert problem.line == len(DAPODIK_TITLES) + 3
    assert "not UTF-8" in problem.reason and "save it as UTF-8" in problem.reason
    assert count(engine, "people") == 0


def test_unknown_school_and_office(engine, tmp_path, sites):
    path = dapodik_xlsx(tmp_path / "pd.xlsx")
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path, npsn="39999999")
    assert where(excinfo) == [(0, "--npsn")] and "unknown school 39999999" in str(excinfo.value)
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path, npsn="OPD-BKD")
    assert "NPSN must contain only digits" in str(excinfo.value)


def test_json_problems_name_the_row(engine, tmp_path, sites):
    path = dapodik_json(tmp_path / "pd.json")
    path.write_text(path.read_text().replace(JOKO.nisn, "12345"))
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path, npsn=SD)
    assert [str(p) for p in excinfo.value.problems] == [
        f"{path}: row 3: nisn: NISN must be 10 digits (got 5)"]
