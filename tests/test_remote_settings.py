"""Remote settings end to end: a real server and a real edge on loopback HTTP.

Set on the server (``attendance-server device settings``), delivered with the
incremental roster even when no card changed, applied by the running edge without
a restart, kept across a restart while the server is down; a bad value from the
server is logged and ignored and taps go on; the operator's page shows the notice
and the coming days.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from edge import daily, operators
from edge import settings as remote_settings
from edge.outbox import open_database
from tests.edge_process import EdgeProcess, edge_cmd
from tests.sync_env import CentralServer
from tests.edge_process import sync_config
from tests.sync_env import enrol, wait_for

CARD = "04A1B2C3D4E5F6"


@pytest.fixture
def server(tmp_path):
    central = CentralServer(tmp_path / "server")
    central.setup_site()
    central.cli("site", "add", "20405678", "--name", "SDN 002", "--timezone", "Asia/Jakarta")
    roster = tmp_path / "roster.csv"
    roster.write_text("card_uid,person_id,name,kind,group,status\n"
                      f"{CARD},0051234567,Siti Aminah,student,VII-A,active\n")
    central.cli("roster", "import", "--site", "20401234", str(roster))
    central.start()
    yield central
    central.stop()


def status(config: Path) -> dict:
    return json.loads(edge_cmd(config, "status", "--json").stdout)


def setting(config: Path, key: str) -> dict:
    return status(config)["settings"][key]


def verdicts_of_two_taps(config: Path) -> list[str]:
    return [edge_cmd(config, "tap", CARD).stdout.split(":")[0] for _ in range(2)]


def roster_cursor(config: Path) -> str | None:
    conn = sqlite3.connect(f"file:{config.parent / 'data' / 'edge.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'roster_cursor'").fetchone()
    finally:
        conn.close()
    return row[0] if row else None


def device_id(config: Path) -> str:
    return json.loads((config.parent / "data" / "device.json").read_text())["device_id"]


def test_settings_reach_the_edge_apply_at_once_and_survive_a_restart(tmp_path, server):
    config = sync_config(tmp_path, server.url)  # [recorder] debounce_seconds: default 60
    enrol(config, server)
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        wait_for(lambda: CARD in edge_cmd(config, "roster", "show").stdout, 20, "roster pull")
        assert setting(config, "debounce_seconds") == {"value": 60.0, "source": "config"}
        assert setting(config, "page_notice") == {"value": "", "source": "default"}
        assert verdicts_of_two_taps(config) == ["accepted", "duplicate"]
        cursor = roster_cursor(config)
        assert cursor and cursor.startswith("v")

        # A change of settings only (no card changes): the incremental pull carries it.
        server.cli("device", "settings", "set", "--site", "20401234", "debounce_seconds", "0")
        server.cli("device", "settings", "set", "--device", device_id(config), "page_notice",
                   "Upacara bendera Senin 07:00")
        wait_for(lambda: setting(config, "debounce_seconds")["source"] == "server", 20,
                 "the setting to arrive")
        wait_for(lambda: setting(config, "page_notice")["source"] == "server", 20,
                 "the device's own setting to arrive")
        assert roster_cursor(config) == cursor  # still incremental, nothing else changed
        assert setting(config, "debounce_seconds") == {"value": 0, "source": "server"}
        # In effect without a restart: the same card twice is counted twice.
        assert verdicts_of_two_taps(config) == ["accepted", "accepted"]
        text = edge_cmd(config, "status").stdout
        assert "debounce_seconds 0 (server)" in text and "heartbeat_seconds 1.0 (config)" in text

        # The server goes away, the edge restarts: the settings hold.
        server.stop()
        assert edge.terminate() == 0
        edge = EdgeProcess(config)
        edge.wait_ready()
        assert setting(config, "debounce_seconds") == {"value": 0, "source": "server"}
        assert verdicts_of_two_taps(config) == ["accepted", "accepted"]
        shown = json.loads(edge_cmd(config, "check-config").stdout)
        assert shown["recorder"]["debounce_seconds"] == 60.0
        assert shown["settings"]["debounce_seconds"] == {"value": 0, "source": "server"}
        assert shown["settings"]["page_notice"]["value"] == "Upacara bendera Senin 07:00"

        # Back online; unsetting at the device goes back to the next level (here: none).
        server.start()
        server.cli("device", "settings", "unset", "--device", device_id(config), "page_notice")
        wait_for(lambda: setting(config, "page_notice")["source"] == "default", 20,
                 "the unset to arrive")
        server.cli("device", "settings", "unset", "--site", "20401234", "debounce_seconds")
        wait_for(lambda: setting(config, "debounce_seconds")["source"] == "config", 20,
                 "the site's unset to arrive")
        assert verdicts_of_two_taps(config)[1] == "duplicate"
    finally:
        edge.terminate()


def test_a_bad_value_from_the_server_is_logged_and_ignored(tmp_path, server):
    """A server whose database holds values this edge does not accept (say, a newer
    release with a wider range): the edge keeps recording and uses its own value."""
    config = sync_config(tmp_path, server.url)
    enrol(config, server)
    server.cli("device", "settings", "set", "--site", "20401234", "page_days", "3")
    server.cli("device", "settings", "set", "--site", "20401234", "debounce_seconds", "0")
    server.cli("device", "settings", "set", "--site", "20405678", "heartbeat_seconds", "10")
    report = json.loads(edge_cmd(config, "sync", "--json").stdout)  # no service running
    assert report["error"] is None
    assert json.loads(report["settings"]) == {"debounce_seconds": 0, "page_days": 3}
    assert setting_offline(config, "debounce_seconds") == {"value": 0, "source": "server"}
    # Another site's settings never reach this device.
    assert setting_offline(config, "heartbeat_seconds") == {"value": 1.0, "source": "config"}
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        assert setting(config, "debounce_seconds") == {"value": 0, "source": "server"}
        database = server.database_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(database)
        with conn:  # what the API would refuse, written behind its back
            conn.execute("UPDATE site_settings SET value = '99999' "
                         "WHERE key = 'debounce_seconds'")
            conn.execute("INSERT INTO site_settings (site_code, key, value, updated_at, "
                         "updated_by) VALUES ('20401234', 'page_days', '\"many\"', "
                         "'2026-11-24 00:00:00.000000', 'test') ON CONFLICT DO UPDATE "
                         "SET value = excluded.value")
        conn.close()
        wait_for(lambda: setting(config, "debounce_seconds")["source"] == "config", 20,
                 "the bad value to be ignored")
        assert setting(config, "page_days") == {"value": 1, "source": "default"}
        assert edge.proc.poll() is None
        assert verdicts_of_two_taps(config) == ["accepted", "duplicate"]
        log = edge.output()
        assert "remote setting ignored: debounce_seconds: must be a whole number from 0 to " \
               "3600, got 99999" in log
        assert "remote setting ignored: page_days" in log
        # The taps still reach the server.
        wait_for(lambda: status(config)["backlog"] == 0, 20, "the taps to be sent")
    finally:
        edge.terminate()


def setting_offline(config: Path, key: str) -> dict:
    """The setting as ``check-config`` reads it from the database (no service running)."""
    return json.loads(edge_cmd(config, "check-config").stdout)["settings"][key]


# -- the operator's page -------------------------------------------------------------------------
def test_operator_page_shows_the_notice_and_the_coming_days(tmp_path):
    from edge.web import create_app
    from tests.edge_web.conftest import login, make_config

    config = make_config(tmp_path)
    db = open_database(config.database_path)
    operators.add_operator(db, "guru", "Rahasia-Sekolah-2026")
    today = date.today()
    plans = [{"date": (today + timedelta(days=n)).isoformat(), "workday": n != 2,
              "start": "07:30" if n != 2 else None, "end": "14:00" if n != 2 else None,
              "grace_minutes": 5, "reason": "holiday: Hari Guru" if n == 2 else ""}
             for n in range(7)]
    daily.store_plans(db, plans, today)
    remote_settings.store_server_settings(db, {"page_notice": "Rapat guru\npukul 13:00",
                                               "page_days": 3})
    db.close()
    client = create_app(config).test_client()
    assert login(client).status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Pengumuman:" in page and "Rapat guru\npukul 13:00" in page
    assert "Jadwal hari berikutnya" in page
    assert f'data-date="{(today + timedelta(days=1)).isoformat()}"' in page
    assert "Hari libur: Hari Guru" in page  # day 2
    assert f'data-date="{(today + timedelta(days=3)).isoformat()}"' not in page
    # Without server settings: no notice and today only.
    db = open_database(config.database_path)
    remote_settings.store_server_settings(db, {})
    db.close()
    page = client.get("/").get_data(as_text=True)
    assert "Pengumuman:" not in page and "Jadwal hari berikutnya" not in page


@pytest.mark.parametrize("raw, kept, problem", [
    ({"debounce_seconds": 30}, {"debounce_seconds": 30}, None),
    ({"debounce_seconds": -1}, {}, "debounce_seconds: must be a whole number"),
    ({"heartbeat_seconds": "60"}, {}, "heartbeat_seconds: must be"),
    ({"volume": 3, "page_days": 2}, {"page_days": 2}, "volume: unknown setting"),
    (["debounce_seconds", 30], None, "settings must be an object"),
    (None, None, "settings must be an object"),
])
def test_edge_checks_what_it_receives(tmp_path, raw, kept, problem):
    db = open_database(tmp_path / "edge.db")
    try:
        remote_settings.store_server_settings(db, {"roster_seconds": 600})
        values, problems, changed = remote_settings.store_server_settings(db, raw)
        if kept is None:  # not an object: the stored settings stay
            assert not changed and values == {"roster_seconds": 600}
        else:
            assert values == kept and changed
        assert remote_settings.load_server_settings(db) == values
        assert (problem is None and not problems) or any(problem in p for p in problems)
    finally:
        db.close()
