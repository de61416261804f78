"""Replacing a broken Pi (docs/OPERATIONS.md), with a real server and real edge processes.

The "old" board records taps (some while the server cannot be reached), its
data directory is copied to the "new" board, which enrols with a replacement
code and pushes what the old one never sent: every tap on the server exactly
once, the sequence continuing, nothing reported missing.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.edge_process import EdgeProcess, backlog, edge_cmd, edge_taps, sync_config
from tests.fault_proxy import FaultProxy
from tests.sync_env import CLAIM_CODE, CentralServer, assert_exactly_once


SITE = "20401234"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each test enrols devices of its own."""
    central = CentralServer(tmp_path_factory.mktemp("server"))
    central.setup_site()
    central.start()
    yield central
    central.stop()


def enrol(config: Path, url: str, code: str, *extra: str) -> str:
    return edge_cmd(config, "enroll", "--server", url, "--code", code, *extra).stdout


def replace_code(server: CentralServer, device_id: str) -> str:
    out = server.cli("device", "replace", device_id).stdout
    return CLAIM_CODE.search(out).group(0)


def device_id_of(config: Path) -> str:
    return json.loads((config.parent / "data" / "device.json").read_text())["device_id"]


def token_of(config: Path) -> str:
    return (config.parent / "data" / "device.token").read_text().strip()


def device_state(server: CentralServer, device_id: str) -> dict:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT highest_seq, missing_seq, hardware_id FROM "
                                       "devices WHERE device_id = :d"), {"d": device_id}).one()
    finally:
        engine.dispose()
    missing = row.missing_seq if not isinstance(row.missing_seq, str) else json.loads(row.missing_seq)
    return {"highest_seq": row.highest_seq, "missing_seq": missing or [],
            "hardware_id": row.hardware_id}


def tap_all(edge_config: Path, uids: list[str]) -> None:
    for uid in uids:
        assert edge_cmd(edge_config, "tap", uid).returncode == 0


def wait_backlog(config: Path, value: int, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if backlog(config) == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"backlog never reached {value} (now {backlog(config)})")


def copy_data_dir(old: Path, new: Path) -> None:
    """What the runbook says: with the service stopped, the whole data directory."""
    new.mkdir(parents=True, exist_ok=True)
    for name in ("edge.db", "edge.db-wal", "device.json", "device.token"):
        if (old / name).exists():
            shutil.copy2(old / name, new / name)


def stored_of(server: CentralServer, device_id: str) -> list[dict]:
    return [t for t in server.stored_taps() if t["device_id"] == device_id]


def test_new_board_pushes_the_copied_outbox(tmp_path, server):
    with FaultProxy(("127.0.0.1", server.port), mode="pass") as proxy:
        old = sync_config(tmp_path / "old", proxy.url, timeout=3)
        enrol(old, server.url, server.claim_code())
        device_id = device_id_of(old)
        edge = EdgeProcess(old)
        try:
            edge.wait_ready()
            tap_all(old, ["04A1B2C3D4E5F6", "04A1B2C3D4E5F7"])
            wait_backlog(old, 0)
            proxy.mode = "drop_before_request"  # the network is down for days
            tap_all(old, [f"04C0FFEE{i:06X}" for i in range(6)])
            assert backlog(old) == 6
        finally:
            assert edge.terminate() == 0
        # The old board dies; its SD card still reads: the technician copies the data dir.
        old_token = token_of(old)
        recorded = edge_taps(old)
        assert [t["seq"] for t in recorded] == list(range(1, 9))
        new = sync_config(tmp_path / "new", server.url, timeout=3)
        copy_data_dir(old.parent / "data", new.parent / "data")
        out = enrol(new, server.url, replace_code(server, device_id), "--force")
        assert f"this board now is device {device_id} (replacement)" in out
        assert "the next tap gets seq 9" in out
        assert device_id_of(new) == device_id and token_of(new) != old_token
        assert server.heartbeat_status(old_token) == 401
        assert server.heartbeat_status(token_of(new)) == 200

        sync = edge_cmd(new, "sync")
        assert "accepted 6, duplicate 0, conflict 0" in sync.stdout, sync.stdout
        edge = EdgeProcess(new)
        try:
            edge.wait_ready()
            tap_all(new, ["04A1B2C3D4E5F6"])
            wait_backlog(new, 0)
        finally:
            assert edge.terminate() == 0
    assert_exactly_once(server, [t["event_id"] for t in recorded])
    stored = stored_of(server, device_id)
    assert sorted(t["seq"] for t in stored) == list(range(1, 10))
    state = device_state(server, device_id)
    assert state["highest_seq"] == 9 and state["missing_seq"] == []
    assert state["hardware_id"] != ""  # the new board's id, from enrolment


def test_stale_copy_duplicates_and_no_reused_seq(tmp_path, server):
    """A copy taken days before the board died: what the old board sent since is a duplicate."""
    old = sync_config(tmp_path / "old", server.url, timeout=3)
    enrol(old, server.url, server.claim_code())
    device_id = device_id_of(old)
    with FaultProxy(("127.0.0.1", server.port), mode="drop_before_request") as proxy:
        # Record 3 taps while offline, copy (service stopped), then the old board syncs
        # them and 2 more before it dies.
        old_cfg = sync_config(tmp_path / "old", proxy.url, timeout=3)
        edge = EdgeProcess(old_cfg)
        try:
            edge.wait_ready()
            tap_all(old_cfg, ["04000001", "04000002", "04000003"])
        finally:
            edge.terminate()
        copy_data_dir(old.parent / "data", tmp_path / "copy")
        proxy.mode = "pass"
        edge = EdgeProcess(old_cfg)
        try:
            edge.wait_ready()
            tap_all(old_cfg, ["04000004", "04000005"])
            wait_backlog(old_cfg, 0)
        finally:
            edge.terminate()
    assert device_state(server, device_id)["highest_seq"] == 5
    new = sync_config(tmp_path / "new", server.url, timeout=3)
    copy_data_dir(tmp_path / "copy", new.parent / "data")
    out = enrol(new, server.url, replace_code(server, device_id), "--force")
    assert "the next tap gets seq 6" in out
    sync = edge_cmd(new, "sync")
    assert "accepted 0, duplicate 3, conflict 0" in sync.stdout, sync.stdout
    edge = EdgeProcess(new)
    try:
        edge.wait_ready()
        tap_all(new, ["04000006"])
        wait_backlog(new, 0)
    finally:
        edge.terminate()
    assert_exactly_once(server, [t["event_id"] for t in edge_taps(new)])
    assert sorted(t["seq"] for t in stored_of(server, device_id)) == [1, 2, 3, 4, 5, 6]
    assert device_state(server, device_id)["missing_seq"] == []


def test_fresh_board_continues_the_sequence(tmp_path, server):
    old = sync_config(tmp_path / "old", server.url, timeout=3)
    enrol(old, server.url, server.claim_code())
    device_id = device_id_of(old)
    edge = EdgeProcess(old)
    try:
        edge.wait_ready()
        tap_all(old, ["04000001", "04000002", "04000003", "04000004"])
        wait_backlog(old, 0)
    finally:
        edge.terminate()
    # The old SD card is dead: a fresh board, empty data directory.
    new = sync_config(tmp_path / "new", server.url, timeout=3)
    out = enrol(new, server.url, replace_code(server, device_id))
    assert "the next tap gets seq 5" in out
    edge = EdgeProcess(new)
    try:
        edge.wait_ready()
        tap_all(new, ["04000001", "04000009"])
        wait_backlog(new, 0)
    finally:
        edge.terminate()
    assert [t["seq"] for t in edge_taps(new)] == [5, 6]
    stored = stored_of(server, device_id)
    assert sorted(t["seq"] for t in stored) == [1, 2, 3, 4, 5, 6]
    assert len({t["event_id"] for t in stored}) == 6
    state = device_state(server, device_id)
    assert state["highest_seq"] == 6 and state["missing_seq"] == []


def test_board_with_foreign_taps_is_refused(tmp_path, server):
    """Test taps recorded before enrolment would reuse the device's seq: refused, code kept."""
    old = sync_config(tmp_path / "old", server.url, timeout=3)
    enrol(old, server.url, server.claim_code())
    device_id = device_id_of(old)
    new = sync_config(tmp_path / "new", server.url, timeout=3)
    edge = EdgeProcess(new)  # the technician tried the reader before enrolling
    try:
        edge.wait_ready()
        tap_all(new, ["04000001"])
    finally:
        edge.terminate()
    code = replace_code(server, device_id)
    refused = edge_cmd(new, "enroll", "--server", server.url, "--code", code, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("attendance-edge: error: enrolment refused: ")
    assert "HTTP 409" in refused.stderr and "move its data directory aside" in refused.stderr
    assert not (new.parent / "data" / "device.json").exists()
    assert server.heartbeat_status(token_of(old)) == 200  # nothing changed on the server
    # As the runbook says: move the data directory aside, enrol again with the same code.
    (new.parent / "data").rename(new.parent / "data.aside")
    assert f"device {device_id}" in enrol(new, server.url, code)


def test_replace_unknown_or_revoked_device(server):
    unknown = server.cli("device", "replace", "dev_00000000deadbeef", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr == ("attendance-server: error: no device 'dev_00000000deadbeef' "
                              "(attendance-server device list)\n")
    enrolled = requests.post(server.url + "/api/v1/devices/enroll", timeout=10, json={
        "claim_code": server.claim_code(), "hardware_id": "pi-x"}).json()
    server.cli("device", "revoke", enrolled["device_id"])
    revoked = server.cli("device", "replace", enrolled["device_id"], check=False)
    assert revoked.returncode == 1
    assert revoked.stderr.startswith(f"attendance-server: error: device "
                                     f"{enrolled['device_id']} was revoked at ")
    assert "device add --site 20401234" in revoked.stderr


def test_copy_with_sqlite_backup_is_complete(tmp_path, server):
    """The runbook's other way to copy (``sqlite3 edge.db ".backup copy.db"``) while running."""
    old = sync_config(tmp_path / "old", "http://127.0.0.1:9", timeout=3)  # never reaches a server
    enrol(old, server.url, server.claim_code())
    edge = EdgeProcess(old)
    try:
        edge.wait_ready()
        tap_all(old, ["04000001", "04000002", "04000003"])
        new_data = tmp_path / "new" / "data"
        new_data.mkdir(parents=True)
        source = sqlite3.connect(old.parent / "data" / "edge.db")
        target = sqlite3.connect(new_data / "edge.db")
        with target:
            source.backup(target)
        source.close()
        target.close()
    finally:
        edge.terminate()
    new = sync_config(tmp_path / "new", server.url, timeout=3)
    out = enrol(new, server.url, replace_code(server, device_id_of(old)))
    assert "the next tap gets seq 4" in out
    assert "accepted 3, duplicate 0, conflict 0" in edge_cmd(new, "sync").stdout
