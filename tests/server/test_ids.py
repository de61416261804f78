"""Indonesian identity numbers: NIP, NIK, NISN and NPSN checks, decoders and generators."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.ids import (
    make_nik,
    make_nip,
    make_nisn,
    make_npsn,
    nik_birth_date,
    nik_problem,
    nik_sex,
    nip_birth_date,
    nip_problem,
    nip_sex,
    nisn_problem,
    npsn_problem,
)

TODAY = date(2026, 11, 23)


@pytest.mark.parametrize("nip", [
    "198703152010012003",  # woman, TMT January 2010
    "199001012015031001",  # man
    "200002292024011999",  # 29 February of a leap year
    "198703152002012003",  # TMT exactly 15 years after the birth year
    "199001012027011001",  # TMT next year (appointments announced ahead)
    "190001012000011000",  # birth year 1900, serial 000
])
def test_valid_nip(nip):
    assert nip_problem(nip, today=TODAY) is None


@pytest.mark.parametrize("nip, reason", [
    ("", "NIP is empty"),
    ("19870315201001200", "NIP must be 18 digits (got 17)"),
    ("1987031520100120031", "NIP must be 18 digits (got 19)"),
    ("19870315 201001 2 003", "NIP must contain only digits (found ' ' at position 9)"),
    (" 198703152010012003", "NIP must contain only digits (found ' ' at position 1)"),
    ("198703152010012003\n", "NIP must contain only digits (found '\\n' at position 19)"),
    ("19870315201001200O", "NIP must contain only digits (found 'O' at position 18)"),
    ("١٩٨٧٠٣١٥٢٠١٠٠١٢٠٠٣", "NIP must contain only digits (found '١' at position 1)"),
    ("198513322010011001", "NIP birth date 19851332 is not a real date"),
    ("190002292010011001", "NIP birth date 19000229 is not a real date"),
    ("198704312010011001", "NIP birth date 19870431 is not a real date"),
    ("189912312010011001", "NIP birth year 1899 is outside 1900-2026"),
    ("202701012045011001", "NIP birth year 2027 is outside 1900-2026"),
    ("198703152010132003", "NIP TMT CPNS 201013 has month 13; must be 01-12 (or 21 for PPPK)"),
    ("198703152010002003", "NIP TMT CPNS 201000 has month 00; must be 01-12 (or 21 for PPPK)"),
    ("198703152010222003", "NIP TMT CPNS 201022 has month 22; must be 01-12 (or 21 for PPPK)"),
    ("198703152001012003", "NIP TMT CPNS year 2001 is before 2002 (birth year 1987 + 15)"),
    ("198703152028012003", "NIP TMT CPNS year 2028 is after 2027 (next year)"),
    ("198703152010013003", "NIP sex digit (15th) is 3; must be 1 (male) or 2 (female)"),
    ("198703152010010003", "NIP sex digit (15th) is 0; must be 1 (male) or 2 (female)"),
])
def test_invalid_nip(nip, reason):
    assert nip_problem(nip, today=TODAY) == reason


def test_nip_years_follow_today():
    nip = "199001012027011001"
    assert nip_problem(nip, today=date(2026, 1, 1)) is None
    assert nip_problem(nip, today=date(2025, 12, 31)) == (
        "NIP TMT CPNS year 2027 is after 2026 (next year)")


@pytest.mark.parametrize("nip, born, sex", [
    ("198703152010012003", date(1987, 3, 15), "P"),
    ("199001012015031001", date(1990, 1, 1), "L"),
    ("200002292024011999", date(2000, 2, 29), "L"),
])
def test_nip_decoders(nip, born, sex):
    assert nip_birth_date(nip, today=TODAY) == born
    assert nip_sex(nip, today=TODAY) == sex


def test_nip_decoders_refuse_invalid_numbers():
    with pytest.raises(ValueError, match=r"NIP birth date 19851332 is not a real date"):
        nip_birth_date("198513322010011001")
    with pytest.raises(ValueError, match=r"NIP sex digit \(15th\) is 3"):
        nip_sex("198703152010013003")


@pytest.mark.parametrize("nik", [
    "1471070204141145",  # man, 2 April 2014
    "1471076107121543",  # woman, 21 July 2012 (21 + 40)
    "3174012902000001",  # 29 February 2000 (1900 was no leap year, 2000 was)
    "3174016902000001",  # the same, a woman
    "3174017112999999",  # woman born on the 31st, serial 9999
    "9471010101010001",  # the highest province code
])
def test_valid_nik(nik):
    assert nik_problem(nik) is None


@pytest.mark.parametrize("nik, reason", [
    ("", "NIK is empty"),
    ("147107010210000", "NIK must be 16 digits (got 15)"),
    ("14710701021000011", "NIK must be 16 digits (got 17)"),
    ("1471-0701021000", "NIK must contain only digits (found '-' at position 5)"),
    ("1471070102100001 ", "NIK must contain only digits (found ' ' at position 17)"),
    ("1071070102100001", "NIK province code 10 must be 11-94"),
    ("9571070102100001", "NIK province code 95 must be 11-94"),
    ("1400070102100001", "NIK regency code 00 must be 01-99"),
    ("1471000102100001", "NIK district code 00 must be 01-99"),
    ("1471073502100001", "NIK day 35 is neither a day (01-31) nor a day + 40 (41-71)"),
    ("1471070002100001", "NIK day 00 is neither a day (01-31) nor a day + 40 (41-71)"),
    ("1471074002100001", "NIK day 40 is neither a day (01-31) nor a day + 40 (41-71)"),
    ("1471077202100001", "NIK day 72 is neither a day (01-31) nor a day + 40 (41-71)"),
    ("1471070213100001", "NIK month 13 must be 01-12"),
    ("1471070200100001", "NIK month 00 must be 01-12"),
    ("3174012902010001", "NIK birth date 29-02-01 (DD-MM-YY) exists in neither 1901 nor 2001"),
    ("3174016902010001", "NIK birth date 29-02-01 (DD-MM-YY) exists in neither 1901 nor 2001"),
    ("3174013104900001", "NIK birth date 31-04-90 (DD-MM-YY) exists in neither 1990 nor 2090"),
    ("1471070102100000", "NIK serial 0000 is not allowed (must be 0001-9999)"),
])
def test_invalid_nik(nik, reason):
    assert nik_problem(nik) == reason


@pytest.mark.parametrize("nik, born, sex", [
    ("1471070204141145", date(2014, 4, 2), "L"),
    ("1471076107121543", date(2012, 7, 21), "P"),
    ("3174016902000001", date(2000, 2, 29), "P"),
    ("1471070101300001", date(1930, 1, 1), "L"),  # 2030 is in the future
    ("1471070101200001", date(2020, 1, 1), "L"),  # 1920 would make a 106-year-old
    ("1471070101260001", date(2026, 1, 1), "L"),  # both fit: the more recent one
    ("1471070112260001", date(1926, 12, 1), "L"),  # 1 December 2026 is after TODAY
])
def test_nik_decoders(nik, born, sex):
    assert nik_birth_date(nik, today=TODAY) == born
    assert nik_sex(nik) == sex


def test_nik_decoders_refuse_invalid_or_impossible_numbers():
    with pytest.raises(ValueError, match=r"NIK day 35 is neither"):
        nik_birth_date("1471073502100001")
    with pytest.raises(ValueError, match=r"NIK month 13"):
        nik_sex("1471070213100001")
    # 29 February 1900 does not exist and 2000 is still ahead.
    with pytest.raises(ValueError, match=r"no birth date in the past 100 years"):
        nik_birth_date("1471072902000001", today=date(1999, 6, 1))


@pytest.mark.parametrize("check, text, reason", [
    (nisn_problem, "0128990608", None),
    (nisn_problem, "0051234567", None),
    (nisn_problem, "012899060", "NISN must be 10 digits (got 9)"),
    (nisn_problem, "01289906081", "NISN must be 10 digits (got 11)"),
    (nisn_problem, "01289906O8", "NISN must contain only digits (found 'O' at position 9)"),
    (nisn_problem, "", "NISN is empty"),
    (npsn_problem, "10404123", None),
    (npsn_problem, "1040412", "NPSN must be 8 digits (got 7)"),
    (npsn_problem, "104041234", "NPSN must be 8 digits (got 9)"),
    (npsn_problem, "P9999999", "NPSN must contain only digits (found 'P' at position 1)"),
    (npsn_problem, "", "NPSN is empty"),
])
def test_nisn_and_npsn(check, text, reason):
    assert check(text) == reason


# --- generators ------------------------------------------------------------------------

def test_generators_are_deterministic():
    def batch(seed):
        rng = random.Random(seed)
        return (make_nip(rng, date(1987, 3, 15), 2010, 1, "P"),
                make_nik(rng, "147101", date(2012, 7, 21), "P"),
                make_nisn(rng, date(2012, 7, 21)), make_npsn(rng))

    assert batch(3) == batch(3)
    assert batch(3) != batch(4)


def test_generator_layout():
    rng = random.Random(1)
    nip = make_nip(rng, date(1987, 3, 15), 2010, 1, "P", serial=3)
    assert nip == "198703152010012003"
    nik = make_nik(rng, "147107", date(2012, 7, 21), "P")
    assert nik.startswith("1471076107") and nik[10:12] == "12" and nik[12:] != "0000"
    assert make_nisn(rng, date(2012, 7, 21)).startswith("012")


def test_a_pppk_number_is_a_valid_nip():
    assert nip_problem("198507122023212012", today=date(2026, 11, 23)) is None
    assert nip_birth_date("198507122023212012", today=date(2026, 11, 23)) == date(1985, 7, 12)


@pytest.mark.parametrize("call, reason", [
    (lambda r: make_nip(r, date(1990, 1, 1), 2004, 1, "L"), "before 2005"),
    (lambda r: make_nip(r, date(1990, 1, 1), 2010, 13, "L"), "month 13"),
    (lambda r: make_nip(r, date(1990, 1, 1), 2010, 1, "X"), "sex must be"),
    (lambda r: make_nip(r, date(1990, 1, 1), 2010, 1, "L", serial=1000), "serial"),
    (lambda r: make_nik(r, "107101", date(2012, 7, 21), "L"), "province code 10"),
    (lambda r: make_nik(r, "14710", date(2012, 7, 21), "L"), "6 digits"),
    (lambda r: make_nik(r, "147101", date(1899, 7, 21), "L"), "1900-2099"),
    (lambda r: make_nik(r, "147101", date(2012, 7, 21), "W"), "sex must be"),
])
def test_generators_refuse_impossible_facts(call, reason):
    with pytest.raises(ValueError, match=reason):
        call(random.Random(0))


def _today() -> date:
    return date.today()


@st.composite
def nip_facts(draw):
    this_year = _today().year
    born = draw(st.dates(date(1900, 1, 1), date(this_year - 15, 12, 31)))
    tmt_year = draw(st.integers(born.year + 15, this_year + 1))
    return born, tmt_year, draw(st.integers(1, 12)), draw(st.sampled_from("LP"))


regions = st.builds(lambda p, r, d: f"{p:02d}{r:02d}{d:02d}",
                    st.integers(11, 94), st.integers(1, 99), st.integers(1, 99))


@given(seed=st.integers(0, 2**32), facts=nip_facts())
def test_make_nip_round_trip(seed, facts):
    born, tmt_year, tmt_month, sex = facts
    nip = make_nip(random.Random(seed), born, tmt_year, tmt_month, sex)
    assert nip_problem(nip) is None
    assert nip_birth_date(nip) == born and nip_sex(nip) == sex
    assert nip[8:14] == f"{tmt_year:04d}{tmt_month:02d}"


@given(seed=st.integers(0, 2**32), region=regions, sex=st.sampled_from("LP"),
       born=st.dates(date(_today().year - 99, 1, 1), _today()))
def test_make_nik_round_trip(seed, region, sex, born):
    nik = make_nik(random.Random(seed), region, born, sex)
    assert nik_problem(nik) is None
    assert nik[:6] == region
    assert nik_birth_date(nik) == born and nik_sex(nik) == sex


@given(seed=st.integers(0, 2**32), region=regions, sex=st.sampled_from("LP"),
       born=st.dates(date(1900, 1, 1), date(2099, 12, 31)))
def test_make_nik_is_valid_for_any_century_date(seed, region, sex, born):
    assert nik_problem(make_nik(random.Random(seed), region, born, sex)) is None


@given(seed=st.integers(0, 2**32), born=st.dates(date(1900, 1, 1), date(2099, 12, 31)))
def test_make_nisn(seed, born):
    nisn = make_nisn(random.Random(seed), born)
    assert nisn_problem(nisn) is None
    assert nisn[:3] == f"{born.year % 1000:03d}"


@given(seed=st.integers(0, 2**32))
def test_make_npsn(seed):
    npsn = make_npsn(random.Random(seed))
    assert npsn_problem(npsn) is None
    assert npsn[0] in "123456"


def test_decoders_default_to_the_real_today():
    born = _today() - timedelta(days=1)
    nik = make_nik(random.Random(0), "147101", born, "L")
    assert nik_birth_date(nik) == born
