"""The systemd unit of the edge: systemd accepts it, its hardening leaves the service
its devices and sockets, and its watchdog fits the pings the service sends."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.edge_process import write_config
from tests.provisioning.edge_install import SHIPPED, run_install
from tests.syspart import need

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
VENV_EDGE = Path(sys.executable).parent / "attendance-edge"
UNIT_NAME = "attendance-edge.service"


def unit_settings(text: str) -> dict[str, list[str]]:
    """``Key`` -> every value given in the [Service] section (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def seconds(value: str) -> float:
    """A systemd time span such as ``30``, ``30s``, ``1min 30s`` in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


@pytest.fixture
def installed_unit(tmp_path) -> Path:
    """The unit as the installer writes it, with ExecStart at this checkout's venv so
    systemd-analyze can resolve it."""
    need(os.access(SYSTEMD_ANALYZE, os.X_OK), "systemd-analyze (apt install systemd)")
    assert VENV_EDGE.exists(), f"{VENV_EDGE} missing: run scripts/setup"
    root = tmp_path / "root"
    run_install(root, "--reader", "pcsc", "--name", "g", "--venv", str(Path(sys.executable).parent.parent),
                "--data-dir", "/srv/attendance")
    unit = root / "etc/systemd/system" / UNIT_NAME
    assert f"ExecStart={VENV_EDGE} --config" in unit.read_text()
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


def test_systemd_analyze_verify(installed_unit, tmp_path):
    result = verify(installed_unit)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr
    # The same check notices a mistake (so it is not passing by accident).
    broken = tmp_path / "bad" / UNIT_NAME
    broken.parent.mkdir()
    broken.write_text(installed_unit.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes"))
    result = verify(broken)
    assert "Unknown key 'ProtectHomes'" in result.stderr


def test_shipped_unit_only_lacks_its_venv(tmp_path):
    """The shipped unit (default paths) has nothing wrong but the missing /opt venv."""
    need(os.access(SYSTEMD_ANALYZE, os.X_OK), "systemd-analyze (apt install systemd)")
    result = verify(SHIPPED / UNIT_NAME)
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert problems == [f"{UNIT_NAME}: Command /opt/attendance-edge/venv/bin/attendance-edge "
                        "is not executable: No such file or directory"], result.stderr


def test_hardening_exposure(installed_unit):
    result = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", str(installed_unit)],
                            capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert level, result.stdout + result.stderr
    assert float(level.group(1)) <= 4.0, result.stdout


def test_unit_keeps_what_the_service_needs():
    """The hardening must leave the GPIO chips, the USB readers, pcscd's socket and the
    data folder reachable."""
    s = unit_settings((SHIPPED / UNIT_NAME).read_text())
    assert s["Service.Type"] == ["notify"] and s["Service.NotifyAccess"] == ["main"]
    assert s["Service.Restart"] == ["always"] and seconds(s["Service.RestartSec"][0]) > 0
    assert s["Service.User"] == ["attendance"]
    assert set(s["Service.SupplementaryGroups"][0].split()) == {"gpio", "plugdev", "dialout"}
    assert s["Service.ProtectSystem"] == ["strict"]
    assert s["Service.ReadWritePaths"] == ["/var/lib/attendance-edge"]
    assert s["Service.NoNewPrivileges"] == ["yes"] and s["Service.PrivateTmp"] == ["yes"]
    assert s["Service.ProtectHome"] == ["yes"]
    # /dev stays the host's: PrivateDevices would hide /dev/gpiochip0 and /dev/bus/usb.
    assert "Service.PrivateDevices" not in s
    allowed = {v.split()[0]: v.split()[1] for v in s["Service.DeviceAllow"]}
    assert allowed["char-gpiochip"] == "rw" and allowed["/dev/gpiomem"] == "rw"
    assert allowed["char-usb_device"] == "rw" and allowed["char-ttyAMA"] == "rw"
    # pcscd's socket (/run/pcscd/pcscd.comm) and the control socket are AF_UNIX;
    # connecting to a socket on a read-only mount is allowed.
    assert "AF_UNIX" in s["Service.RestrictAddressFamilies"][0].split()
    assert "Service.InaccessiblePaths" not in s and "Service.TemporaryFileSystem" not in s
    # lgpio writes its pipes in LG_WD: it must be writable (the private /tmp).
    assert "LG_WD=/tmp" in s["Service.Environment"]


def test_watchdog_fits_the_service_pings():
    """The service pings at WATCHDOG_USEC/2 or every 5 s, whichever is sooner."""
    from edge.notify import Notifier

    s = unit_settings((SHIPPED / UNIT_NAME).read_text())
    watchdog = seconds(s["Service.WatchdogSec"][0])
    notifier = Notifier({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": str(int(watchdog * 1e6))})
    interval = min(notifier.watchdog_interval or 5.0, 5.0)  # as in EdgeService.run
    assert interval <= watchdog / 2
    # Start-up (opening readers, salvaging a damaged database) must fit TimeoutStartSec.
    assert seconds(s["Service.TimeoutStartSec"][0]) >= 60


def test_notifications_come_from_the_main_process(tmp_path):
    """NotifyAccess=main: systemd only accepts READY/WATCHDOG from the process it started,
    so they must come from the ExecStart process itself (the console script), not a child."""
    assert VENV_EDGE.exists(), f"{VENV_EDGE} missing: run scripts/setup"
    watchdog_usec = int(seconds(unit_settings((SHIPPED / UNIT_NAME).read_text())
                                ["Service.WatchdogSec"][0]) * 1e6)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(30)
    config = write_config(tmp_path)
    log = open(tmp_path / "edge.log", "wb")
    proc = subprocess.Popen([str(VENV_EDGE), "--config", str(config), "run"], stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "NOTIFY_SOCKET": str(path),
                                 "WATCHDOG_USEC": str(watchdog_usec), "WATCHDOG_PID": ""})
    try:
        received = []
        while len([m for m, _, _ in received if m == "WATCHDOG=1"]) < 2:
            data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
            pid = next(struct.unpack("iII", d[:12])[0] for level, kind, d in ancdata
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
            received.append((data.decode(), pid, time.monotonic()))
        assert received[0][0].startswith("READY=1")
        assert {pid for _, pid, _ in received} == {proc.pid}
        pings = [at for message, _, at in received if message == "WATCHDOG=1"]
        assert pings[1] - pings[0] <= watchdog_usec / 2e6
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        log.close()
        sock.close()


def test_socket_on_read_only_mount_is_reachable(tmp_path):
    """ProtectSystem=strict mounts /run read-only for the service; pcscd's socket
    /run/pcscd/pcscd.comm must still accept it. The same read-only bind mount systemd
    makes, in a mount namespace of its own."""
    unshare = shutil.which("unshare")
    need(unshare is not None and os.geteuid() == 0,
         "unshare (util-linux) and root for a private read-only mount")
    folder = tmp_path / "pcscd"
    folder.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(folder / "pcscd.comm"))
    server.listen(1)
    client = ("import socket; c = socket.socket(socket.AF_UNIX); "
              f"c.connect({str(folder / 'pcscd.comm')!r}); c.sendall(b'hello'); c.close()")
    script = (f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
              f"! touch {folder}/written 2>/dev/null && {shlex.quote(sys.executable)} -c {shlex.quote(client)}")
    try:
        result = subprocess.run([unshare, "-m", "sh", "-c", script], capture_output=True,
                                text=True, timeout=30)
        need(result.returncode == 0 or "Operation not permitted" not in result.stderr,
             f"mount namespaces are not allowed here: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        server.settimeout(5)
        conn, _ = server.accept()
        assert conn.recv(16) == b"hello"
        conn.close()
        assert not (folder / "written").exists()
    finally:
        server.close()
