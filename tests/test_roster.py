import pytest

from edge.errors import RosterImportError
from edge.outbox import Outbox
from edge.roster import parse_roster_csv

GOOD = """card_uid,person_id,name,kind,group,status
04:a1:b2:c3:d4:e5:f6,0051234567,Siti Aminah,student,VII-A,active
8C3F2A11,198703152010012003,Budi Santoso,employee,Tata Usaha,blocked
"""


def test_good_file(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(GOOD)
    entries = parse_roster_csv(path)
    assert [(e.card_uid, e.person_id, e.status, e.group_name) for e in entries] == [
        ("04A1B2C3D4E5F6", "0051234567", "active", "VII-A"),
        ("8C3F2A11", "198703152010012003", "blocked", "Tata Usaha"),
    ]


def test_semicolon_and_bom(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_bytes("\ufeffcard_uid;person_id\n04A1B2C3;p1\n".encode())
    assert parse_roster_csv(path)[0].person_id == "p1"


def test_every_bad_row_reported(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(
        "card_uid,person_id,name,status\n"
        "04A1B2C3,p1,Ok,active\n"
        "XYZ,p2,Bad uid,active\n"
        "04A1B2C3,p3,Duplicate,active\n"
        "08112233,p4,Random,active\n"
        "04000001,,No person,active\n"
        "04000002,p6,Bad status,gone\n"
        "04000003,p7\n"
    )
    with pytest.raises(RosterImportError) as info:
        parse_roster_csv(path)
    where = [(line, field) for _, line, field, _ in info.value.problems]
    assert where == [(3, "card_uid"), (4, "card_uid"), (5, "card_uid"), (6, "person_id"),
                     (7, "status"), (8, "-")]
    assert str(path) in str(info.value) and "already on line 2" in str(info.value)


@pytest.mark.parametrize("content, field, reason", [
    (b"name\nx\n", "card_uid", "required column is missing"),
    (b"", "-", "empty"),
    ("card_uid,person_id\n04A1B2C3,Sít\xed\n".encode("latin-1"), "-", "not UTF-8"),
])
def test_unreadable_files(tmp_path, content, field, reason):
    path = tmp_path / "roster.csv"
    path.write_bytes(content)
    with pytest.raises(RosterImportError) as info:
        parse_roster_csv(path)
    assert info.value.problems[0][2] == field and reason in info.value.problems[0][3]


def test_failed_load_changes_nothing(tmp_path):
    from edge.cli import main
    from click.testing import CliRunner

    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[device]\ndata_dir = "{tmp_path / "data"}"\n')
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    bad = tmp_path / "bad.csv"
    bad.write_text("card_uid,person_id\n04A1B2C3,p1\nnothex,p2\n")
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(cfg), "roster", "load", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 card(s), 1 refused" in result.output
    result = runner.invoke(main, ["--config", str(cfg), "roster", "load", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:3: card_uid:" in result.output and "nothing imported" in result.output
    with Outbox(tmp_path / "data" / "edge.db") as box:
        assert box.lookup("04A1B2C3D4E5F6").name == "Siti Aminah"
        assert box.lookup("04A1B2C3") is None
