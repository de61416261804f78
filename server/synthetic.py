"""A deterministic synthetic city: sites, ASN staff, students, cards and daily taps.

Used by the benchmarks, the tests and the demo. Everything derives from one
seed, so the same ``SyntheticCity(seed)`` always holds the same people; no
names or numbers belong to real persons (names come from short built-in lists
of common Indonesian given and family names, identity numbers from
:mod:`server.ids`).

The city is built lazily on first use. Its people are fixed relative to
:data:`REFERENCE_DATE` (ages, school grades, years of service), not to the day
the code runs, so a seed means the same city on any day.

The writers produce the files the registry importer reads (``sites.csv``,
``employees.csv``, ``cards.csv``) and imitations of a Dapodik "Daftar Peserta
Didik" export (XLSX or CSV with title rows above the header) and of the
Dapodik web service ``getPesertaDidik`` answer.
"""

from __future__ import annotations

import csv
import random
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Sequence, TypeVar
from zoneinfo import ZoneInfo

from server.ids import (FEMALE, MALE, format_nik, make_nip, make_nisn, make_npsn,
                        nik_problem)

__all__ = [
    "REFERENCE_DATE", "SCHEDULE_HOURS",
    "SiteRow", "EmployeeRow", "StudentRow", "CardRow", "SyntheticTap", "SyntheticCity",
    "SITES_CSV_HEADER", "EMPLOYEES_CSV_HEADER", "CARDS_CSV_HEADER", "DAPODIK_HEADER",
    "DAPODIK_TITLE", "write_sites_csv", "write_employees_csv", "write_cards_csv",
    "write_students_xlsx", "write_students_csv", "students_dapodik_json",
    "dapodik_title_rows", "kecamatan_of", "town_of",
]

#: The day the city's ages, grades and years of service refer to (school year 2025/2026).
REFERENCE_DATE = date(2025, 7, 14)

SITES_CSV_HEADER = ("code", "name", "kind", "timezone", "schedule", "regency")
EMPLOYEES_CSV_HEADER = ("nip", "nik", "name", "site_code", "unit", "position", "status",
                        "sex", "birth_date")
CARDS_CSV_HEADER = ("card_uid", "nip", "nisn", "nik", "status", "valid_from", "valid_to")
DAPODIK_TITLE = "Daftar Peserta Didik"
DAPODIK_HEADER = ("No", "Nama", "NIPD", "JK", "NISN", "Tempat Lahir", "Tanggal Lahir", "NIK",
                  "Agama", "Alamat", "Rombel Saat Ini")

#: Working hours per schedule name: (start, end Monday-Thursday, end Friday).
SCHEDULE_HOURS: dict[str, tuple[time, time, time]] = {
    "asn": (time(7, 30), time(16, 0), time(16, 30)),
    "sekolah": (time(7, 0), time(14, 0), time(14, 0)),
}

OFFICE_SHARE = 0.15  # of the sites
SCHOOL_STAFF_SHARE = 0.30  # of the staff: teachers and school administration are ASN too
PPPK_SHARE = 0.25
SMP_SHARE = 0.25  # of the schools; the others are SD
ROMBEL_SIZE = 32

# The daily mix of behaviours (the rest, about 85 %, are on time).
ABSENT_SHARE = 0.03
LATE_SHARE = 0.08
LEAVE_EARLY_SHARE = 0.02
ONE_TAP_SHARE = 0.02
MAX_LATE_SECONDS = 120 * 60
MAX_EARLY_ARRIVAL_SECONDS = 45 * 60
MAX_STAY_SECONDS = 60 * 60
MAX_LEAVE_EARLY_SECONDS = 120 * 60

MALE_NAMES = (
    "Ahmad", "Budi", "Rahmat", "Andi", "Agus", "Dedi", "Eko", "Fajar", "Hendra", "Irfan",
    "Joko", "Muhammad", "Rizki", "Arif", "Bayu", "Dimas", "Fauzan", "Hafiz", "Ilham", "Reza",
    "Yusuf", "Teguh", "Wahyu", "Zulkifli", "Rudi", "Syahrul", "Doni", "Taufik", "Iqbal",
    "Aditya",
)
FEMALE_NAMES = (
    "Siti", "Dewi", "Sri", "Nur", "Ayu", "Putri", "Rina", "Wulan", "Zahra", "Aisyah",
    "Fitri", "Indah", "Lestari", "Maya", "Nabila", "Ratna", "Sari", "Yuni", "Dian", "Fatimah",
    "Intan", "Kartika", "Mega", "Nadia", "Rahma", "Salsabila", "Tiara", "Vina", "Anisa",
    "Citra",
)
FAMILY_NAMES = (
    "Pratama", "Saputra", "Hidayat", "Lubis", "Nasution", "Siregar", "Harahap", "Simanjuntak",
    "Rahmawati", "Wijaya", "Santoso", "Kurniawan", "Setiawan", "Hasibuan", "Tanjung",
    "Syahputra", "Ramadhan", "Firmansyah", "Gunawan", "Susanti", "Purnama", "Hakim", "Maulana",
    "Utami", "Permata", "Sembiring", "Ginting", "Batubara", "Daulay", "Rangkuti",
)
KECAMATAN = (
    "Bukit Raya", "Lima Puluh", "Marpoyan Damai", "Payung Sekaki", "Pekanbaru Kota", "Rumbai",
    "Rumbai Barat", "Rumbai Timur", "Sail", "Senapelan", "Sukajadi", "Tampan", "Binawidya",
    "Tuah Madani", "Kulim",
)
#: Regional offices (OPD): code suffix and name.
OPD = (
    ("SETDA", "Sekretariat Daerah"),
    ("SETWAN", "Sekretariat DPRD"),
    ("INSPEKTORAT", "Inspektorat"),
    ("BAPPEDA", "Badan Perencanaan Pembangunan Daerah"),
    ("BAPENDA", "Badan Pendapatan Daerah"),
    ("BPKAD", "Badan Pengelolaan Keuangan dan Aset Daerah"),
    ("BKPSDM", "Badan Kepegawaian dan Pengembangan Sumber Daya Manusia"),
    ("BPBD", "Badan Penanggulangan Bencana Daerah"),
    ("KESBANGPOL", "Badan Kesatuan Bangsa dan Politik"),
    ("DISKOMINFO", "Dinas Komunikasi dan Informatika"),
    ("DISDIK", "Dinas Pendidikan"),
    ("DINKES", "Dinas Kesehatan"),
    ("DISDUKCAPIL", "Dinas Kependudukan dan Pencatatan Sipil"),
    ("DPMPTSP", "Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu"),
    ("DPUPR", "Dinas Pekerjaan Umum dan Penataan Ruang"),
    ("DISHUB", "Dinas Perhubungan"),
    ("DLHK", "Dinas Lingkungan Hidup dan Kebersihan"),
    ("DINSOS", "Dinas Sosial"),
    ("DISNAKER", "Dinas Tenaga Kerja"),
    ("DISPERINDAG", "Dinas Perindustrian dan Perdagangan"),
    ("DISKOPUKM", "Dinas Koperasi, Usaha Kecil dan Menengah"),
    ("DISPORA", "Dinas Pemuda dan Olahraga"),
    ("DISPAR", "Dinas Pariwisata"),
    ("DISBUD", "Dinas Kebudayaan"),
    ("DISPUSIP", "Dinas Perpustakaan dan Kearsipan"),
    ("DP3A", "Dinas Pemberdayaan Perempuan dan Perlindungan Anak"),
    ("DPPKB", "Dinas Pengendalian Penduduk dan Keluarga Berencana"),
    ("DKPP", "Dinas Ketahanan Pangan dan Pertanian"),
    ("DPKP", "Dinas Perumahan Rakyat dan Kawasan Permukiman"),
    ("DAMKAR", "Dinas Pemadam Kebakaran dan Penyelamatan"),
    ("SATPOLPP", "Satuan Polisi Pamong Praja"),
    ("RSUD", "Rumah Sakit Umum Daerah"),
)
OFFICE_UNITS = ("Sekretariat", "Subbagian Umum dan Kepegawaian", "Subbagian Keuangan",
                "Subbagian Perencanaan", "Bidang Pelayanan", "Bidang Pengembangan",
                "Bidang Pengawasan")
OFFICE_POSITIONS = ("Analis Kebijakan", "Pranata Komputer", "Pengadministrasi Umum",
                    "Bendahara", "Arsiparis", "Pengelola Data", "Penata Kelola Sistem dan "
                    "Teknologi Informasi", "Kepala Seksi", "Kepala Subbagian")
SCHOOL_STAFF = (("Guru", "Guru Kelas"), ("Guru", "Guru Mata Pelajaran"),
                ("Guru", "Guru Mata Pelajaran"), ("Guru", "Guru Kelas"),
                ("Tata Usaha", "Tenaga Administrasi Sekolah"))
OTHER_BIRTHPLACES = ("Dumai", "Bangkinang", "Siak Sri Indrapura", "Duri", "Bengkalis",
                     "Medan", "Padang", "Bukittinggi", "Tembilahan", "Rengat")
STREETS = ("Jl. Jenderal Sudirman", "Jl. Tuanku Tambusai", "Jl. Soekarno-Hatta",
           "Jl. Arifin Ahmad", "Jl. HR Soebrantas", "Jl. Riau", "Jl. Nangka", "Jl. Paus",
           "Jl. Kaharuddin Nasution", "Jl. Harapan Raya", "Jl. Garuda Sakti", "Jl. Delima",
           "Jl. Durian", "Jl. Cempaka", "Jl. Melati")
#: (religion, cumulative share) for the Dapodik "Agama" column.
RELIGIONS = (("Islam", 0.87), ("Kristen", 0.94), ("Katolik", 0.97), ("Buddha", 0.99),
             ("Hindu", 1.0))

T = TypeVar("T")
_STUDENT_ID_NAMESPACE = uuid.UUID("6f1c2d4e-58a7-4b0e-9c3d-2a71e5f40b19")
_SECONDS = tuple(timedelta(seconds=s) for s in range(MAX_LATE_SECONDS + 1))


# --- rows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SiteRow:
    """A site (``sites.csv`` line): an office (OPD) or a school (code = NPSN)."""

    code: str
    name: str
    kind: str  # "school" or "office"
    timezone: str = "Asia/Jakarta"
    schedule: str = "asn"  # "asn" for offices, "sekolah" for schools
    regency: str = "Kota Pekanbaru"


@dataclass(frozen=True)
class EmployeeRow:
    """An ASN employee (``employees.csv`` line); PPPK staff have a NIP of the same shape."""

    nip: str
    nik: str
    name: str
    site_code: str
    unit: str
    position: str
    status: str  # "PNS" or "PPPK"
    sex: str  # "L" or "P"
    birth_date: date

    def csv_row(self) -> tuple[str, ...]:
        """The ``employees.csv`` line (columns of :data:`EMPLOYEES_CSV_HEADER`)."""
        return (self.nip, self.nik, self.name, self.site_code, self.unit, self.position,
                self.status, self.sex, self.birth_date.isoformat())


@dataclass(frozen=True)
class StudentRow:
    """A student as in Dapodik: at the school ``npsn``, in the class ``rombel``."""

    nisn: str
    nik: str
    name: str
    npsn: str
    rombel: str  # e.g. "Kelas 7A"
    sex: str  # "L" or "P"
    birth_date: date


@dataclass(frozen=True)
class CardRow:
    """A card (``cards.csv`` line). Exactly one of ``nip`` and ``nisn`` is filled (the
    other is ""); ``nik`` is the holder's NIK."""

    card_uid: str
    nip: str
    nisn: str
    nik: str


class SyntheticTap(NamedTuple):
    """One card tap at a site, at an aware local time in the site's timezone."""

    card_uid: str
    site_code: str
    local_time: datetime


@dataclass(frozen=True)
class _Population:
    sites: list[SiteRow]
    employees: list[EmployeeRow]
    students: list[StudentRow]
    cards: list[CardRow]


# --- small pure helpers ----------------------------------------------------------------

def town_of(regency: str) -> str:
    """The town in a regency name: "Kota Pekanbaru" -> "Pekanbaru"."""
    for prefix in ("Kota ", "Kabupaten ", "Kab. "):
        if regency.startswith(prefix):
            return regency[len(prefix):]
    return regency


def kecamatan_of(site: SiteRow) -> str:
    """A stable kecamatan (district) name for a site, derived from its code."""
    return KECAMATAN[zlib.crc32(site.code.encode()) % len(KECAMATAN)]


@lru_cache(maxsize=None)
def _year_span(year: int) -> tuple[int, int]:
    """(ordinal of 1 January, number of days) of ``year``."""
    first = date(year, 1, 1).toordinal()
    return first, date(year + 1, 1, 1).toordinal() - first


def _random_day(rng: random.Random, year: int) -> date:
    """A uniformly random day of ``year``."""
    first, days = _year_span(year)
    return date.fromordinal(first + int(rng.random() * days))


def _pick(rng: random.Random, choices: Sequence[T]) -> T:
    """A uniformly random element (a faster ``rng.choice`` for the bulk loops)."""
    return choices[int(rng.random() * len(choices))]


def _random_name(rng: random.Random, sex: str) -> str:
    """A given name (sometimes two) and a family name."""
    given = MALE_NAMES if sex == MALE else FEMALE_NAMES
    first = _pick(rng, given)
    if rng.random() < 0.2:
        second = _pick(rng, given)
        if second != first:
            first = f"{first} {second}"
    return f"{first} {_pick(rng, FAMILY_NAMES)}"


def _random_nik(rng: random.Random, region: str, born: date, sex: str) -> str:
    """A NIK with a random serial 0001-9999; the parts are trusted (checked by the caller)."""
    return format_nik(region, born, sex, 1 + int(rng.random() * 9999))


def _school_year(on: date) -> int:
    """The calendar year a school year starts in (July)."""
    return on.year if on.month >= 7 else on.year - 1


def _office_sites(count: int, timezone: str, regency: str) -> list[SiteRow]:
    """``count`` offices: the OPDs, then kecamatan offices, puskesmas, then numbered UPTs."""
    catalogue = list(OPD)
    catalogue += [(f"KEC-{k.upper().replace(' ', '-')}", f"Kantor Camat {k}") for k in KECAMATAN]
    catalogue += [(f"PKM-{k.upper().replace(' ', '-')}", f"UPT Puskesmas {k}") for k in KECAMATAN]
    catalogue += [(f"UPT-{n:03d}", f"Unit Pelaksana Teknis {n:03d}")
                  for n in range(1, max(0, count - len(catalogue)) + 1)]
    return [SiteRow(f"OPD-{suffix}", name, "office", timezone, "asn", regency)
            for suffix, name in catalogue[:count]]


def _school_sites(rng: random.Random, count: int, timezone: str,
                  regency: str) -> list[SiteRow]:
    """``count`` schools (about a quarter SMP, the rest SD), each with a unique NPSN."""
    smp = round(count * SMP_SHARE) if count > 1 else 0
    town = town_of(regency).upper()
    npsns: set[str] = set()
    schools = []
    for index in range(count):
        npsn = make_npsn(rng)
        while npsn in npsns:
            npsn = make_npsn(rng)
        npsns.add(npsn)
        if index < count - smp:
            name = f"SD NEGERI {index + 1:03d} {town}"
        else:
            name = f"SMP NEGERI {index - (count - smp) + 1} {town}"
        schools.append(SiteRow(npsn, name, "school", timezone, "sekolah", regency))
    return schools


def _is_smp(site: SiteRow) -> bool:
    """Whether a school is a junior high school (SMP) rather than a primary one (SD)."""
    return site.name.startswith("SMP")


def _grades(site: SiteRow) -> range:
    """The grades taught at a school: 1-6 at an SD, 7-9 at an SMP."""
    return range(7, 10) if _is_smp(site) else range(1, 7)


def _head_title(site: SiteRow) -> str:
    """The position of whoever heads a site."""
    if site.kind == "school":
        return "Kepala Sekolah"
    for prefix, title in (("Sekretariat ", "Sekretaris "), ("Kantor Camat", "Camat"),
                          ("Inspektorat", "Inspektur"), ("Rumah Sakit", "Direktur"),
                          ("UPT ", "Kepala UPT"), ("Unit Pelaksana", "Kepala UPT")):
        if site.name.startswith(prefix):
            return title + site.name[len(prefix):] if prefix == "Sekretariat " else title
    return "Kepala " + site.name.split(" ")[0]  # Kepala Dinas, Kepala Badan, Kepala Satuan


def _job(rng: random.Random, site: SiteRow, *, head: bool) -> tuple[str, str]:
    """(unit, position) of an employee at ``site``; the first one placed there heads it."""
    if head:
        return "Pimpinan", _head_title(site)
    if site.kind == "school":
        unit, position = rng.choice(SCHOOL_STAFF)
        if position == "Guru Kelas" and _is_smp(site):
            position = "Guru Mata Pelajaran"
        return unit, position
    return rng.choice(OFFICE_UNITS), rng.choice(OFFICE_POSITIONS)


def _unique(rng: random.Random, seen: set[str], make: Any) -> str:
    """``make(rng)`` until it gives a value not in ``seen``; remember it."""
    value = make(rng)
    while value in seen:
        value = make(rng)
    seen.add(value)
    return value


def _card_uid(rng: random.Random) -> str:
    """A 7-byte NFC UID (NXP manufacturer byte 0x04), 14 uppercase hex digits."""
    return f"04{rng.getrandbits(48):012X}"


# --- the city --------------------------------------------------------------------------

class SyntheticCity:
    """A deterministic city of ``sites`` sites (about 15 % offices, the rest schools),
    ``staff`` ASN employees (about 30 % at schools) and ``students`` students, each
    person with one card.

    ``region`` is the 6-digit NIK region code of every person; ``as_of`` is the day
    ages and grades refer to.
    """

    def __init__(self, seed: int = 1, *, sites: int = 400, staff: int = 10_000,
                 students: int = 150_000, regency: str = "Kota Pekanbaru",
                 region: str = "147101", timezone: str = "Asia/Jakarta",
                 as_of: date = REFERENCE_DATE) -> None:
        if sites < 1 or staff < 0 or students < 0:
            raise ValueError("need sites >= 1, staff >= 0 and students >= 0")
        if sites == 1 and staff and students:
            raise ValueError("one site cannot hold both staff and students: use sites >= 2")
        region_problem = nik_problem(f"{region}0101010001") if len(region) == 6 else (
            f"region must be 6 digits (got {len(region)})")
        if region_problem:
            raise ValueError(f"bad region {region!r}: {region_problem}")
        ZoneInfo(timezone)  # fail early on an unknown timezone
        self.seed = seed
        self.site_count = sites
        self.staff_count = staff
        self.student_count = students
        self.regency = regency
        self.region = region
        self.timezone = timezone
        self.as_of = as_of

    def __repr__(self) -> str:
        return (f"SyntheticCity(seed={self.seed}, sites={self.site_count}, "
                f"staff={self.staff_count}, students={self.student_count})")

    # Public views (copies: callers may change them freely).

    def sites(self) -> list[SiteRow]:
        """Offices first, then SD, then SMP schools."""
        return list(self._population.sites)

    def employees(self) -> list[EmployeeRow]:
        """The ASN staff (PNS and PPPK), in the order they were placed at sites."""
        return list(self._population.employees)

    def students(self) -> list[StudentRow]:
        """The students of all schools."""
        return list(self._population.students)

    def cards(self) -> list[CardRow]:
        """One card per person: employees' cards first, then students'."""
        return list(self._population.cards)

    def students_by_school(self) -> dict[str, list[StudentRow]]:
        """Students per NPSN, every school present (possibly with an empty list)."""
        found: dict[str, list[StudentRow]] = {
            site.code: [] for site in self._population.sites if site.kind == "school"}
        for student in self._population.students:
            found[student.npsn].append(student)
        return found

    # Building.

    def _rng(self, part: str) -> random.Random:
        """An independent generator per part, so changing one part leaves the others."""
        return random.Random(f"synthetic-city:{self.seed}:{part}")

    @cached_property
    def _population(self) -> _Population:
        """Everyone, built once on first use (NIKs unique across staff and students)."""
        sites = self._build_sites()
        niks: set[str] = set()
        employees = self._build_employees(sites, niks)
        students = self._build_students(sites, niks)
        cards = self._build_cards(employees, students)
        return _Population(sites, employees, students, cards)

    def _build_sites(self) -> list[SiteRow]:
        """About 15 % offices (at least one, unless a single site must be a school)."""
        if self.site_count == 1:
            offices = 0 if self.student_count else 1
        else:
            offices = min(self.site_count - 1, max(1, round(self.site_count * OFFICE_SHARE)))
        return (_office_sites(offices, self.timezone, self.regency)
                + _school_sites(self._rng("sites"), self.site_count - offices, self.timezone,
                                self.regency))

    def _build_employees(self, sites: list[SiteRow], niks: set[str]) -> list[EmployeeRow]:
        """Staff placed at offices (bigger OPDs weigh more) and schools (about 30 %)."""
        rng = self._rng("employees")
        offices = [s for s in sites if s.kind == "office"]
        schools = [s for s in sites if s.kind == "school"]
        at_schools = round(self.staff_count * SCHOOL_STAFF_SHARE) if offices else self.staff_count
        at_schools = at_schools if schools else 0
        big = {f"OPD-{suffix}" for suffix, _ in OPD}  # the OPDs proper employ more
        placed = (rng.choices(offices, [3.0 if s.code in big else 1.0 for s in offices],
                              k=self.staff_count - at_schools) if offices else [])
        placed += rng.choices(schools, [2.0 if _is_smp(s) else 1.0 for s in schools],
                              k=at_schools) if schools else []
        nips: set[str] = set()
        heads: set[str] = set()
        employees = []
        for site in placed:
            head = site.code not in heads
            heads.add(site.code)
            sex = MALE if rng.random() < 0.5 else FEMALE
            born = _random_day(rng, self.as_of.year - rng.randint(45 if head else 22, 58))
            status = "PPPK" if not head and rng.random() < PPPK_SHARE else "PNS"
            if status == "PPPK":
                tmt_year = rng.randint(max(2019, born.year + 20), self.as_of.year)
            else:
                tmt_year = min(born.year + rng.randint(22, 32), self.as_of.year)
            tmt_month = rng.randint(1, 12)
            nip = _unique(rng, nips, lambda r: make_nip(r, born, tmt_year, tmt_month, sex))
            nik = _unique(rng, niks, lambda r: _random_nik(r, self.region, born, sex))
            unit, position = _job(rng, site, head=head)
            employees.append(EmployeeRow(nip, nik, _random_name(rng, sex), site.code, unit,
                                         position, status, sex, born))
        return employees

    def _build_students(self, sites: list[SiteRow], niks: set[str]) -> list[StudentRow]:
        """Students spread over the schools (an SMP weighs 2.5 SDs), in classes of 32."""
        rng = self._rng("students")
        schools = [s for s in sites if s.kind == "school"]
        if not schools:
            return []
        placed = rng.choices(schools, [2.5 if _is_smp(s) else 1.0 for s in schools],
                             k=self.student_count)
        first_year = _school_year(self.as_of)
        in_class: Counter[tuple[str, int]] = Counter()
        nisns: set[str] = set()
        students = []
        grades = {site.code: tuple(_grades(site)) for site in schools}
        for site in placed:
            grade = _pick(rng, grades[site.code])
            sex = MALE if rng.random() < 0.5 else FEMALE
            # Six at the start of grade 1; about one in ten a year older.
            born = _random_day(rng, first_year - grade - 6 - (rng.random() < 0.1))
            seat = in_class[site.code, grade]
            in_class[site.code, grade] += 1
            rombel = f"Kelas {grade}{chr(ord('A') + seat // ROMBEL_SIZE)}"
            nisn = _unique(rng, nisns, lambda r: make_nisn(r, born))
            nik = _unique(rng, niks, lambda r: _random_nik(r, self.region, born, sex))
            students.append(StudentRow(nisn, nik, _random_name(rng, sex), site.code, rombel,
                                       sex, born))
        return students

    def _build_cards(self, employees: list[EmployeeRow],
                     students: list[StudentRow]) -> list[CardRow]:
        """One card with a unique UID per person."""
        rng = self._rng("cards")
        uids: set[str] = set()
        cards = [CardRow(_unique(rng, uids, _card_uid), e.nip, "", e.nik) for e in employees]
        cards += [CardRow(_unique(rng, uids, _card_uid), "", s.nisn, s.nik) for s in students]
        return cards

    # Taps.

    @cached_property
    def _tappers(self) -> tuple[list[SiteRow], list[tuple[str, str, int]]]:
        """The sites, and (card UID, site code, site index) of every person."""
        population = self._population
        index = {site.code: i for i, site in enumerate(population.sites)}
        where = {e.nip: e.site_code for e in population.employees}
        where.update((s.nisn, s.npsn) for s in population.students)
        people = []
        for card in population.cards:
            code = where[card.nip or card.nisn]
            people.append((card.card_uid, code, index[code]))
        return population.sites, people

    def taps_for_day(self, day: date, *, rng_seed: int | str | None = None
                     ) -> Iterator[SyntheticTap]:
        """The taps of every person on ``day``: none on Saturday and Sunday.

        Per person, about 85 % check in before the start and out after the end of
        their site's hours, 8 % arrive 1-120 minutes late, 3 % are absent, 2 % leave
        1-120 minutes early and 2 % tap only once (mostly forgetting to check out).
        Taps come person by person (check-in before check-out), not sorted by time.
        The same city, day and ``rng_seed`` (default: the city's seed) give the same taps.
        """
        if day.weekday() >= 5:
            return
        seed = self.seed if rng_seed is None else rng_seed
        draw = random.Random(f"synthetic-taps:{seed}:{day.isoformat()}").random
        sites, people = self._tappers
        windows = [_working_window(day, site) for site in sites]
        seconds = _SECONDS
        absent = ABSENT_SHARE
        late = absent + LATE_SHARE
        early = late + LEAVE_EARLY_SHARE
        one_tap = early + ONE_TAP_SHARE
        for uid, code, site_index in people:
            u = draw()
            if u < absent:
                continue
            start, end = windows[site_index]
            if u < late:
                arrive = start + seconds[60 + int(draw() * (MAX_LATE_SECONDS - 59))]
            else:
                arrive = start - seconds[1 + int(draw() * MAX_EARLY_ARRIVAL_SECONDS)]
            if early <= u < one_tap:  # one tap only
                if draw() < 0.7:
                    yield SyntheticTap(uid, code, arrive)
                else:
                    yield SyntheticTap(uid, code, end + seconds[int(draw() * MAX_STAY_SECONDS)])
                continue
            if late <= u < early:
                leave = end - seconds[60 + int(draw() * (MAX_LEAVE_EARLY_SECONDS - 59))]
            else:
                leave = end + seconds[int(draw() * MAX_STAY_SECONDS)]
            yield SyntheticTap(uid, code, arrive)
            yield SyntheticTap(uid, code, leave)


def _working_window(day: date, site: SiteRow) -> tuple[datetime, datetime]:
    """The aware local start and end of work at ``site`` on ``day``."""
    start, end, friday_end = SCHEDULE_HOURS[site.schedule]
    zone = ZoneInfo(site.timezone)
    closing = friday_end if day.weekday() == 4 else end
    return datetime.combine(day, start, zone), datetime.combine(day, closing, zone)


# --- writers ---------------------------------------------------------------------------

def _write_csv(path: str | Path, header: Sequence[str], lines: Iterable[Sequence[Any]]) -> int:
    """Write a UTF-8 CSV with ``header`` first; the number of data lines written."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for line in lines:
            writer.writerow(line)
            count += 1
    return count


def write_sites_csv(path: str | Path, rows: Iterable[SiteRow]) -> int:
    """Write ``sites.csv``; the number of sites written."""
    return _write_csv(path, SITES_CSV_HEADER, (
        (r.code, r.name, r.kind, r.timezone, r.schedule, r.regency) for r in rows))


def write_employees_csv(path: str | Path, rows: Iterable[EmployeeRow]) -> int:
    """Write ``employees.csv`` (dates as YYYY-MM-DD); the number of employees written."""
    return _write_csv(path, EMPLOYEES_CSV_HEADER, (r.csv_row() for r in rows))


def write_cards_csv(path: str | Path, rows: Iterable[CardRow]) -> int:
    """Write ``cards.csv``: every card active, no validity dates; the number written."""
    return _write_csv(path, CARDS_CSV_HEADER, (
        (r.card_uid, r.nip, r.nisn, r.nik, "active", "", "") for r in rows))


def dapodik_title_rows(school: SiteRow, *, downloaded_at: datetime | None = None,
                       operator: str | None = None, province: str = "Riau") -> list[str]:
    """The title lines above a Dapodik export's header (the last one empty)."""
    downloaded_at = downloaded_at or datetime.now().replace(microsecond=0)
    if operator is None:
        slug = "".join(ch for ch in school.name.lower() if ch.isalnum())
        operator = f"operator@{slug}.sch.id"
    return [
        DAPODIK_TITLE,
        school.name,
        f"Kecamatan {kecamatan_of(school)}, {school.regency}, Prov. {province}",
        f"Tanggal Unduh: {downloaded_at:%Y-%m-%d %H:%M:%S}",
        f"Pengunduh: {operator}",
        "",
    ]


def _religion(student: StudentRow) -> str:
    """A stable religion for the export, mostly Islam as in Riau."""
    share = zlib.crc32(f"agama:{student.nisn}".encode()) % 1000 / 1000
    return next(name for name, upto in RELIGIONS if share < upto)


def _birthplace(student: StudentRow, town: str) -> str:
    """A stable birthplace: mostly the town itself, otherwise a town nearby."""
    pick = zlib.crc32(f"lahir:{student.nisn}".encode())
    return town if pick % 100 < 85 else OTHER_BIRTHPLACES[pick % len(OTHER_BIRTHPLACES)]


def _address(student: StudentRow) -> str:
    """A stable street address."""
    pick = zlib.crc32(f"alamat:{student.nisn}".encode())
    return f"{STREETS[pick % len(STREETS)]} No. {pick % 197 + 1}"


def _nipd(number: int) -> str:
    """A school-local student number (NIPD) for the ``number``-th student listed."""
    return f"{number:05d}"


def _dapodik_lines(rows: Iterable[StudentRow], town: str) -> Iterator[list[Any]]:
    """The data lines of a Dapodik export, in :data:`DAPODIK_HEADER` order."""
    for number, s in enumerate(rows, start=1):
        yield [number, s.name, _nipd(number), s.sex, s.nisn, _birthplace(s, town),
               s.birth_date.isoformat(), s.nik, _religion(s), _address(s), s.rombel]


def write_students_xlsx(path: str | Path, school: SiteRow, rows: Iterable[StudentRow], *,
                        downloaded_at: datetime | None = None, operator: str | None = None,
                        province: str = "Riau") -> int:
    """Write a Dapodik "Daftar Peserta Didik" XLSX of ``school``; the number of students.

    Identity numbers and dates are text cells, as in the export (leading zeros kept).
    """
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Peserta Didik")
    for title in dapodik_title_rows(school, downloaded_at=downloaded_at, operator=operator,
                                    province=province):
        sheet.append([title] if title else [])
    sheet.append(list(DAPODIK_HEADER))
    count = 0
    for line in _dapodik_lines(rows, town_of(school.regency)):
        sheet.append(line)
        count += 1
    workbook.save(path)
    return count


def write_students_csv(path: str | Path, school: SiteRow, rows: Iterable[StudentRow], *,
                       downloaded_at: datetime | None = None, operator: str | None = None,
                       province: str = "Riau") -> int:
    """The same export as :func:`write_students_xlsx`, as a UTF-8 CSV (title lines of one
    field, an empty line, the header, the students); the number of students."""
    titles = dapodik_title_rows(school, downloaded_at=downloaded_at, operator=operator,
                                province=province)
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        for title in titles:
            writer.writerow([title] if title else [])
        writer.writerow(DAPODIK_HEADER)
        for line in _dapodik_lines(rows, town_of(school.regency)):
            writer.writerow(line)
            count += 1
    return count


def students_dapodik_json(rows: Iterable[StudentRow], *, town: str = "Pekanbaru"
                          ) -> dict[str, Any]:
    """The answer of the Dapodik web service ``getPesertaDidik`` for these students.

    ``peserta_didik_id`` is a UUID derived from the NISN (stable across calls).
    """
    found = [{
        "peserta_didik_id": str(uuid.uuid5(_STUDENT_ID_NAMESPACE, s.nisn)),
        "nama": s.name,
        "nisn": s.nisn,
        "nik": s.nik,
        "jenis_kelamin": s.sex,
        "tempat_lahir": _birthplace(s, town),
        "tanggal_lahir": s.birth_date.isoformat(),
        "nipd": _nipd(number),
        "nama_rombel": s.rombel,
    } for number, s in enumerate(rows, start=1)]
    return {"results": len(found), "rows": found}
