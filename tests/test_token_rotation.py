"""Rotating a device token: the real CLI against a real server, with the reply cut."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from edge import tokens
from edge.sync import SyncClient, Unauthorized
from tests.edge_process import EdgeProcess, edge_cmd, sync_config
from tests.fault_proxy import FaultProxy
from tests.sync_env import CentralServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each test enrols devices of its own."""
    central = CentralServer(tmp_path_factory.mktemp("server"))
    central.setup_site()
    central.start()
    yield central
    central.stop()


def files(config: Path) -> tuple[Path, Path]:
    data = config.parent / "data"
    return data / "device.token", data / "device.token.pending"


def enrolled(tmp_path: Path, server: CentralServer, url: str) -> Path:
    config = sync_config(tmp_path, url, timeout=3)
    edge_cmd(config, "enroll", "--server", server.url, "--code", server.claim_code())
    return config


def test_rotate_token(tmp_path, server):
    config = enrolled(tmp_path, server, server.url)
    token_file, pending = files(config)
    old = token_file.read_text().strip()
    out = edge_cmd(config, "rotate-token")
    assert out.stdout.startswith("device dev_") and "the old one is refused" in out.stdout
    new = token_file.read_text().strip()
    assert new != old and len(new) >= 43 and not pending.exists()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert server.heartbeat_status(old) == 401 and server.heartbeat_status(new) == 200
    assert "ERROR" not in edge_cmd(config, "sync").stdout
    assert old not in (server.workdir / "server.log").read_text()


@pytest.mark.parametrize("fault, kept", [
    ("drop_after_request", False),   # the server switched; the reply never came
    ("drop_mid_reply", False),
    ("drop_before_request", True),   # the server never heard of it
    ("reset", True),
])
def test_rotation_with_the_reply_cut_settles_at_the_next_sync(tmp_path, server, fault, kept):
    with FaultProxy(("127.0.0.1", server.port), mode="pass") as proxy:
        config = enrolled(tmp_path, server, proxy.url)
        token_file, pending = files(config)
        old = token_file.read_text().strip()
        proxy.mode = fault
        failed = edge_cmd(config, "rotate-token", check=False)
        assert failed.returncode == 1
        assert failed.stderr.startswith("attendance-edge: error: token not rotated: ")
        assert "the next sync finds out which token" in failed.stderr
        assert proxy.stats[fault] >= 1
        assert pending.exists() and stat.S_IMODE(pending.stat().st_mode) == 0o600
        candidate = pending.read_text().strip()
        assert token_file.read_text().strip() == old
        assert server.heartbeat_status(candidate) == (401 if kept else 200)
        proxy.mode = "pass"
        sync = edge_cmd(config, "sync")
        assert "ERROR" not in sync.stdout and "heartbeat ok" in sync.stdout
    assert not pending.exists()
    now = token_file.read_text().strip()
    assert now == (old if kept else candidate)
    assert server.heartbeat_status(now) == 200
    assert server.heartbeat_status(candidate if kept else old) == 401


def test_running_service_follows_a_rotation(tmp_path, server):
    config = enrolled(tmp_path, server, server.url)
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        edge_cmd(config, "rotate-token")
        assert edge_cmd(config, "tap", "04A1B2C3D4E5F6").returncode == 0
        sync = edge_cmd(config, "sync", "--json")  # through the running service
        report = json.loads(sync.stdout)
        assert report["error"] is None and report["heartbeat"] is True
        status = json.loads(edge_cmd(config, "status", "--json").stdout)
        assert status["backlog"] == 0
    finally:
        assert edge.terminate() == 0
    device_id = json.loads((config.parent / "data" / "device.json").read_text())["device_id"]
    assert len([t for t in server.stored_taps() if t["device_id"] == device_id]) == 1


def test_revoked_device_cannot_rotate(tmp_path, server):
    config = enrolled(tmp_path, server, server.url)
    token_file, pending = files(config)
    device_id = json.loads((config.parent / "data" / "device.json").read_text())["device_id"]
    server.cli("device", "revoke", device_id)
    before = token_file.read_text()
    out = edge_cmd(config, "rotate-token", check=False)
    assert out.returncode == 1 and "HTTP 401" in out.stderr and "revoked" in out.stderr
    assert not pending.exists() and token_file.read_text() == before


def test_rotate_needs_an_enrolment(tmp_path):
    config = sync_config(tmp_path, "http://127.0.0.1:9", timeout=3)
    out = edge_cmd(config, "rotate-token", check=False)
    assert out.returncode == 1
    assert out.stderr == ("attendance-edge: error: this device is not enrolled "
                          "(attendance-edge enroll --server URL --code CODE)\n")


def test_settle_keeps_both_when_both_are_refused(tmp_path, server):
    """Revoked while a rotation was pending: nothing is deleted, the caller hears 401."""
    config = enrolled(tmp_path, server, server.url)
    token_file, pending = files(config)
    tokens.write_secret(pending, "p" * 43)
    device_id = json.loads((config.parent / "data" / "device.json").read_text())["device_id"]
    server.cli("device", "revoke", device_id)
    client = SyncClient(server.url, token=token_file.read_text().strip())
    try:
        with pytest.raises(Unauthorized, match="refuses both"):
            tokens.settle(client, token_file)
    finally:
        client.close()
    assert pending.read_text().strip() == "p" * 43


def test_settle_is_skipped_while_a_rotation_holds_the_lock(tmp_path):
    token_file = tmp_path / "device.token"
    tokens.write_secret(token_file, "t" * 43)
    tokens.write_secret(tokens.pending_path(token_file), "p" * 43)
    client = SyncClient("http://127.0.0.1:9", token="t" * 43)
    with tokens.token_lock(token_file):
        assert tokens.settle(client, token_file) == tokens.BUSY
    assert client.token == "t" * 43 and tokens.pending_path(token_file).exists()


def age(path: Path, days: float) -> None:
    """Make ``path`` look ``days`` old (its modification time)."""
    then = time.time() - days * 86400
    os.utime(path, (then, then))


@pytest.mark.parametrize("max_age, file_age, rotated", [
    (None, 91, True),    # the default: 90 days
    (None, 89, False),
    (30, 31, True),
    (0, 1000, False),    # 0: only by hand
])
def test_the_service_rotates_an_old_token_by_itself(tmp_path, server, max_age, file_age,
                                                     rotated):
    extra = "" if max_age is None else f"token_max_age_days = {max_age}\n"
    config = sync_config(tmp_path, server.url, timeout=3, extra=extra)
    edge_cmd(config, "enroll", "--server", server.url, "--code", server.claim_code())
    token_file, pending = files(config)
    old = token_file.read_text().strip()
    age(token_file, file_age)

    assert "ERROR" not in edge_cmd(config, "sync").stdout

    now = token_file.read_text().strip()
    assert (now != old) is rotated and not pending.exists()
    assert server.heartbeat_status(now) == 200
    assert server.heartbeat_status(old) == (401 if rotated else 200)
    if rotated:  # a young token again: the next round leaves it
        assert time.time() - token_file.stat().st_mtime < 60
        edge_cmd(config, "sync")
        assert token_file.read_text().strip() == now


def test_an_old_token_the_server_will_not_rotate_is_tried_again_later(tmp_path, server):
    # The rotation's request is cut before the server hears of it: the round goes on with
    # the old token, and the next rounds do not try again before retry_seconds (an hour).
    with FaultProxy(("127.0.0.1", server.port), mode="pass") as proxy:
        config = enrolled(tmp_path, server, proxy.url)
        token_file, pending = files(config)
        old = token_file.read_text().strip()
        age(token_file, 100)
        client = SyncClient(proxy.url, token=old, timeout=3)
        rotation = tokens.AutoRotation(client, token_file, 90, retry_seconds=1)
        proxy.mode = "drop_before_request"
        assert rotation() is False
        assert not rotation.due()  # not again at every round
        proxy.mode = "pass"
        tokens.settle(client, token_file)
    assert token_file.read_text().strip() == old and not pending.exists()
    assert server.heartbeat_status(old) == 200
    time.sleep(1.1)
    rotation.client = SyncClient(server.url, token=old, timeout=3)
    assert rotation.due() and rotation() is True
    assert token_file.read_text().strip() != old and server.heartbeat_status(old) == 401
