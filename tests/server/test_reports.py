"""Reports: monthly recap (SQL counts) against hand-made months and against
``recap_days``; class recap; a day's attendance; CSV and XLSX read back; the CLI."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import date, datetime, timedelta, timezone

import openpyxl
import pytest

from server import reports
from server.attendance_rules import RulesConfig, recap_days
from server.db import reading
from server.reports import ReportError
from tests.server.helpers import make_site
from tests.server.report_data import (NOVEMBER, add_person, day_row, month_days, put_rows,
                                      set_site_kind, weekday_plan)

NIP_1 = "198503302010011002"
NIP_2 = "199001012015032001"


@pytest.fixture
def month(engine):
    """Two offices and a school with a hand-made November 2026 (see the numbers below)."""
    make_site(engine, "OPD1", "Dinas Kominfo")
    make_site(engine, "OPD2", "Dinas Pendidikan")
    make_site(engine, "10401001", "SMPN 1 Pekanbaru")
    set_site_kind(engine, "10401001", "school")
    days = month_days()
    add_person(engine, NIP_1, "Siti Rahmawati", "employee", "OPD1", "Sekretariat", nip=NIP_1)
    # Transferred on the 16th: one recap row per site.
    add_person(engine, NIP_2, "Budi Santoso", "employee", "OPD2", "Bidang B", nip=NIP_2)
    add_person(engine, "0051234561", "Ani", "student", "10401001", "7A", nisn="0051234561")
    add_person(engine, "0051234562", "Bayu", "student", "10401001", "7A", nisn="0051234562")
    add_person(engine, "0051234563", "Citra", "student", "10401001", "7A", nisn="0051234563")
    rows = weekday_plan(NIP_1, "OPD1", days, {
        3: ("H", "TL1", None), 4: ("H", "TL2", "PSW1"), 5: ("S", None, None),
        6: ("A", None, None), 9: ("DL", None, None), 10: ("C", None, None),
        11: ("I", None, None), 12: ("H", "TL4", "PSW4"), 30: ("PENDING", "TL1", None)},
        group="Sekretariat")
    rows += weekday_plan(NIP_2, "OPD1", days[:15], group="Bidang A")
    rows += weekday_plan(NIP_2, "OPD2", days[15:], {17: ("A", None, None),
                                                   18: ("A", None, None)}, group="Bidang B")
    rows += weekday_plan("0051234561", "10401001", days, group="7A")
    rows += weekday_plan("0051234562", "10401001", days, {
        2: ("S", None, None), 3: ("S", None, None), 4: ("I", None, None),
        5: ("A", None, None), 6: ("A", None, None), 9: ("A", None, None),
        10: ("H", "TL1", None), 11: ("H", "TL1", "PSW1")}, group="7A")
    # Moved from 7B to 7A on the 16th, same school.
    rows += weekday_plan("0051234563", "10401001", days[:15], group="7B")
    rows += weekday_plan("0051234563", "10401001", days[15:], group="7A")
    # Another month must not leak in.
    rows.append(day_row(NIP_1, date(2026, 12, 1), "OPD1", "A", group="Sekretariat"))
    rows.append(day_row(NIP_1, date(2026, 10, 30), "OPD1", "A", group="Sekretariat"))
    put_rows(engine, rows)
    return days


def recap(engine, **kwargs):
    with reading(engine) as conn:
        return reports.monthly_recap(conn, NOVEMBER, **kwargs)


def by_key(rows):
    return {(r.person_id, r.site_code): r for r in rows}


def test_recap_of_a_hand_made_month(engine, month):
    rows = by_key(recap(engine))
    assert len(rows) == 6
    siti = rows[NIP_1, "OPD1"]
    assert siti.name == "Siti Rahmawati" and siti.nip == NIP_1 and siti.group_name == "Sekretariat"
    assert siti.site_name == "Dinas Kominfo"
    expected = {"H": 15, "TL1": 1, "TL2": 1, "TL3": 0, "TL4": 1, "PSW1": 1, "PSW2": 0,
                "PSW3": 0, "PSW4": 1, "S": 1, "I": 1, "A": 1, "DL": 1, "C": 1, "LIBUR": 9,
                "PENDING": 1}
    assert siti.counts == expected  # the pending day's provisional TL1 is not counted
    assert siti.recap.days == 30 and siti.working_days == 20
    assert siti.percent_present == 75.0
    # TL1 0.5 + TL2 1 + TL4 1.5 + PSW1 0.5 + PSW4 1.5 + A 3
    assert siti.deduction_percent == 8.0
    assert (siti.first_day, siti.last_day) == (date(2026, 11, 1), date(2026, 11, 30))


def test_transfer_mid_month_gives_one_row_per_site(engine, month):
    rows = by_key(recap(engine))
    before, after = rows[NIP_2, "OPD1"], rows[NIP_2, "OPD2"]
    assert (before.first_day, before.last_day) == (date(2026, 11, 1), date(2026, 11, 15))
    assert (after.first_day, after.last_day) == (date(2026, 11, 16), date(2026, 11, 30))
    assert (before.group_name, after.group_name) == ("Bidang A", "Bidang B")
    assert (before.counts["H"], before.counts["LIBUR"]) == (10, 5)
    assert before.working_days == 10 and before.percent_present == 100.0
    assert before.deduction_percent == 0.0
    assert (after.counts["H"], after.counts["A"], after.counts["LIBUR"]) == (9, 2, 4)
    assert after.working_days == 11 and after.percent_present == 81.82
    assert after.deduction_percent == 6.0


def test_students_have_no_deduction_and_keep_their_last_class(engine, month):
    rows = by_key(recap(engine, kind="student"))
    assert {k[0] for k in rows} == {"0051234561", "0051234562", "0051234563"}
    bayu = rows["0051234562", "10401001"]
    assert bayu.deduction_percent is None and bayu.recap.deduction_percent > 0
    assert (bayu.counts["H"], bayu.counts["S"], bayu.counts["I"], bayu.counts["A"]) == (15, 2, 1, 3)
    assert bayu.counts["TL1"] == 2 and bayu.percent_present == round(15 / 21 * 100, 2)
    assert rows["0051234563", "10401001"].group_name == "7A"
    assert rows["0051234563", "10401001"].nisn == "0051234563"


def test_recap_filters_and_order(engine, month):
    assert {r.person_id for r in recap(engine, kind="employee")} == {NIP_1, NIP_2}
    only = recap(engine, site_code="OPD1")
    assert [(r.person_id, r.group_name) for r in only] == [(NIP_2, "Bidang A"),
                                                           (NIP_1, "Sekretariat")]
    assert recap(engine, site_code="OPD1", kind="student") == []
    with reading(engine) as conn:
        assert reports.monthly_recap(conn, date(2026, 9, 1)) == []
        with pytest.raises(ReportError):
            reports.monthly_recap(conn, date(2026, 11, 2))
        with pytest.raises(ReportError):
            reports.monthly_recap(conn, NOVEMBER, kind="guest")


def test_deduction_weights_are_configurable_and_capped(engine, month):
    config = RulesConfig.from_dict({"deduction_weights": {"A": 50.0, "TL1": 2.0}})
    rows = by_key(recap(engine, config=config))
    # TL1 2 + TL2 1 + TL4 1.5 + PSW1 0.5 + PSW4 1.5 + A 50
    assert rows[NIP_1, "OPD1"].deduction_percent == 56.5
    assert rows[NIP_2, "OPD2"].deduction_percent == 100.0  # 2 x 50, at the cap
    config = RulesConfig.from_dict({"deduction_weights": {"A": 60.0}})
    assert by_key(recap(engine, config=config))[NIP_2, "OPD2"].deduction_percent == 100.0


@pytest.mark.parametrize("weights", [{}, {"A": 7.5, "S": 0.25, "I": 1.0, "TL3": 4.0,
                                           "PSW2": 2.5, "C": 0.1}])
def test_sql_recap_equals_recap_days(engine, weights):
    """Random months for 60 people over two sites: the SQL counts and Python's
    ``recap_days`` give the same numbers, person by person and site by site."""
    config = RulesConfig.from_dict({"deduction_weights": weights})
    make_site(engine, "S1")
    make_site(engine, "S2")
    rng = random.Random(20261101)
    statuses = ["H"] * 8 + ["A", "S", "I", "DL", "C", "LIBUR", "PENDING"]
    lates = [None] * 4 + list(config.late_names)
    earlies = [None] * 4 + list(config.early_names)
    rows, outcomes = [], {}
    for n in range(60):
        pid = f"P{n:03d}"
        add_person(engine, pid, f"Orang {n}", rng.choice(["employee", "student"]), "S1")
        switch = rng.randrange(0, 31)  # 0: whole month at S2; 30: whole month at S1
        for day in month_days():
            if rng.random() < 0.1:
                continue  # not every day has a row (joined late, left early)
            site = "S1" if day.day <= switch else "S2"
            status = rng.choice(statuses)
            late = rng.choice(lates) if status in ("H", "PENDING") else None
            early = rng.choice(earlies) if status == "H" else None
            rows.append(day_row(pid, day, site, status, late, early))
            outcomes.setdefault((pid, site), []).append((status, late, early))
    put_rows(engine, rows)
    got = by_key(recap(engine, config=config))
    assert set(got) == set(outcomes)
    for key, days in outcomes.items():
        expected = recap_days(days, config)
        assert got[key].recap.to_dict() == expected.to_dict(), key


def test_class_recap(engine, month):
    with reading(engine) as conn:
        classes = reports.class_recap(conn, NOVEMBER, "10401001")
        assert reports.class_recap(conn, NOVEMBER, "OPD1") == []  # no students there
    assert [c.group_name for c in classes] == ["7A", "7B"]
    seven_a, seven_b = classes
    assert seven_a.students == 3
    # Ani 21 H; Bayu 15 H (2 late), 2 S, 1 I, 3 A; Citra 11 H from the 16th.
    assert seven_a.counts == {"H": 47, "S": 2, "I": 1, "A": 3, "DL": 0, "C": 0}
    assert seven_a.late == 2 and seven_a.working_days == 53
    assert seven_a.percent_present == round(47 / 53 * 100, 2)
    assert (seven_b.students, seven_b.counts["H"], seven_b.working_days,
            seven_b.percent_present) == (1, 10, 10, 100.0)


def test_day_attendance_in_utc_and_local_time(engine, month):
    make_site(engine, "JPR1", "Kantor Jayapura", "Asia/Jayapura")
    add_person(engine, "J1", "Yohanes", "employee", "JPR1")
    put_rows(engine, [day_row("J1", date(2026, 11, 3), "JPR1", "H", "TL1", tz="Asia/Jayapura",
                              minutes_late=12, flags=["unverified_clock"])])
    with reading(engine) as conn:
        rows = reports.day_attendance(conn, date(2026, 11, 3))
        only = reports.day_attendance(conn, date(2026, 11, 3), "JPR1")
        page = reports.day_attendance(conn, date(2026, 11, 3), limit=2)
        rest = reports.day_attendance(conn, date(2026, 11, 3),
                                      after=(page[-1]["site"], page[-1]["person_id"]))
    assert [r["site"] for r in rows] == ["10401001"] * 3 + ["JPR1", "OPD1", "OPD1"]
    assert page + rest == rows
    (yohanes,) = only
    assert yohanes["check_in"] == "2026-11-02T22:20:00.000Z"
    assert yohanes["check_in_local"] == "2026-11-03T07:20:00+09:00"
    assert yohanes["check_out_local"] == "2026-11-03T16:05:00+09:00"
    assert (yohanes["status"], yohanes["late_code"], yohanes["minutes_late"]) == ("H", "TL1", 12)
    assert yohanes["flags"] == ["unverified_clock"] and yohanes["timezone"] == "Asia/Jayapura"


def test_change_feed_query(engine, month):
    with reading(engine) as conn:
        first, cursor = reports.attendance_changes(conn, 0, 50)
        assert cursor == 1 and len(first) == 50
        beyond, same = reports.attendance_changes(conn, 10**12, 50)
        assert beyond == [] and same == 10**12


# -- files ---------------------------------------------------------------------------------
def recap_csv(engine, **kwargs):
    rows = recap(engine, **kwargs)
    out = io.BytesIO()
    count = reports.write_csv(out, reports.recap_columns(), (r.record() for r in rows))
    return rows, count, out.getvalue()


def test_recap_csv_reads_back(engine, month):
    rows, count, raw = recap_csv(engine)
    assert raw.startswith(b"\xef\xbb\xbf") and count == len(rows) == 6
    lines = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(lines[0])[:6] == ["ID", "Nama", "Jenis", "NIP", "NISN", "Kode Unit"]
    assert list(lines[0])[-3:] == ["Hari Kerja", "% Hadir", "% Potongan TPP"]
    siti = next(line for line in lines if line["ID"] == NIP_1)
    assert (siti["Nama"], siti["H"], siti["TL4"], siti["A"], siti["Libur"], siti["Belum Final"],
            siti["Hari Kerja"], siti["% Hadir"], siti["% Potongan TPP"]) == (
        "Siti Rahmawati", "15", "1", "1", "9", "1", "20", "75.0", "8.0")
    assert siti["Dari"] == "2026-11-01" and siti["Rombel/Unit"] == "Sekretariat"
    student = next(line for line in lines if line["ID"] == "0051234561")
    assert student["% Potongan TPP"] == "" and student["NIP"] == ""


def test_formula_like_names_stay_text(engine):
    make_site(engine, "S1", "=HYPERLINK(\"x\")")
    add_person(engine, "P1", "=cmd|' /C calc'!A0", "employee", "S1", "@grup")
    put_rows(engine, [day_row("P1", date(2026, 11, 2), "S1", "H", group="@grup")])
    rows = recap(engine)
    out = io.BytesIO()
    reports.write_csv(out, reports.recap_columns(), (r.record() for r in rows))
    line = next(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"))))
    assert line["Nama"] == "'=cmd|' /C calc'!A0" and line["Rombel/Unit"] == "'@grup"
    book = io.BytesIO()
    reports.write_xlsx(book, reports.recap_columns(), (r.record() for r in rows), sheet="Rekap")
    sheet = openpyxl.load_workbook(io.BytesIO(book.getvalue()))["Rekap"]
    assert sheet["B2"].value == "=cmd|' /C calc'!A0" and sheet["B2"].data_type == "s"


def test_recap_xlsx_reads_back(engine, month):
    rows = recap(engine)
    report = reports.RecapReport(NOVEMBER, rows)
    book = openpyxl.load_workbook(io.BytesIO(report.render("xlsx")))
    assert book.sheetnames == ["Rekap", "Keterangan"]
    sheet = book["Rekap"]
    header = [c.value for c in sheet[1]]
    assert header == [c.header for c in reports.recap_columns()]
    assert all(c.font.b for c in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["B"].width == 32
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(header))}7"
    values = [dict(zip(header, (c.value for c in line))) for line in sheet.iter_rows(min_row=2)]
    assert len(values) == 6
    siti = next(v for v in values if v["ID"] == NIP_1)
    assert (siti["H"], siti["TL1"], siti["Hari Kerja"], siti["% Hadir"],
            siti["% Potongan TPP"]) == (15, 1, 20, 75.0, 8.0)
    about = {line[0].value: line[1].value for line in book["Keterangan"].iter_rows()
             if line and line[0].value}
    assert about["Bulan"] == "2026-11" and "A 3" in about["Bobot potongan TPP (% per hari)"]
    assert about["% Potongan TPP"].startswith("allowance")


def test_class_and_day_files(engine, month):
    with reading(engine) as conn:
        classes = reports.class_recap(conn, NOVEMBER, "10401001")
        day = reports.day_attendance(conn, date(2026, 11, 3), "OPD1")
    raw = reports.render("csv", reports.CLASS_COLUMNS, (c.record() for c in classes), sheet="R")
    lines = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [(line["Rombel"], line["Jumlah Siswa"], line["H"], line["Terlambat"])
            for line in lines] == [("7A", "3", "47", "2"), ("7B", "1", "10", "0")]
    raw = reports.render("xlsx", reports.DAY_COLUMNS, (reports.day_record(r) for r in day),
                         sheet="Harian")
    sheet = openpyxl.load_workbook(io.BytesIO(raw))["Harian"]
    header = [c.value for c in sheet[1]]
    siti = dict(zip(header, (c.value for c in sheet[2])))
    assert (siti["Status"], siti["Terlambat"], siti["Jam Masuk"], siti["Jam Pulang"]) == (
        "H", "TL1", "07:20:00", "16:05:00")
    with pytest.raises(ReportError):
        reports.render("pdf", reports.DAY_COLUMNS, [], sheet="x")


@pytest.mark.parametrize("text, ok", [("2026-11", date(2026, 11, 1)), ("2026-1", None),
                                      ("+202-11", None), ("2026-13", None), ("x", None),
                                      ("", None), ("2026-11\n", None)])
def test_parse_month(text, ok):
    if ok:
        assert reports.parse_month(text) == ok
    else:
        with pytest.raises(ReportError):
            reports.parse_month(text)


def test_cursor_round_trip():
    assert reports.decode_cursor(reports.encode_cursor("a", "b"), [str, str]) == ("a", "b")
    assert reports.decode_cursor(reports.encode_cursor(7), [int]) == (7,)
    for bad in ("", "!!", reports.encode_cursor(7), "bm90IGpzb24"):
        with pytest.raises(ReportError):
            reports.decode_cursor(bad, [str, str])


# -- the command line ----------------------------------------------------------------------
def test_cli_report_recap(runner, month, tmp_path):
    result = runner("report", "recap", "--month", "2026-11", "--site", "OPD1")
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    assert [line["ID"] for line in lines] == [NIP_2, NIP_1]
    target = tmp_path / "rekap.xlsx"
    result = runner("report", "recap", "--month", "2026-11", "--kind", "student",
                    "--output", str(target))
    assert result.exit_code == 0 and "3 row(s) written" in result.stderr
    assert openpyxl.load_workbook(target)["Rekap"].max_row == 4
    result = runner("report", "recap", "--month", "2026-11", "--format", "json")
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == 6 and objects[0]["counts"]["H"] >= 0


def test_cli_report_uses_the_configured_weights(runner, month, tmp_path):
    result = runner("report", "recap", "--month", "2026-11", "--site", "OPD2", "--format",
                    "json", env={"ATTENDANCE_ATTENDANCE_DEDUCTION_WEIGHTS": "A=10"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["deduction_percent"] == 20.0


def test_cli_report_classes_and_day(runner, month):
    result = runner("report", "classes", "--month", "2026-11", "--site", "10401001",
                    "--format", "json")
    assert [json.loads(line)["group"] for line in result.stdout.splitlines()] == ["7A", "7B"]
    result = runner("report", "day", "--date", "2026-11-03", "--site", "OPD1")
    lines = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode("utf-8-sig"))))
    assert [(line["ID"], line["Status"]) for line in lines] == [(NIP_1, "H"), (NIP_2, "H")]


@pytest.mark.parametrize("args, message", [
    (["recap", "--month", "2026-13"], "expected YYYY-MM"),
    (["recap", "--month", "2026-11", "--site", "NOPE"], "no site 'NOPE'"),
    (["classes", "--month", "2026-11"], "Missing option '--site'"),
    (["day", "--date", "2026-02-30", "--site", "OPD1"], "2026-02-30"),
])
def test_cli_report_errors(runner, month, args, message):
    result = runner("report", *args)
    assert result.exit_code != 0 and message in result.output


# -- the real reconciler ---------------------------------------------------------------------
def test_recap_of_reconciled_days_matches_recap_days(engine):
    """Taps go through the real reconciler; the SQL recap of its rows equals
    ``recap_days`` over the same rows."""
    reconcile = pytest.importorskip("server.reconcile")
    import sqlalchemy as sa

    from server.schema import attendance_days, cards, devices as devices_table, taps

    make_site(engine, "OPD9", "Dinas Uji")
    set_site_kind(engine, "OPD9", "office")
    add_person(engine, NIP_1, "Siti", "employee", "OPD9", "Umum", nip=NIP_1)
    add_person(engine, NIP_2, "Budi", "employee", "OPD9", "Umum", nip=NIP_2)
    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    jakarta = timezone(timedelta(hours=7))
    with engine.begin() as conn:
        conn.execute(devices_table.insert().values(
            device_id="dev_t", site_code="OPD9", hardware_id="pi", token_hash="x" * 64,
            created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), highest_seq=0,
            last_seen_at=now, backlog=0))
        conn.execute(cards.insert().values(card_uid="04A1B2C3", person_id=NIP_1,
                                           status="active", site_code="OPD9",
                                           changed_version=1, updated_at=now))
        seq = 0
        for day, moments in [(2, ["07:10", "16:10"]), (3, ["07:45", "16:20"]),
                             (4, ["07:20", "15:00"]), (5, ["07:25", "16:05"])]:
            for moment in moments:
                seq += 1
                hour, minute = map(int, moment.split(":"))
                at = datetime(2026, 11, day, hour, minute, tzinfo=jakarta)
                conn.execute(taps.insert().values(
                    event_id=f"e{seq}", device_id="dev_t", seq=seq, card_uid="04A1B2C3",
                    tapped_at=at.isoformat(), tapped_at_utc=at, boot_id="b", mono_ns=seq,
                    clock_synced=True, reader="r", verdict="accepted", received_at=at,
                    corrected_at=at, clock_status="verified", site_code="OPD9"))
    config = RulesConfig()
    week = [("OPD9", date(2026, 11, d)) for d in range(1, 8)]
    reconcile.reconcile_days(engine, week, config=config, now=now)
    with reading(engine) as conn:
        stored = conn.execute(sa.select(attendance_days.c.person_id, attendance_days.c.status,
                                        attendance_days.c.late_code,
                                        attendance_days.c.early_code)).all()
        got = by_key(reports.monthly_recap(conn, NOVEMBER, config=config))
    assert len(stored) == 14
    for person in (NIP_1, NIP_2):
        outcomes = [(r.status, r.late_code, r.early_code) for r in stored if r.person_id == person]
        assert got[person, "OPD9"].recap.to_dict() == recap_days(outcomes, config).to_dict()
    siti, budi = got[NIP_1, "OPD9"], got[NIP_2, "OPD9"]
    assert siti.counts["H"] == 4 and siti.counts["TL1"] == 1 and siti.counts["PSW2"] == 1
    assert siti.counts["A"] == 1 and siti.counts["LIBUR"] == 2  # Friday the 6th: no taps
    assert budi.counts["A"] == 5 and budi.deduction_percent == 15.0
