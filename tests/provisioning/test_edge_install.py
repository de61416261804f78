"""provisioning/edge/install against a scratch root: every file it writes, idempotence,
kept edits, switching readers, and clear errors for bad options."""

from __future__ import annotations

import configparser
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from edge.config import load_config
from edge.doctor import BLACKLIST_FILE, BLACKLIST_LINES, check_udev_rules
from tests.provisioning.edge_install import SHIPPED, actions, files, run_install, snapshot

SERVER = "https://absensi.example.go.id"
CODE = "KLAIM-7Q2X-99"
FULL = ["--reader", "pcsc", "--server", SERVER, "--claim-code", CODE, "--name", "SMPN 1 Gerbang",
        "--ntp", "ntp.kab-contoh.go.id", "--ntp", "10.0.0.1", "--log-to-ram",
        "--timezone", "Asia/Makassar"]

UNIT = "/etc/systemd/system/attendance-edge.service"
UDEV = "/etc/udev/rules.d/60-attendance-nfc-readers.rules"
TOML = "/etc/attendance/edge.toml"
STAMP = "/etc/attendance/.edge.toml.installed"
TIMESYNCD = "/etc/systemd/timesyncd.conf.d/50-attendance.conf"
JOURNALD = "/etc/systemd/journald.conf.d/50-attendance-volatile.conf"
WRAPPER = "/usr/local/bin/attendance-edge"


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


def test_every_file_written(root):
    result = run_install(root, *FULL)
    assert files(root) == {
        UNIT: 0o644,
        UDEV: 0o644,
        BLACKLIST_FILE: 0o644,
        TOML: 0o640,
        STAMP: 0o644,
        "/etc/localtime": -1,
        "/etc/timezone": 0o644,
        TIMESYNCD: 0o644,
        JOURNALD: 0o644,
        WRAPPER: 0o755,
    }
    data = root / "var/lib/attendance-edge"
    assert data.is_dir() and (data.stat().st_mode & 0o7777) == 0o750

    # The unit is the shipped one: the default paths need no change.
    assert (root / UNIT.lstrip("/")).read_text() == (SHIPPED / "attendance-edge.service").read_text()
    assert (root / UDEV.lstrip("/")).read_text() == (SHIPPED / "60-attendance-nfc-readers.rules").read_text()
    blacklist = (root / BLACKLIST_FILE.lstrip("/")).read_text().splitlines()
    assert [line for line in blacklist if not line.startswith("#")] == list(BLACKLIST_LINES)

    # The configuration, read by the edge's own loader.
    cfg = load_config(root / TOML.lstrip("/"), environ={})
    assert cfg.device.name == "SMPN 1 Gerbang"
    assert cfg.device.data_dir == "/var/lib/attendance-edge"
    assert [(r.name, r.driver, r.match) for r in cfg.readers] == [("reader", "pcsc", "")]
    assert cfg.sync.server_url == SERVER
    assert cfg.feedback.kind == "auto" and cfg.clock.assume_synced is False

    assert (root / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/Asia/Makassar")
    assert (root / "etc/timezone").read_text() == "Asia/Makassar\n"
    timesyncd = configparser.ConfigParser()
    timesyncd.read_string((root / TIMESYNCD.lstrip("/")).read_text())
    assert dict(timesyncd["Time"]) == {"ntp": "ntp.kab-contoh.go.id 10.0.0.1"}
    journald = configparser.ConfigParser()
    journald.optionxform = str
    journald.read_string((root / JOURNALD.lstrip("/")).read_text())
    assert journald["Journal"]["Storage"] == "volatile"
    wrapper = (root / WRAPPER.lstrip("/")).read_text()
    assert wrapper.startswith("#!/bin/sh\n")
    assert "runuser -u attendance -- /opt/attendance-edge/venv/bin/attendance-edge" in wrapper
    assert subprocess.run(["sh", "-n", str(root / WRAPPER.lstrip("/"))]).returncode == 0

    # The doctor finds the udev rule file it looks for.
    assert check_udev_rules(rules_dir=root / "etc/udev/rules.d").ok

    # System commands are printed, not run; the claim code is in none of them.
    planned = actions(result.stdout)
    assert planned[0].startswith("apt-get install -y --no-install-recommends pcscd libccid")
    for expected in ("useradd --system --user-group --home-dir /var/lib/attendance-edge",
                     "usermod --append --groups gpio,plugdev,dialout attendance",
                     "python3 -m venv --system-site-packages /opt/attendance-edge/venv",
                     "chown attendance:attendance /var/lib/attendance-edge",
                     "chown root:attendance /etc/attendance/edge.toml",
                     "systemctl enable pcscd.socket",
                     "systemctl restart systemd-timesyncd.service",
                     "systemctl restart systemd-journald.service",
                     "modprobe -r pn533_usb pn533 nfc",
                     "udevadm control --reload-rules",
                     "systemctl daemon-reload",
                     "runuser -u attendance -- /opt/attendance-edge/venv/bin/attendance-edge "
                     f"--config /etc/attendance/edge.toml enroll --server {SERVER}",
                     "systemctl enable attendance-edge.service",
                     "systemctl start attendance-edge.service"):
        assert any(a.startswith(expected) for a in planned), (expected, planned)
    assert CODE not in result.stdout + result.stderr


def test_second_run_changes_nothing(root):
    run_install(root, *FULL)
    before = snapshot(root)
    again = run_install(root, *FULL)
    assert snapshot(root) == before  # contents, modes and mtimes
    changes = [line for line in again.stdout.splitlines()
               if line.split()[:1] in (["created"], ["updated"], ["removed"], ["mode"])]
    assert changes == []
    assert "done: no file changed" in again.stdout
    # Nothing a second run would restart.
    assert not any(a.startswith(("systemctl daemon-reload", "systemctl restart", "udevadm",
                                 "modprobe")) for a in actions(again.stdout))


def test_dry_run_writes_nothing(root):
    result = run_install(root, *FULL, "--dry-run")
    assert not root.exists()
    assert f"created    {UNIT}" in result.stdout and "would run  systemctl daemon-reload" in result.stdout


@pytest.mark.parametrize("reader, blacklisted, driver, path", [
    (["--reader", "pcsc"], True, "pcsc", "usb"),
    (["--reader", "nfc"], True, "nfc", "usb"),
    (["--reader", "nfc", "--nfc-path", "usb:054c:06c3"], True, "nfc", "usb:054c:06c3"),
    (["--reader", "nfc", "--nfc-path", "tty:AMA0:pn532"], False, "nfc", "tty:AMA0:pn532"),
    (["--reader", "sim"], False, "sim", "usb"),
])
def test_switching_readers(root, reader, blacklisted, driver, path):
    """The blacklist is there for a USB reader and goes away otherwise; an unedited
    edge.toml follows the new options."""
    first = ["--reader", "sim"] if blacklisted else ["--reader", "pcsc"]
    run_install(root, *first, "--name", "g")
    assert (root / BLACKLIST_FILE.lstrip("/")).exists() is not blacklisted
    result = run_install(root, *reader, "--name", "g")
    assert (root / BLACKLIST_FILE.lstrip("/")).exists() is blacklisted
    assert (f"removed    {BLACKLIST_FILE}" in result.stdout) is not blacklisted
    assert f"updated    {TOML}" in result.stdout
    cfg = load_config(root / TOML.lstrip("/"), environ={})
    assert (cfg.readers[0].driver, cfg.readers[0].path) == (driver, path)
    pcscd = [a for a in actions(result.stdout) if "pcscd.socket" in a]
    expected = {"pcsc": ["systemctl enable pcscd.socket", "systemctl start pcscd.socket"],
                "nfc": ["systemctl disable --now pcscd.socket pcscd.service"], "sim": []}
    assert pcscd == expected[driver]


def test_blacklist_with_other_lines_is_kept(root):
    path = root / BLACKLIST_FILE.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_text("blacklist pn533_usb\nblacklist btusb\n")
    result = run_install(root, "--reader", "sim", "--name", "g")
    assert path.read_text() == "blacklist pn533_usb\nblacklist btusb\n"
    assert f"kept       {BLACKLIST_FILE} (has other lines)" in result.stdout


def test_edited_config_is_kept(root):
    run_install(root, *FULL)
    path = root / TOML.lstrip("/")
    edited = path.read_text().replace("debounce_seconds = 60", "debounce_seconds = 30")
    path.write_text(edited)
    before = snapshot(root)
    result = run_install(root, *FULL[:2], "--server", "https://baru.example.go.id",
                         *FULL[4:])
    assert path.read_text() == edited
    assert snapshot(root)[TOML] == before[TOML]
    assert f"kept       {TOML} (changed by hand: not overwritten)" in result.stdout
    assert ("[sync] server_url is 'https://absensi.example.go.id', not "
            "'https://baru.example.go.id'") in result.stderr
    assert load_config(path, environ={}).recorder.debounce_seconds == 30


def test_config_made_before_the_installer_is_kept(root):
    path = root / TOML.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_text('[device]\nname = "buatan-tangan"\n')
    result = run_install(root, "--reader", "sim", "--name", "g")
    assert path.read_text() == '[device]\nname = "buatan-tangan"\n'
    assert "kept" in result.stdout and "[device] name is 'buatan-tangan', not 'g'" in result.stderr
    assert not (root / STAMP.lstrip("/")).exists()


def test_options_left_out_are_undone(root):
    run_install(root, *FULL)
    result = run_install(root, "--reader", "pcsc", "--name", "SMPN 1 Gerbang")
    assert not (root / TIMESYNCD.lstrip("/")).exists()
    assert not (root / JOURNALD.lstrip("/")).exists()
    assert f"removed    {TIMESYNCD}" in result.stdout and f"removed    {JOURNALD}" in result.stdout
    assert (root / "etc/timezone").read_text() == "Asia/Jakarta\n"  # the default zone


def test_data_dir_and_venv(root, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    result = run_install(root, "--reader", "sim", "--name", "g", "--data-dir", "/data/absensi",
                         "--venv", "/srv/edge-venv", "--wheels", str(wheels))
    data = root / "data/absensi"
    assert data.is_dir() and (data.stat().st_mode & 0o7777) == 0o750
    unit = (root / UNIT.lstrip("/")).read_text()
    assert "ExecStart=/srv/edge-venv/bin/attendance-edge --config /etc/attendance/edge.toml run" in unit
    assert "ReadWritePaths=/data/absensi\n" in unit and "WorkingDirectory=/data/absensi\n" in unit
    assert "/var/lib/attendance-edge" not in unit and "/opt/attendance-edge" not in unit
    assert load_config(root / TOML.lstrip("/"), environ={}).device.data_dir == "/data/absensi"
    pip = [a for a in actions(result.stdout) if " -m pip install " in a]
    assert pip == [f"/srv/edge-venv/bin/python -m pip install --quiet --no-warn-script-location "
                   f"--no-index --find-links {wheels} '{SHIPPED.parent.parent}[edge]'"]


def test_existing_accounts_are_not_made_again(root):
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                     "attendance:x:990:990::/var/lib/attendance-edge:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("gpio:x:993:attendance\nplugdev:x:46:pi,attendance\n"
                                    "dialout:x:20:\n")
    planned = actions(run_install(root, "--reader", "sim", "--name", "g").stdout)
    assert not any(a.startswith(("useradd", "groupadd")) for a in planned)
    assert [a for a in planned if a.startswith("usermod")] == [
        "usermod --append --groups dialout attendance"]


@pytest.mark.parametrize("how", ["file", "env"])
def test_claim_code_from_file_or_environment(root, tmp_path, how):
    claim = tmp_path / "claim.txt"
    claim.write_text(f"  {CODE}\n")
    args = ["--reader", "sim", "--name", "g", "--server", SERVER]
    if how == "file":
        result = run_install(root, *args, "--claim-code-file", str(claim))
    else:
        result = run_install(root, *args, env={"ATTENDANCE_CLAIM_CODE": CODE})
    assert any(" enroll --server " in a for a in actions(result.stdout))
    assert CODE not in result.stdout + result.stderr


def test_enrolled_device_is_not_enrolled_again(root):
    run_install(root, *FULL)
    # Where the edge itself looks for its enrolment.
    enrolment = load_config(root / TOML.lstrip("/"), environ={}).enrolment_path
    (root / str(enrolment).lstrip("/")).write_text("{}")
    result = run_install(root, *FULL)
    assert not any(" enroll " in a for a in actions(result.stdout))
    assert "already enrolled" in result.stdout


def test_no_claim_code_no_enrolment(root):
    result = run_install(root, "--reader", "sim", "--name", "g", "--server", SERVER)
    assert not any(" enroll " in a for a in actions(result.stdout))
    assert f"enrol later with sudo attendance-edge enroll --server {SERVER}" in result.stdout
    assert load_config(root / TOML.lstrip("/"), environ={}).sync.server_url == SERVER


def test_rtc_overlay_added_once(root):
    boot = root / "boot/firmware/config.txt"
    boot.parent.mkdir(parents=True)
    boot.write_text("[all]\ndtparam=audio=on")  # no newline at the end
    run_install(root, "--reader", "sim", "--name", "g", "--rtc", "ds3231")
    once = boot.read_text()
    assert once.startswith("[all]\ndtparam=audio=on\n")
    assert once.splitlines().count("dtoverlay=i2c-rtc,ds3231") == 1
    before = snapshot(root)
    result = run_install(root, "--reader", "sim", "--name", "g", "--rtc", "ds3231")
    assert snapshot(root) == before and "unchanged  /boot/firmware/config.txt" in result.stdout


def test_without_root_option_needs_root(tmp_path):
    import os
    import sys

    from tests.provisioning.edge_install import INSTALL

    if os.geteuid() == 0:
        # As root: --dry-run on the real system is allowed and writes nothing.
        result = subprocess.run([sys.executable, str(INSTALL), "--reader", "sim", "--dry-run",
                                 "--name", "g"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "dry run: nothing is written" in result.stdout
        assert "would run" in result.stdout
    else:
        result = subprocess.run([sys.executable, str(INSTALL), "--reader", "sim"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "install: error: run it as root (sudo)" in result.stderr


BAD = [
    ([], "the following arguments are required: --reader"),
    (["--reader", "usb"], "argument --reader: invalid choice: 'usb'"),
    (["--reader", "pcsc", "--nfc-path", "usb"], "--nfc-path is only for --reader nfc"),
    (["--reader", "nfc", "--match", "ACR"], "--match is only for --reader pcsc"),
    (["--reader", "nfc", "--nfc-path", "usb; rm -rf /"], "--nfc-path: not an nfcpy device path"),
    (["--reader", "sim", "--claim-code", "abc"], "a claim code needs --server URL"),
    (["--reader", "sim", "--server", SERVER, "--claim-code", "  "], "--claim-code is empty"),
    (["--reader", "sim", "--server", SERVER, "--claim-code-file", "/nonexistent/claim.txt"],
     "--claim-code-file: cannot read /nonexistent/claim.txt"),
    (["--reader", "sim", "--server", "ftp://absensi.example.go.id"], "--server must be like https://"),
    (["--reader", "sim", "--server", "https://a b"], "--server must be like https://"),
    (["--reader", "sim", "--timezone", "Asia/Bandung"], "--timezone: unknown time zone 'Asia/Bandung'"),
    (["--reader", "sim", "--timezone", "../../etc/passwd"], "--timezone: not a time zone name"),
    (["--reader", "sim", "--ntp", "ntp example"], "--ntp: not a host name or address"),
    (["--reader", "sim", "--data-dir", "var/lib/x"], "--data-dir must be an absolute path"),
    (["--reader", "sim", "--data-dir", "/tmp/taps"], "--data-dir '/tmp/taps' is a system folder"),
    (["--reader", "sim", "--data-dir", "/srv/a b"], "--data-dir must be an absolute path"),
    (["--reader", "sim", "--venv", "/opt/%n"], "--venv must be an absolute path"),
    (["--reader", "sim", "--name", ""], "--name must be 1 to 64 printable characters"),
    (["--reader", "sim", "--rtc", "ds9999"], "argument --rtc: invalid choice: 'ds9999'"),
    (["--reader", "sim", "--rtc", "ds3231"], "--rtc: /boot/firmware/config.txt not found"),
    (["--reader", "sim", "--wheels", "/nonexistent/wheels"], "--wheels: no such folder"),
    (["--reader", "sim", "--claim-code", "a", "--claim-code-file", "f"],
     "argument --claim-code-file: not allowed with argument --claim-code"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[m for _, m in BAD])
def test_bad_options(root, args, message):
    result = run_install(root, *args, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"install: error: {message}"), result.stderr
    assert not root.exists()  # nothing written


def test_example_config_keys_exist_for_every_filled_value():
    """The installer fills keys of provisioning/edge.example.toml: they must stay there."""
    example = tomllib.loads((SHIPPED.parent / "edge.example.toml").read_text())
    assert {"name", "data_dir"} <= set(example["device"])
    assert {"driver", "match", "path"} <= set(example["readers"][0])
    assert "server_url" in example["sync"]


# -- the udev rules -----------------------------------------------------------------------
RULE_TOKEN = re.compile(r'\s*([A-Z]+(?:\{[A-Za-z_]+\})?)\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*(,|$)')
MATCH_KEYS = {"SUBSYSTEM", "ACTION", "KERNEL", "ENV{DEVTYPE}", "ATTR{idVendor}", "ATTR{idProduct}"}
ASSIGN_KEYS = {"GROUP", "MODE"}


def parse_rule(line: str) -> dict[str, tuple[str, str]]:
    tokens: dict[str, tuple[str, str]] = {}
    pos = 0
    while pos < len(line):
        m = RULE_TOKEN.match(line, pos)
        assert m, f"cannot parse udev rule at {line[pos:]!r}"
        key, op, value = m.group(1), m.group(2), m.group(3)
        if key in MATCH_KEYS:
            assert op in ("==", "!="), f"{key} must be matched, not assigned: {line}"
        elif key in ASSIGN_KEYS:
            assert op in ("=", ":="), f"{key} must be assigned: {line}"
        else:
            raise AssertionError(f"unexpected udev key {key} in {line}")
        tokens[key] = (op, value)
        pos = m.end()
    return tokens


def test_udev_rules_cover_the_readers():
    text = (SHIPPED / "60-attendance-nfc-readers.rules").read_text()
    rules = [parse_rule(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    ids = set()
    for rule in rules:
        assert rule["SUBSYSTEM"] == ("==", "usb") and rule["ENV{DEVTYPE}"] == ("==", "usb_device")
        assert rule["GROUP"] == ("=", "plugdev") and rule["MODE"] == ("=", "0660")
        vendor, product = rule["ATTR{idVendor}"][1], rule["ATTR{idProduct}"][1]
        assert re.fullmatch(r"[0-9a-f]{4}", vendor) and re.fullmatch(r"[0-9a-f]{4}", product)
        ids.add(f"{vendor}:{product}")
    assert {"072f:2200", "072f:223b", "04e6:5591", "054c:06c3", "054c:06c1", "04cc:2533"} <= ids
    # Every USB reader the doctor knows for nfcpy has its rule.
    from edge.doctor import NFCPY_USB_READERS
    assert {f"{v}:{p}" for v, p, _ in NFCPY_USB_READERS} <= ids


def test_udev_rule_parser_rejects_mistakes():
    with pytest.raises(AssertionError):
        parse_rule('SUBSYSTEM="usb", GROUP="plugdev"')  # assignment where a match is meant
    with pytest.raises(AssertionError):
        parse_rule('SUBSYSTEM=="usb", GROUP=="plugdev"')
    with pytest.raises(AssertionError):
        parse_rule('SUBSYSTEM=="usb" GROUP="plugdev" junk')


# -- the data folder's partition (checked on the real system only) ------------------------
def load_installer():
    from importlib.machinery import SourceFileLoader
    from importlib.util import module_from_spec, spec_from_loader

    loader = SourceFileLoader("edge_installer", str(SHIPPED / "install"))
    module = module_from_spec(spec_from_loader("edge_installer", loader))
    loader.exec_module(module)
    return module


MOUNTINFO = """\
22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw
23 22 179:1 / /boot/firmware rw,relatime shared:2 - vfat /dev/mmcblk0p1 rw
30 22 179:3 / /data rw,noatime shared:3 - ext4 /dev/mmcblk0p3 rw
31 22 8:1 / /media/ro ro,relatime shared:4 - ext4 /dev/sda1 ro
32 22 0:40 / /var/lib/ram rw,nosuid shared:5 - tmpfs tmpfs rw
"""
OVERLAY_ROOT = "40 1 0:30 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/media/root-ro\n"


@pytest.mark.parametrize("mountinfo, data, error", [
    (MOUNTINFO, "/var/lib/attendance-edge", None),
    (MOUNTINFO, "/data/attendance-edge", None),
    (MOUNTINFO, "/media/ro/attendance", "is on the read-only file system /media/ro"),
    (MOUNTINFO, "/var/lib/ram/edge", "is on /var/lib/ram (tmpfs): taps kept there vanish at reboot"),
    (OVERLAY_ROOT, "/var/lib/attendance-edge", "is on / (overlay): taps kept there vanish"),
    (OVERLAY_ROOT + "41 40 179:3 / /data rw - ext4 /dev/mmcblk0p3 rw\n", "/data/edge", None),
])
def test_data_dir_must_be_on_a_persistent_writable_partition(tmp_path, capsys, mountinfo, data, error):
    installer = load_installer()
    path = tmp_path / "mountinfo"
    path.write_text(mountinfo)
    if error is None:
        installer.check_writable_partition(data, str(path))
        return
    with pytest.raises(SystemExit) as exc:
        installer.check_writable_partition(data, str(path))
    assert exc.value.code == 1
    assert f"install: error: --data-dir {data} {error}" in capsys.readouterr().err
