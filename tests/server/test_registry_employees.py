"""Employee registry import: formats, the diff (joiners, leavers, transfers), no-op
re-imports, dry runs and malformed files (both backends)."""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from server.registry import RegistryImportError, import_cards, import_employees, import_sites
from server.roster import roster_for_site
from tests.server.helpers import count, rows
from tests.server.registry_data import (EMPLOYEE_CARDS, EMPLOYEES, NOW, all_cards,
                                        cards_csv, employees_csv, moved, sites_csv, snapshot,
                                        write_csv)

BUDI, SITI, AGUS, DEWI = EMPLOYEES
START = date(2026, 1, 5)
RUDI = moved(BUDI, nip="199203252019031001", nik="1471012503920001", name="Rudi Hartono",
             birth_date=date(1992, 3, 25))


def run(engine, importer, path, **options):
    with engine.begin() as conn:
        return importer(conn, path, now=options.pop("now", NOW), **options)


@pytest.fixture
def sites(engine, tmp_path):
    run(engine, import_sites, sites_csv(tmp_path))


@pytest.fixture
def staffed(engine, tmp_path, sites):
    """The four employees placed since START, each with a card."""
    run(engine, import_employees, employees_csv(tmp_path), effective=START)
    run(engine, import_cards, cards_csv(tmp_path, all_cards()[:4]))


def where(excinfo):
    return [(p.line, p.field) for p in excinfo.value.problems]


def placements(engine, person_id):
    return [(r["site_code"], r["group_name"], str(r["valid_from"]),
             str(r["valid_to"]) if r["valid_to"] else None)
            for r in rows(engine, "SELECT * FROM person_sites WHERE person_id = :p ORDER BY id",
                          p=person_id)]


def feed(engine, site, since=None):
    with engine.connect() as conn:
        return roster_for_site(conn, site, since)


def test_first_import_places_everyone(engine, tmp_path, sites):
    diff = run(engine, import_employees, employees_csv(tmp_path))
    assert diff.applied and diff.counts() == {"joiners": 4, "leavers": 0, "transfers": 0,
                                              "changes": 0, "unchanged": 0}
    people = {r["person_id"]: r for r in rows(engine, "SELECT * FROM people")}
    budi = people[BUDI.nip]
    assert (budi["kind"], budi["name"], budi["site_code"], budi["group_name"], budi["nik"],
            budi["nip"], budi["nisn"], budi["position"], budi["employment"], budi["sex"],
            str(budi["birth_date"]), bool(budi["active"])) == (
        "employee", "Budi Santoso", "OPD-DISDIK", "Sekretariat", BUDI.nik, BUDI.nip, None,
        "Analis", "PNS", "L", "1985-03-15", True)
    assert people[AGUS.nip]["employment"] == "PPPK"
    assert sorted(placements(engine, e.nip)[0][0] for e in EMPLOYEES) == sorted(
        e.site_code for e in EMPLOYEES)
    assert placements(engine, SITI.nip) == [("OPD-DISDIK", "Bidang SD", "2026-03-02", None)]
    # Today is queued at every site that gained people.
    assert sorted((r["site_code"], str(r["day"])) for r in rows(
        engine, "SELECT * FROM reconcile_queue")) == [
        ("20401234", "2026-03-02"), ("OPD-BKD", "2026-03-02"), ("OPD-DISDIK", "2026-03-02")]


def test_reimport_writes_nothing(engine, tmp_path, staffed):
    before = snapshot(engine)
    diff = run(engine, import_employees, employees_csv(tmp_path), now=NOW + timedelta(days=3))
    assert diff.is_empty() and not diff.applied
    assert diff.counts() == {"joiners": 0, "leavers": 0, "transfers": 0, "changes": 0,
                             "unchanged": 4}
    assert snapshot(engine) == before


def test_dry_run_writes_nothing(engine, tmp_path, staffed):
    before = snapshot(engine)
    path = employees_csv(tmp_path, [BUDI, SITI, DEWI, RUDI])
    diff = run(engine, import_employees, path, dry_run=True)
    assert (diff.counts()["joiners"], diff.counts()["leavers"], diff.applied) == (1, 1, False)
    assert snapshot(engine) == before


def test_indonesian_headers_shuffled_columns_semicolons_and_titles(engine, tmp_path, sites):
    header = ("jabatan", "Nama", "NIP", "Unit Kerja", "kode_opd", "Jenis Kelamin",
              "Tanggal Lahir", "Status Pegawai", "NIK")
    path = write_csv(tmp_path / "pegawai.csv", header, [
        (e.position, e.name, e.nip, e.unit, e.site_code, e.sex,
         e.birth_date.strftime("%d/%m/%Y"), e.status, e.nik) for e in EMPLOYEES],
        delimiter=";", titles=["Daftar Pegawai ASN Kota Pekanbaru", ""])
    assert run(engine, import_employees, path).counts()["joiners"] == 4
    # The same registry in the English format is then a no-op.
    assert run(engine, import_employees, employees_csv(tmp_path)).is_empty()


def test_utf8_bom_is_fine(engine, tmp_path, sites):
    path = employees_csv(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert run(engine, import_employees, path).counts()["joiners"] == 4


def test_birth_date_and_sex_come_from_the_nip_when_absent(engine, tmp_path, sites):
    path = write_csv(tmp_path / "e.csv", ("nip", "name", "site_code"),
                     [(SITI.nip, SITI.name, SITI.site_code)])
    run(engine, import_employees, path)
    [siti] = rows(engine, "SELECT sex, birth_date, nik, group_name FROM people")
    assert (siti["sex"], str(siti["birth_date"]), siti["nik"], siti["group_name"]) == (
        "P", "1990-07-01", None, "")


def test_transfer_leaver_joiner_with_effective_dates(engine, tmp_path, staffed):
    bkd_cursor = feed(engine, "OPD-BKD")["cursor"]
    disdik_cursor = feed(engine, "OPD-DISDIK")["cursor"]
    with engine.begin() as conn:  # what the first import queued was reconciled
        conn.execute(sa.text("DELETE FROM reconcile_queue"))
    # Siti moves to the BKD from 20 February; Agus leaves; Rudi joins.
    path = employees_csv(tmp_path, [BUDI, moved(SITI, site_code="OPD-BKD", unit="Mutasi"), DEWI,
                                     RUDI], extra={"effective_from": ["", "2026-02-20", "", ""]})
    preview = run(engine, import_employees, path, dry_run=True, effective=date(2026, 2, 25))
    diff = run(engine, import_employees, path, effective=date(2026, 2, 25))
    assert diff.to_dict() == {**preview.to_dict(), "applied": True}
    assert diff.counts() == {"joiners": 1, "leavers": 1, "transfers": 1, "changes": 0,
                             "unchanged": 2}
    [transfer] = diff.entries["transfers"]
    assert (transfer.key, transfer.site_from, transfer.site_to, transfer.effective,
            transfer.changes) == (SITI.nip, "OPD-DISDIK", "OPD-BKD", date(2026, 2, 20),
                                  {"unit": ("Bidang SD", "Mutasi")})
    [leaver] = diff.entries["leavers"]
    assert (leaver.key, leaver.site_from, leaver.effective) == (AGUS.nip, "OPD-BKD",
                                                                date(2026, 2, 25))
    [joiner] = diff.entries["joiners"]
    assert (joiner.key, joiner.site_to, joiner.effective) == (RUDI.nip, "OPD-DISDIK",
                                                              date(2026, 2, 25))

    # person_sites keeps the history.
    assert placements(engine, SITI.nip) == [
        ("OPD-DISDIK", "Bidang SD", "2026-01-05", "2026-02-19"),
        ("OPD-BKD", "Mutasi", "2026-02-20", None)]
    assert placements(engine, AGUS.nip) == [("OPD-BKD", "Mutasi", "2026-01-05", "2026-02-24")]
    assert placements(engine, RUDI.nip) == [("OPD-DISDIK", "Sekretariat", "2026-02-25", None)]
    people = {r["person_id"]: r for r in rows(engine, "SELECT * FROM people")}
    assert not people[AGUS.nip]["active"] and people[SITI.nip]["active"]
    assert (people[SITI.nip]["site_code"], people[SITI.nip]["group_name"]) == ("OPD-BKD",
                                                                               "Mutasi")

    # The roster delta moved Siti's card to the BKD and took Agus's card away.
    siti_card, agus_card = EMPLOYEE_CARDS[1], EMPLOYEE_CARDS[2]
    bkd = feed(engine, "OPD-BKD", bkd_cursor)
    assert [(c["card_uid"], c["person_id"], c["group"]) for c in bkd["cards"]] == [
        (siti_card, SITI.nip, "Mutasi")]
    assert bkd["removed"] == [agus_card]
    assert feed(engine, "OPD-DISDIK", disdik_cursor)["removed"] == [siti_card]
    [card] = rows(engine, "SELECT person_id, site_code FROM cards WHERE card_uid = :u",
                  u=agus_card)
    assert (card["person_id"], card["site_code"]) == (AGUS.nip, None)

    # Past days are queued again: both of Siti's sites from 20 February, the BKD anyway.
    queued = {(r["site_code"], str(r["day"])) for r in rows(
        engine, "SELECT * FROM reconcile_queue WHERE reason = 'registry'")}
    assert ("OPD-DISDIK", "2026-02-20") in queued and ("OPD-BKD", "2026-02-20") in queued
    days_since_20_feb = {str(date(2026, 2, 20) + timedelta(days=n)) for n in range(11)}
    assert {d for s, d in queued if s == "OPD-BKD"} == days_since_20_feb
    assert {d for s, d in queued if s == "OPD-DISDIK"} == days_since_20_feb
    assert {s for s, d in queued} == {"OPD-BKD", "OPD-DISDIK"}

    # The same file again: nothing.
    before = snapshot(engine)
    assert run(engine, import_employees, path, effective=date(2026, 2, 25)).is_empty()
    assert snapshot(engine) == before


def test_leaver_who_comes_back(engine, tmp_path, staffed):
    run(engine, import_employees, employees_csv(tmp_path, [BUDI, SITI, DEWI]),
        effective=date(2026, 2, 1))
    diff = run(engine, import_employees, employees_csv(tmp_path), effective=date(2026, 2, 16))
    [joiner] = diff.entries["joiners"]
    assert (joiner.key, joiner.site_to) == (AGUS.nip, "OPD-BKD")
    assert placements(engine, AGUS.nip) == [("OPD-BKD", "Mutasi", "2026-01-05", "2026-01-31"),
                                            ("OPD-BKD", "Mutasi", "2026-02-16", None)]
    assert rows(engine, "SELECT active FROM people WHERE person_id = :p", p=AGUS.nip)[0]["active"]


def test_field_changes(engine, tmp_path, staffed):
    path = employees_csv(tmp_path, [moved(BUDI, name="Budi Santoso, S.Kom", position="Kepala"),
                                    SITI, AGUS, DEWI])
    cursor = feed(engine, "OPD-DISDIK")["cursor"]
    diff = run(engine, import_employees, path)
    [change] = diff.entries["changes"]
    assert change.changes == {"name": ("Budi Santoso", "Budi Santoso, S.Kom"),
                              "position": ("Analis", "Kepala")}
    # The new name reaches the edges.
    assert [(c["card_uid"], c["name"]) for c in feed(engine, "OPD-DISDIK", cursor)["cards"]] == [
        (EMPLOYEE_CARDS[0], "Budi Santoso, S.Kom")]


def test_effective_date_in_the_future_is_refused(engine, tmp_path, staffed):
    path = employees_csv(tmp_path, [BUDI, moved(SITI, site_code="OPD-BKD"), AGUS, DEWI],
                         extra={"effective_from": ["", "2026-03-03", "", ""]})
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    assert where(excinfo) == [(3, "effective_from")]
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, employees_csv(tmp_path), effective=date(2026, 3, 10))
    assert where(excinfo) == [(0, "--effective")]


def test_transfer_before_the_current_placement_is_refused(engine, tmp_path, staffed):
    path = employees_csv(tmp_path, [BUDI, moved(SITI, site_code="OPD-BKD"), AGUS, DEWI],
                         extra={"effective_from": ["", "2025-12-01", "", ""]})
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    assert where(excinfo) == [(3, "effective_from")]
    assert "2026-01-05" in str(excinfo.value)


# -- malformed files: nothing imported, every problem reported -----------------------------
def assert_nothing_imported(engine):
    assert count(engine, "people") == 0 and count(engine, "person_sites") == 0


def test_every_bad_row_is_reported(engine, tmp_path, sites):
    bad_nip = "198513322010031002"  # 32 December
    path = employees_csv(tmp_path, [
        moved(BUDI, nip=bad_nip),
        moved(SITI, site_code="OPD-NOWHERE"),
        moved(AGUS, sex="P"),
        moved(DEWI, nik=SITI.nik),
    ])
    text = path.read_text().replace("1979-12-31", "31/13/1979")
    path.write_text(text)
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    assert where(excinfo) == [(2, "nip"), (4, "sex"), (4, "birth_date"), (5, "nik"),
                              (3, "site_code")]
    message = str(excinfo.value).splitlines()
    assert message[0] == (f"{path}:2: nip: NIP birth date 19851332 is not a real date")
    assert message[1] == f"{path}:4: sex: is P but the NIP's sex digit says L"
    assert message[2] == f"{path}:4: birth_date: '31/13/1979' is not a real date"
    assert message[3] == f"{path}:5: nik: NIK {SITI.nik} is on lines 3 and 5"
    assert "unknown site OPD-NOWHERE" in message[4]
    assert_nothing_imported(engine)


def test_duplicate_nip_names_both_lines(engine, tmp_path, sites):
    path = employees_csv(tmp_path, [BUDI, SITI, moved(BUDI, nik=AGUS.nik)])
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    assert [str(p) for p in excinfo.value.problems] == [
        f"{path}:4: nip: NIP {BUDI.nip} is on lines 2 and 4"]
    assert_nothing_imported(engine)


def test_missing_columns_are_named(engine, tmp_path, sites):
    path = write_csv(tmp_path / "e.csv", ("nip", "nama", "unit"), [(BUDI.nip, "Budi", "x")])
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    assert where(excinfo) == [(1, "site_code")]
    assert "required column site_code (or site, kode_opd, kode_unit" in str(excinfo.value)
    assert_nothing_imported(engine)


@pytest.mark.parametrize("encoding, line", [("latin-1", 3), ("utf-16", 1)])
def test_wrong_encoding(engine, tmp_path, sites, encoding, line):
    people = [BUDI, moved(SITI, name="Siti Aminah Siregar é"), AGUS]
    path = employees_csv(tmp_path, people)
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    [problem] = excinfo.value.problems
    assert (problem.file, problem.line) == (str(path), line)
    assert "UTF-8" in problem.reason and ("Latin-1" in problem.reason or "UTF-16" in
                                          problem.reason)
    assert_nothing_imported(engine)


def test_nik_of_someone_else_in_the_database(engine, tmp_path, staffed):
    # Budi is not in the file (he would be a leaver), but his NIK stays his.
    path = employees_csv(tmp_path, [SITI, AGUS, DEWI, moved(RUDI, nik=BUDI.nik)])
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, path)
    assert [str(p) for p in excinfo.value.problems] == [
        f"{path}:5: nik: NIK {BUDI.nik} already belongs to {BUDI.nip} in the registry"]


def test_empty_registry_is_refused(engine, tmp_path, staffed):
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, employees_csv(tmp_path, []))
    assert "no employees" in str(excinfo.value)
    assert count(engine, "people", "WHERE active") == 4


def test_xlsx_numbers_lose_leading_zeros_hint(engine, tmp_path, sites):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["nip", "name", "site_code", "nik"])
    sheet.append([BUDI.nip, BUDI.name, BUDI.site_code, 471011503852202])  # a 15-digit number
    workbook.save(tmp_path / "e.xlsx")
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, import_employees, tmp_path / "e.xlsx")
    [problem] = excinfo.value.problems
    assert (problem.line, problem.field) == (2, "nik")
    assert "format the column as Text" in problem.reason
