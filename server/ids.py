"""Indonesian identity numbers: checks, decoders and generators (pure functions).

* **NIP** (Nomor Induk Pegawai, ASN employees, PNS and PPPK alike): 18 digits,
  ``YYYYMMDD`` birth date + ``YYYYMM`` TMT CPNS (start of service) + sex digit
  (1 = male, 2 = female) + a 3-digit serial.
* **NIK** (Nomor Induk Kependudukan, the KTP/KK number): 16 digits, region code
  (2 province + 2 regency + 2 district) + ``DDMMYY`` birth date, where women
  carry day + 40 + a 4-digit serial (never 0000).
* **NISN** (Nomor Induk Siswa Nasional): 10 digits.
* **NPSN** (Nomor Pokok Sekolah Nasional): 8 digits.

The ``*_problem`` functions answer ``None`` for a valid number, otherwise one
short English reason. They do not strip whitespace: the importer does that, so
any character other than an ASCII digit is reported. Checks that depend on the
current year take an optional ``today`` so that tests stay stable.

The generators are deterministic for a given :class:`random.Random` and always
produce numbers that pass their check (they raise ``ValueError`` otherwise).
"""

from __future__ import annotations

import random
from datetime import date

__all__ = [
    "MALE", "FEMALE",
    "nip_problem", "nik_problem", "nisn_problem", "npsn_problem",
    "nip_birth_date", "nip_sex", "nik_birth_date", "nik_sex",
    "make_nip", "make_nik", "make_nisn", "make_npsn", "format_nik",
]

#: Sex codes as used by Dapodik and SIMPEG exports (laki-laki / perempuan).
MALE = "L"
FEMALE = "P"

NIP_LENGTH = 18
NIK_LENGTH = 16
NISN_LENGTH = 10
NPSN_LENGTH = 8

#: Minimum age, in whole years of the birth year, at the TMT CPNS.
NIP_MIN_SERVICE_AGE = 15
NIP_FIRST_BIRTH_YEAR = 1900
NIK_WOMAN_DAY_OFFSET = 40
NIK_MAX_AGE = 100

_DIGITS = frozenset("0123456789")


# --- shared helpers --------------------------------------------------------------------

def _real_date(year: int, month: int, day: int) -> date | None:
    """The date, or None when it does not exist in the calendar."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _format_problem(label: str, text: str, length: int) -> str | None:
    """The problem of a number that is not exactly ``length`` ASCII digits, else None."""
    if text == "":
        return f"{label} is empty"
    for position, char in enumerate(text, start=1):
        if char not in _DIGITS:
            return f"{label} must contain only digits (found {char!r} at position {position})"
    if len(text) != length:
        return f"{label} must be {length} digits (got {len(text)})"
    return None


def _sex_code(sex: str) -> str:
    """Check a sex code ("L" or "P") and return it."""
    if sex not in (MALE, FEMALE):
        raise ValueError(f"sex must be {MALE!r} or {FEMALE!r}, got {sex!r}")
    return sex


def _age(born: date, on: date) -> int:
    """Age in whole years on the day ``on``."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _random_digits(rng: random.Random, count: int) -> str:
    """``count`` random decimal digits (leading zeros kept)."""
    return f"{rng.randrange(10 ** count):0{count}d}"


# --- NIP -------------------------------------------------------------------------------

#: Digits 13-14 of a PPPK staff number (NI PPPK) hold this code where a PNS NIP has the
#: month of TMT CPNS; the year before it is the year of appointment.
PPPK_MONTH_CODE = "21"


def nip_problem(text: str, *, today: date | None = None) -> str | None:
    """Why ``text`` is not a valid NIP, or None when it is.

    PPPK staff numbers have the NIP's shape with the code ``21`` in place of the
    TMT month (``…YYYY21…``); they are accepted as well.
    """
    problem = _format_problem("NIP", text, NIP_LENGTH)
    if problem:
        return problem
    this_year = (today or date.today()).year
    birth = text[0:8]
    born = _real_date(int(birth[0:4]), int(birth[4:6]), int(birth[6:8]))
    if born is None:
        return f"NIP birth date {birth} is not a real date"
    if not NIP_FIRST_BIRTH_YEAR <= born.year <= this_year:
        return f"NIP birth year {born.year} is outside {NIP_FIRST_BIRTH_YEAR}-{this_year}"
    tmt = text[8:14]
    tmt_year, tmt_month = int(tmt[0:4]), int(tmt[4:6])
    if not 1 <= tmt_month <= 12 and tmt[4:6] != PPPK_MONTH_CODE:
        return (f"NIP TMT CPNS {tmt} has month {tmt[4:6]}; must be 01-12 "
                f"(or {PPPK_MONTH_CODE} for PPPK)")
    earliest = born.year + NIP_MIN_SERVICE_AGE
    if tmt_year < earliest:
        return (f"NIP TMT CPNS year {tmt_year} is before {earliest} "
                f"(birth year {born.year} + {NIP_MIN_SERVICE_AGE})")
    if tmt_year > this_year + 1:
        return f"NIP TMT CPNS year {tmt_year} is after {this_year + 1} (next year)"
    if text[14] not in "12":
        return f"NIP sex digit (15th) is {text[14]}; must be 1 (male) or 2 (female)"
    return None


def _checked_nip(nip: str, today: date | None) -> str:
    """The NIP itself, or ValueError with its problem."""
    problem = nip_problem(nip, today=today)
    if problem:
        raise ValueError(problem)
    return nip


def nip_birth_date(nip: str, *, today: date | None = None) -> date:
    """The birth date written in a NIP (ValueError when the NIP is not valid)."""
    nip = _checked_nip(nip, today)
    return date(int(nip[0:4]), int(nip[4:6]), int(nip[6:8]))


def nip_sex(nip: str, *, today: date | None = None) -> str:
    """"L" or "P" from the NIP's sex digit (ValueError when the NIP is not valid)."""
    return MALE if _checked_nip(nip, today)[14] == "1" else FEMALE


def make_nip(rng: random.Random, birth_date: date, tmt_year: int, tmt_month: int, sex: str,
             serial: int | None = None) -> str:
    """A NIP for these facts; ``serial`` (1-999) is drawn from ``rng`` when omitted."""
    code = "1" if _sex_code(sex) == MALE else "2"
    if serial is None:
        serial = rng.randint(1, 999)
    if not 0 <= serial <= 999:
        raise ValueError(f"NIP serial must be 0-999, got {serial}")
    nip = f"{birth_date:%Y%m%d}{tmt_year:04d}{tmt_month:02d}{code}{serial:03d}"
    problem = nip_problem(nip)
    if problem:
        raise ValueError(problem)
    return nip


# --- NIK -------------------------------------------------------------------------------

def _nik_region_problem(region: str) -> str | None:
    """Why a 6-digit region code (province, regency, district) is not valid, or None."""
    province, regency, district = int(region[0:2]), region[2:4], region[4:6]
    if not 11 <= province <= 94:
        return f"NIK province code {region[0:2]} must be 11-94"
    if regency == "00":
        return f"NIK regency code {regency} must be 01-99"
    if district == "00":
        return f"NIK district code {district} must be 01-99"
    return None


def _nik_candidate_dates(nik: str) -> list[date]:
    """The birth dates a (well-formed) NIK may mean: in the 1900s and/or the 2000s."""
    day = int(nik[6:8])
    if day > NIK_WOMAN_DAY_OFFSET:
        day -= NIK_WOMAN_DAY_OFFSET
    month, yy = int(nik[8:10]), int(nik[10:12])
    found = (_real_date(century + yy, month, day) for century in (1900, 2000))
    return [born for born in found if born is not None]


def nik_problem(text: str) -> str | None:
    """Why ``text`` is not a valid NIK, or None when it is."""
    problem = _format_problem("NIK", text, NIK_LENGTH) or _nik_region_problem(text[0:6])
    if problem:
        return problem
    dd, mm, yy = text[6:8], text[8:10], text[10:12]
    day = int(dd)
    if not (1 <= day <= 31 or 41 <= day <= 71):
        return f"NIK day {dd} is neither a day (01-31) nor a day + 40 (41-71)"
    if not 1 <= int(mm) <= 12:
        return f"NIK month {mm} must be 01-12"
    if not _nik_candidate_dates(text):
        real_day = day - NIK_WOMAN_DAY_OFFSET if day > NIK_WOMAN_DAY_OFFSET else day
        return (f"NIK birth date {real_day:02d}-{mm}-{yy} (DD-MM-YY) exists "
                f"in neither 19{yy} nor 20{yy}")
    if text[12:16] == "0000":
        return "NIK serial 0000 is not allowed (must be 0001-9999)"
    return None


def _checked_nik(nik: str) -> str:
    """The NIK itself, or ValueError with its problem."""
    problem = nik_problem(nik)
    if problem:
        raise ValueError(problem)
    return nik


def nik_birth_date(nik: str, *, today: date | None = None) -> date:
    """The birth date in a NIK: the century giving a date not in the future and an age of
    at most 100 (the more recent one when both do). ValueError when there is none."""
    today = today or date.today()
    fitting = [born for born in _nik_candidate_dates(_checked_nik(nik))
               if born <= today and _age(born, today) <= NIK_MAX_AGE]
    if not fitting:
        raise ValueError(f"NIK {nik} gives no birth date in the past {NIK_MAX_AGE} years")
    return max(fitting)


def nik_sex(nik: str) -> str:
    """"L" or "P": women's NIKs carry the birth day + 40."""
    return FEMALE if int(_checked_nik(nik)[6:8]) > NIK_WOMAN_DAY_OFFSET else MALE


def make_nik(rng: random.Random, region: str, birth_date: date, sex: str) -> str:
    """A NIK of someone born on ``birth_date`` in ``region`` (6 digits); the 4-digit
    serial (0001-9999) is drawn from ``rng``."""
    region_problem = _format_problem("NIK region", region, 6) or _nik_region_problem(region)
    if region_problem:
        raise ValueError(region_problem)
    if not 1900 <= birth_date.year <= 2099:
        raise ValueError(f"NIK birth year must be 1900-2099, got {birth_date.year}")
    return _checked_nik(format_nik(region, birth_date, _sex_code(sex), rng.randint(1, 9999)))


def format_nik(region: str, birth_date: date, sex: str, serial: int) -> str:
    """Lay out a NIK from its parts, without any check (see :func:`make_nik`)."""
    day = birth_date.day + NIK_WOMAN_DAY_OFFSET if sex == FEMALE else birth_date.day
    return f"{region}{day:02d}{birth_date.month:02d}{birth_date.year % 100:02d}{serial:04d}"


# --- NISN and NPSN ---------------------------------------------------------------------

def nisn_problem(text: str) -> str | None:
    """Why ``text`` is not a valid NISN (10 digits), or None when it is."""
    return _format_problem("NISN", text, NISN_LENGTH)


def npsn_problem(text: str) -> str | None:
    """Why ``text`` is not a valid NPSN (8 digits), or None when it is."""
    return _format_problem("NPSN", text, NPSN_LENGTH)


def make_nisn(rng: random.Random, birth_date: date) -> str:
    """A NISN: the last 3 digits of the birth year, then 7 random digits."""
    return f"{birth_date.year % 1000:03d}{_random_digits(rng, 7)}"


def make_npsn(rng: random.Random) -> str:
    """An NPSN: 8 digits, the first one 1-6."""
    return f"{rng.randint(1, 6)}{_random_digits(rng, 7)}"
