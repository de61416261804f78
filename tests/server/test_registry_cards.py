"""Card register import (cards.csv): new, rebound and changed cards, rosters, no-op
re-imports and malformed files (both backends)."""

from datetime import date, datetime, timedelta

import pytest

from server.cards import card_state_at
from server.registry import (RegistryImportError, import_cards, import_employees, import_sites,
                             import_students)
from server.roster import roster_for_site
from tests.server.helpers import count, rows
from tests.server.registry_data import (EMPLOYEE_CARDS, EMPLOYEES, NOW, STUDENT_CARDS, STUDENTS,
                                        all_cards, cards_csv, dapodik_xlsx, employees_csv,
                                        sites_csv, snapshot)

BUDI, SITI, AGUS, DEWI = EMPLOYEES
ANDI, RINA, JOKO = STUDENTS


def run(engine, path, **options):
    with engine.begin() as conn:
        return import_cards(conn, path, now=options.pop("now", NOW), **options)


@pytest.fixture
def people(engine, tmp_path):
    with engine.begin() as conn:
        import_sites(conn, sites_csv(tmp_path), now=NOW)
        import_employees(conn, employees_csv(tmp_path), effective=date(2026, 1, 5), now=NOW)
        import_students(conn, dapodik_xlsx(tmp_path / "pd.xlsx"), npsn="20401234",
                        effective=date(2026, 1, 5), now=NOW)


def where(excinfo):
    return [(p.line, p.field) for p in excinfo.value.problems]


def feed(engine, site, since=None):
    with engine.connect() as conn:
        return roster_for_site(conn, site, since)


def test_import_puts_every_card_on_its_site_roster(engine, tmp_path, people):
    diff = run(engine, cards_csv(tmp_path, all_cards()))
    assert diff.counts() == {"new": 7, "rebound": 0, "changes": 0, "unchanged": 0}
    assert [(c["card_uid"], c["person_id"], c["name"], c["kind"], c["group"], c["status"])
            for c in feed(engine, "OPD-DISDIK")["cards"]] == [
        (EMPLOYEE_CARDS[0], BUDI.nip, "Budi Santoso", "employee", "Sekretariat", "active"),
        (EMPLOYEE_CARDS[1], SITI.nip, "Siti Aminah", "employee", "Bidang SD", "active")]
    school = sorted((c["card_uid"], c["person_id"], c["group"])
                    for c in feed(engine, "20401234")["cards"])
    assert school == sorted([(EMPLOYEE_CARDS[3], DEWI.nip, "Guru")] + [
        (uid, s.nisn, s.rombel) for uid, s in zip(STUDENT_CARDS, STUDENTS)])


def test_reimport_writes_nothing(engine, tmp_path, people):
    path = cards_csv(tmp_path, all_cards())
    run(engine, path)
    before = snapshot(engine)
    diff = run(engine, path, now=NOW + timedelta(days=2))
    assert diff.is_empty() and diff.counts()["unchanged"] == 7
    assert snapshot(engine) == before


def test_dry_run_writes_nothing(engine, tmp_path, people):
    before = snapshot(engine)
    diff = run(engine, cards_csv(tmp_path, all_cards()), dry_run=True)
    assert diff.counts()["new"] == 7 and not diff.applied
    assert snapshot(engine) == before


def test_status_validity_and_holder_changes(engine, tmp_path, people):
    run(engine, cards_csv(tmp_path, all_cards()))
    cursor = feed(engine, "OPD-DISDIK")["cursor"]
    later = NOW + timedelta(hours=2)
    changed = all_cards()
    changed[0] = (EMPLOYEE_CARDS[0], BUDI.nip, "", "", "hilang", "", "")
    changed[1] = (EMPLOYEE_CARDS[1], "", "", BUDI.nik, "active", "", "")  # now Budi's
    changed[2] = (EMPLOYEE_CARDS[2], AGUS.nip, "", "", "active", "2026-01-01", "2026-12-31")
    diff = run(engine, cards_csv(tmp_path, changed, name="cards2.csv"), now=later)
    assert diff.counts() == {"new": 0, "rebound": 1, "changes": 2, "unchanged": 4}
    assert diff.entries["changes"][0].changes == {"status": ("active", "lost")}
    assert diff.entries["changes"][1].changes == {"valid_from": (None, date(2026, 1, 1)),
                                                  "valid_to": (None, date(2026, 12, 31))}
    assert diff.entries["rebound"][0].note == f"was {SITI.nip}, now {BUDI.nip}"
    with engine.connect() as conn:
        assert card_state_at(conn, EMPLOYEE_CARDS[0], later) == (BUDI.nip, "lost")
        assert card_state_at(conn, EMPLOYEE_CARDS[0], later - timedelta(minutes=1)) == (
            BUDI.nip, "active")
        assert card_state_at(conn, EMPLOYEE_CARDS[1], later - timedelta(minutes=1)) == (
            SITI.nip, "active")
        assert card_state_at(conn, EMPLOYEE_CARDS[1], later) == (BUDI.nip, "active")
    assert sorted((c["card_uid"], c["person_id"], c["status"])
                  for c in feed(engine, "OPD-DISDIK", cursor)["cards"]) == [
        (EMPLOYEE_CARDS[0], BUDI.nip, "lost"), (EMPLOYEE_CARDS[1], BUDI.nip, "active")]
    [card] = rows(engine, "SELECT valid_from, valid_to FROM cards WHERE card_uid = :u",
                  u=EMPLOYEE_CARDS[2])
    assert (str(card["valid_from"]), str(card["valid_to"])) == ("2026-01-01", "2026-12-31")
    # Cards missing from a file stay as they are.
    diff = run(engine, cards_csv(tmp_path, changed[:1], name="one.csv"), now=later)
    assert diff.is_empty() and count(engine, "cards") == 7


def test_replaced_in_the_file_is_sent_blocked(engine, tmp_path, people):
    run(engine, cards_csv(tmp_path, all_cards()))
    replaced = [(EMPLOYEE_CARDS[0], BUDI.nip, "", "", "diganti", "", ""),
                ("04A1B2C3D4E5FF", BUDI.nip, "", "", "active", "", "")]
    run(engine, cards_csv(tmp_path, replaced, name="r.csv"), now=NOW + timedelta(hours=1))
    gate = {c["card_uid"]: c["status"] for c in feed(engine, "OPD-DISDIK")["cards"]}
    assert (gate[EMPLOYEE_CARDS[0]], gate["04A1B2C3D4E5FF"]) == ("blocked", "active")
    # ... and the file says "replaced" again next time without a change.
    again = run(engine, cards_csv(tmp_path, replaced, name="r.csv"), now=NOW + timedelta(hours=2))
    assert again.is_empty()


def test_every_bad_row_is_reported(engine, tmp_path, people):
    path = cards_csv(tmp_path, [
        ("04:A1:B2:C3:D4:E5:F6", BUDI.nip, "", "", "active", "", ""),  # fine
        ("04A1B2C3D4E5F6", SITI.nip, "", "", "active", "", ""),  # the same UID again
        ("08123456", AGUS.nip, "", "", "active", "", ""),  # a random UID
        ("04A1B2C3D4E5", DEWI.nip, "", "", "active", "", ""),  # 6 bytes
        ("04B1B2C3D4E501", "", "", "", "active", "", ""),  # no holder
        ("04B1B2C3D4E502", "", RINA.nisn, "", "stolen", "2026-02-30", ""),
        ("04B1B2C3D4E503", BUDI.nip, "", SITI.nik, "active", "", ""),  # two people
        ("04B1B2C3D4E504", "", "0000000001", "", "active", "2026-03-01", "2026-02-01"),
    ])
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path)
    assert where(excinfo) == [
        (3, "card_uid"), (4, "card_uid"), (5, "card_uid"), (6, "nip"), (7, "status"),
        (7, "valid_from"), (9, "valid_to"), (8, "nik"), (9, "nisn")]
    text = str(excinfo.value)
    assert f"{path}:3: card_uid: card 04A1B2C3D4E5F6 is on lines 2 and 3" in text
    assert "random (per-session) UID" in text
    assert f"{path}:9: nisn: no person with NISN 0000000001 in the registry" in text
    assert count(engine, "cards") == 0 and count(engine, "card_history") == 0


def test_header_needs_a_holder_column(engine, tmp_path, people):
    path = cards_csv(tmp_path, [(EMPLOYEE_CARDS[0], "active")], header=("card_uid", "status"))
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path)
    assert where(excinfo) == [(1, "nip")]


def test_new_card_for_someone_placed_nowhere_stays_off_the_rosters(engine, tmp_path, people):
    with engine.begin() as conn:  # Agus leaves
        import_employees(conn, employees_csv(tmp_path, [BUDI, SITI, DEWI], name="e2.csv"),
                         now=NOW)
    run(engine, cards_csv(tmp_path, [(EMPLOYEE_CARDS[2], AGUS.nip, "", "", "active", "", "")]))
    [card] = rows(engine, "SELECT person_id, status, site_code FROM cards")
    assert (card["person_id"], card["status"], card["site_code"]) == (AGUS.nip, "active", None)
    assert feed(engine, "OPD-BKD")["cards"] == []
    with engine.connect() as conn:
        assert card_state_at(conn, EMPLOYEE_CARDS[2], datetime.fromisoformat(
            "2026-03-02T08:00+07:00")) == (AGUS.nip, "active")
