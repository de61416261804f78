"""Site registry import (sites.csv) on both backends."""

from datetime import timedelta

import pytest

from server.devices import add_site
from server.registry import RegistryImportError, import_sites
from tests.server.helpers import count, rows
from tests.server.registry_data import NOW, SITES, sites_csv, snapshot

SITES_BY_CODE = {r[0]: r for r in SITES}


def run(engine, path, **options):
    with engine.begin() as conn:
        return import_sites(conn, path, now=options.pop("now", NOW), **options)


def test_import_stores_kinds_and_iana_zones(engine, tmp_path):
    diff = run(engine, sites_csv(tmp_path))
    assert diff.counts() == {"new": 5, "changes": 0, "unchanged": 0} and diff.applied
    found = {r["code"]: (r["name"], r["kind"], r["timezone"], r["schedule"], r["regency"])
             for r in rows(engine, "SELECT * FROM sites")}
    assert found == {
        "OPD-DISDIK": ("Dinas Pendidikan", "office", "Asia/Jakarta", "asn", "Kota Pekanbaru"),
        "OPD-BKD": ("Badan Kepegawaian Daerah", "office", "Asia/Jakarta", "asn",
                    "Kota Pekanbaru"),
        "20401234": ("SD Negeri 001 Pekanbaru", "school", "Asia/Jakarta", "sekolah",
                     "Kota Pekanbaru"),
        "20405678": ("SMP Negeri 2 Pekanbaru", "school", "Asia/Jakarta", None,
                     "Kota Pekanbaru"),
        "60101234": ("SD Negeri 3 Makassar", "school", "Asia/Makassar", "sekolah",
                     "Kota Makassar"),
    }


def test_reimport_writes_nothing_and_changes_are_applied(engine, tmp_path):
    run(engine, sites_csv(tmp_path))
    before = snapshot(engine)
    assert run(engine, sites_csv(tmp_path), now=NOW + timedelta(days=1)).is_empty()
    assert snapshot(engine) == before
    renamed = [SITES[0][:1] + ("Dinas Pendidikan Kota",) + SITES[0][2:], *SITES[1:3]]
    diff = run(engine, sites_csv(tmp_path, renamed, name="s2.csv"), now=NOW + timedelta(days=1))
    assert diff.counts() == {"new": 0, "changes": 1, "unchanged": 2}
    [change] = diff.entries["changes"]
    assert change.changes == {"name": ("Dinas Pendidikan", "Dinas Pendidikan Kota")}
    # Sites missing from the file stay.
    assert count(engine, "sites") == 5
    [site] = rows(engine, "SELECT updated_at, created_at FROM sites WHERE code = 'OPD-DISDIK'")
    assert site["updated_at"] != site["created_at"]


def test_a_site_made_by_hand_is_updated(engine, tmp_path):
    with engine.begin() as conn:
        add_site(conn, "20401234", "SDN 1", "Asia/Jakarta")
    diff = run(engine, sites_csv(tmp_path))
    assert diff.counts()["new"] == 4
    [change] = diff.entries["changes"]
    assert change.changes == {"name": ("SDN 1", "SD Negeri 001 Pekanbaru"),
                              "kind": (None, "school"), "schedule": (None, "sekolah"),
                              "regency": ("", "Kota Pekanbaru")}


def test_dry_run_writes_nothing(engine, tmp_path):
    diff = run(engine, sites_csv(tmp_path), dry_run=True)
    assert diff.counts()["new"] == 5 and count(engine, "sites") == 0


def test_every_bad_row_is_reported(engine, tmp_path):
    path = sites_csv(tmp_path, [
        ("OPD-DISDIK", "Dinas Pendidikan", "office", "WIB", "asn", ""),
        ("2040123", "SD Negeri 7", "school", "WIB", "", ""),  # NPSN of 7 digits
        ("OPD-DISDIK", "Dinas lagi", "office", "WIB", "", ""),
        ("OPD X", "", "pabrik", "GMT+7", "Jadwal Baru", ""),
    ])
    with pytest.raises(RegistryImportError) as excinfo:
        run(engine, path)
    assert [(p.line, p.field) for p in excinfo.value.problems] == [
        (3, "code"), (4, "code"), (5, "kind"), (5, "code"), (5, "name"), (5, "timezone"),
        (5, "schedule")]
    assert str(excinfo.value.problems[0]) == (
        f"{path}:3: code: a school's code is its NPSN: NPSN must be 8 digits (got 7)")
    assert str(excinfo.value.problems[1]) == f"{path}:4: code: site OPD-DISDIK is on lines 2 and 4"
    assert count(engine, "sites") == 0
