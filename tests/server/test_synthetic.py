"""The synthetic city: determinism, counts, valid and unique ids, files, daily taps."""

from __future__ import annotations

import csv
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import astuple
from datetime import date, datetime, timedelta

import pytest
from openpyxl import load_workbook

from server.ids import (
    nik_birth_date,
    nik_problem,
    nik_sex,
    nip_birth_date,
    nip_problem,
    nip_sex,
    nisn_problem,
    npsn_problem,
)
from server.synthetic import (
    CARDS_CSV_HEADER,
    DAPODIK_HEADER,
    EMPLOYEES_CSV_HEADER,
    FAMILY_NAMES,
    FEMALE_NAMES,
    MALE_NAMES,
    SITES_CSV_HEADER,
    SyntheticCity,
    students_dapodik_json,
    write_cards_csv,
    write_employees_csv,
    write_sites_csv,
    write_students_csv,
    write_students_xlsx,
)

SMALL = {"sites": 20, "staff": 200, "students": 2000}
SITE_CODE = re.compile(r"^[A-Z0-9][A-Z0-9._:-]*$")
MONDAY, FRIDAY, SATURDAY, SUNDAY = (date(2025, 7, 14), date(2025, 7, 18), date(2025, 7, 19),
                                    date(2025, 7, 20))
DOWNLOADED = datetime(2025, 7, 20, 9, 12, 44)


@pytest.fixture(scope="module")
def city():
    return SyntheticCity(7, **SMALL)


@pytest.fixture(scope="module")
def school(city):
    return next(s for s in city.sites() if s.kind == "school")


def test_same_seed_same_city_other_seed_other_city(city):
    again = SyntheticCity(7, **SMALL)
    assert again.sites() == city.sites()
    assert again.employees() == city.employees()
    assert again.students() == city.students()
    assert again.cards() == city.cards()
    other = SyntheticCity(8, **SMALL)
    assert other.employees() != city.employees()
    assert other.students() != city.students()
    assert {c.card_uid for c in other.cards()}.isdisjoint({c.card_uid for c in city.cards()})


def test_counts_and_spread(city):
    sites, employees, students = city.sites(), city.employees(), city.students()
    assert len(sites) == 20 and len(employees) == 200 and len(students) == 2000
    assert len(city.cards()) == 2200
    kinds = Counter(s.kind for s in sites)
    assert kinds == {"office": 3, "school": 17}  # 15 % offices
    kind_of = {s.code: s.kind for s in sites}
    assert Counter(kind_of[e.site_code] for e in employees) == {"office": 140, "school": 60}
    assert {kind_of[s.npsn] for s in students} == {"school"}
    by_school = city.students_by_school()
    assert set(by_school) == {s.code for s in sites if s.kind == "school"}
    assert sum(map(len, by_school.values())) == 2000
    assert all(by_school.values()), "every school has students"
    assert set(Counter(e.status for e in employees)) == {"PNS", "PPPK"}


def test_sites_look_like_a_pekanbaru_registry(city):
    for site in city.sites():
        assert SITE_CODE.match(site.code) and len(site.code) <= 32
        assert (site.timezone, site.regency) == ("Asia/Jakarta", "Kota Pekanbaru")
        if site.kind == "office":
            assert site.code.startswith("OPD-") and site.schedule == "asn"
        else:
            assert npsn_problem(site.code) is None and site.schedule == "sekolah"
            assert re.match(r"^(SD NEGERI \d{3}|SMP NEGERI \d+) PEKANBARU$", site.name)
    assert {"OPD-SETDA", "OPD-SETWAN", "OPD-INSPEKTORAT"} <= {s.code for s in city.sites()}


def test_every_id_and_uid_is_unique(city):
    employees, students, sites = city.employees(), city.students(), city.sites()
    niks = [e.nik for e in employees] + [s.nik for s in students]
    for values in ([s.code for s in sites], [s.name for s in sites], [e.nip for e in employees],
                   niks, [s.nisn for s in students], [c.card_uid for c in city.cards()]):
        assert len(set(values)) == len(values)


def test_every_id_is_valid_and_agrees_with_the_person(city):
    for e in city.employees():
        assert nip_problem(e.nip) is None and nik_problem(e.nik) is None
        assert nip_birth_date(e.nip) == e.birth_date == nik_birth_date(e.nik)
        assert nip_sex(e.nip) == e.sex == nik_sex(e.nik)
        assert e.nik.startswith("147101")
        assert 22 <= city.as_of.year - e.birth_date.year <= 58
    for s in city.students():
        assert nisn_problem(s.nisn) is None and nik_problem(s.nik) is None
        assert s.nisn[:3] == f"{s.birth_date.year % 1000:03d}"
        assert nik_birth_date(s.nik) == s.birth_date and nik_sex(s.nik) == s.sex
        assert 6 <= city.as_of.year - s.birth_date.year <= 17


def test_names_and_classes(city):
    given = set(MALE_NAMES) | set(FEMALE_NAMES)
    for person in city.employees() + city.students():
        *first, family = person.name.split(" ")
        assert family in FAMILY_NAMES and 1 <= len(first) <= 2 and set(first) <= given
    smp = {s.code for s in city.sites() if s.name.startswith("SMP")}
    for s in city.students():
        match = re.fullmatch(r"Kelas ([1-9])([A-Z])", s.rombel)
        assert match, s.rombel
        assert int(match[1]) in (range(7, 10) if s.npsn in smp else range(1, 7))
    heads = Counter(e.site_code for e in city.employees() if e.unit == "Pimpinan")
    assert set(heads.values()) == {1}


def test_cards_belong_to_exactly_one_person(city):
    nik_of = {e.nip: e.nik for e in city.employees()} | {s.nisn: s.nik for s in city.students()}
    for card in city.cards():
        assert re.fullmatch(r"04[0-9A-F]{12}", card.card_uid)
        assert bool(card.nip) != bool(card.nisn)
        assert nik_of[card.nip or card.nisn] == card.nik
    assert len({c.nip or c.nisn for c in city.cards()}) == 2200


def test_another_regency_region_and_timezone():
    city = SyntheticCity(2, sites=6, staff=30, students=60, regency="Kabupaten Kampar",
                         region="140601", timezone="Asia/Makassar")
    assert {s.timezone for s in city.sites()} == {"Asia/Makassar"}
    assert {s.regency for s in city.sites()} == {"Kabupaten Kampar"}
    assert all(s.name.endswith(" KAMPAR") for s in city.sites() if s.kind == "school")
    assert all(p.nik.startswith("140601") for p in city.employees() + city.students())


@pytest.mark.parametrize("kwargs, message", [
    ({"region": "107101"}, "province code 10"),
    ({"region": "14710"}, "6 digits"),
    ({"sites": 0}, "sites >= 1"),
    ({"sites": 1}, "one site"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticCity(**{**SMALL, **kwargs})


# --- files -----------------------------------------------------------------------------

def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_registry_csv_files(city, tmp_path):
    assert write_sites_csv(tmp_path / "sites.csv", city.sites()) == 20
    assert write_employees_csv(tmp_path / "employees.csv", city.employees()) == 200
    assert write_cards_csv(tmp_path / "cards.csv", city.cards()) == 2200

    sites = read_csv(tmp_path / "sites.csv")
    assert sites[0] == list(SITES_CSV_HEADER) == (
        "code,name,kind,timezone,schedule,regency".split(","))
    assert sites[1:] == [list(astuple(s)) for s in city.sites()]

    employees = read_csv(tmp_path / "employees.csv")
    assert employees[0] == list(EMPLOYEES_CSV_HEADER) == (
        "nip,nik,name,site_code,unit,position,status,sex,birth_date".split(","))
    first = city.employees()[0]
    assert employees[1] == [*astuple(first)[:-1], first.birth_date.isoformat()]
    assert len(employees) == 201

    cards = read_csv(tmp_path / "cards.csv")
    assert cards[0] == list(CARDS_CSV_HEADER) == (
        "card_uid,nip,nisn,nik,status,valid_from,valid_to".split(","))
    assert len(cards) == 2201
    assert {tuple(line[4:]) for line in cards[1:]} == {("active", "", "")}
    assert cards[1] == [*astuple(city.cards()[0]), "active", "", ""]
    assert cards[-1][1] == "" and nisn_problem(cards[-1][2]) is None


def test_dapodik_xlsx(city, school, tmp_path):
    students = city.students_by_school()[school.code]
    path = tmp_path / "peserta_didik.xlsx"
    assert write_students_xlsx(path, school, students, downloaded_at=DOWNLOADED) == len(students)
    sheet = load_workbook(path, read_only=True).active
    lines = [tuple(v for v in line if v is not None) for line in sheet.iter_rows(values_only=True)]
    assert lines[0] == ("Daftar Peserta Didik",)
    assert lines[1] == (school.name,)
    assert re.fullmatch(r"\('Kecamatan [A-Za-z ]+, Kota Pekanbaru, Prov\. Riau',\)", str(lines[2]))
    assert lines[3] == ("Tanggal Unduh: 2025-07-20 09:12:44",)
    assert re.fullmatch(r"Pengunduh: operator@[a-z0-9]+\.sch\.id", lines[4][0])
    assert lines[5] == ()
    assert lines[6] == DAPODIK_HEADER
    data = lines[7:]
    assert len(data) == len(students)
    first, student = dict(zip(DAPODIK_HEADER, data[0])), students[0]
    assert first["No"] == 1
    assert (first["Nama"], first["JK"], first["NISN"], first["NIK"], first["Rombel Saat Ini"]) == (
        student.name, student.sex, student.nisn, student.nik, student.rombel)
    assert first["Tanggal Lahir"] == student.birth_date.isoformat()
    assert [line[0] for line in data] == list(range(1, len(students) + 1))
    assert {line[3] for line in data} <= {"L", "P"}
    assert len({line[2] for line in data}) == len(data)  # NIPD unique in the school


def test_dapodik_csv_matches_the_xlsx(city, school, tmp_path):
    students = city.students_by_school()[school.code]
    write_students_xlsx(tmp_path / "s.xlsx", school, students, downloaded_at=DOWNLOADED)
    assert write_students_csv(tmp_path / "s.csv", school, students,
                              downloaded_at=DOWNLOADED) == len(students)
    lines = read_csv(tmp_path / "s.csv")
    sheet = load_workbook(tmp_path / "s.xlsx", read_only=True).active
    from_xlsx = [[str(v) for v in line if v is not None]
                 for line in sheet.iter_rows(values_only=True)]
    assert lines == from_xlsx
    assert lines[6] == list(DAPODIK_HEADER) and len(lines) == 7 + len(students)


def test_dapodik_web_service_json(city):
    students = city.students()[:50]
    body = students_dapodik_json(students)
    assert body["results"] == 50 and len(body["rows"]) == 50
    row, student = body["rows"][0], students[0]
    assert set(row) == {"peserta_didik_id", "nama", "nisn", "nik", "jenis_kelamin",
                        "tempat_lahir", "tanggal_lahir", "nipd", "nama_rombel"}
    assert (row["nama"], row["nisn"], row["nik"], row["jenis_kelamin"], row["nama_rombel"]) == (
        student.name, student.nisn, student.nik, student.sex, student.rombel)
    assert row["tanggal_lahir"] == student.birth_date.isoformat()
    assert str(uuid.UUID(row["peserta_didik_id"])) == row["peserta_didik_id"]
    assert len({r["peserta_didik_id"] for r in body["rows"]}) == 50
    assert students_dapodik_json(students) == body


# --- taps ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tap_city():
    return SyntheticCity(11, sites=20, staff=500, students=5000)


@pytest.mark.parametrize("day", [SATURDAY, SUNDAY])
def test_no_taps_on_weekends(tap_city, day):
    assert list(tap_city.taps_for_day(day)) == []


def test_taps_are_deterministic(tap_city):
    taps = list(tap_city.taps_for_day(MONDAY))
    assert taps == list(SyntheticCity(11, sites=20, staff=500, students=5000)
                        .taps_for_day(MONDAY))
    assert taps != list(tap_city.taps_for_day(MONDAY, rng_seed=99))
    assert taps != list(tap_city.taps_for_day(MONDAY + timedelta(days=1)))


def _hours(site, day):
    if site.kind == "office":
        return (7, 30), (16, 30) if day.weekday() == 4 else (16, 0)
    return (7, 0), (14, 0)


@pytest.mark.parametrize("day", [MONDAY, FRIDAY])
def test_taps_mix(tap_city, day):
    sites = {s.code: s for s in tap_city.sites()}
    home = {e.nip: e.site_code for e in tap_city.employees()}
    home |= {s.nisn: s.npsn for s in tap_city.students()}
    site_of_card = {c.card_uid: home[c.nip or c.nisn] for c in tap_city.cards()}
    per_card = defaultdict(list)
    for tap in tap_city.taps_for_day(day):
        site = sites[tap.site_code]
        assert site_of_card[tap.card_uid] == tap.site_code
        assert tap.local_time.tzinfo.key == site.timezone and tap.local_time.date() == day
        per_card[tap.card_uid].append(tap.local_time)

    kinds = Counter()
    for uid in site_of_card:
        times = per_card.get(uid, [])
        if len(times) < 2:
            kinds[("absent", "one tap")[len(times)]] += 1
            continue
        assert len(times) == 2 and times[0] < times[1]
        (start_h, start_m), (end_h, end_m) = _hours(sites[site_of_card[uid]], day)
        start = times[0].replace(hour=start_h, minute=start_m, second=0)
        end = times[0].replace(hour=end_h, minute=end_m, second=0)
        if times[0] > start:
            assert timedelta(minutes=1) <= times[0] - start <= timedelta(minutes=120)
            kinds["late"] += 1
        elif times[1] < end:
            assert timedelta(minutes=1) <= end - times[1] <= timedelta(minutes=120)
            kinds["early"] += 1
        else:
            assert start - times[0] <= timedelta(minutes=45)
            assert times[1] - end <= timedelta(minutes=60)
            kinds["on time"] += 1
    people = len(site_of_card)
    expected = {"on time": 0.85, "late": 0.08, "absent": 0.03, "early": 0.02, "one tap": 0.02}
    for kind, share in expected.items():
        assert abs(kinds[kind] / people - share) < 0.015, (kind, kinds)
