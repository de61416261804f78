"""``edge.doctor``: every input is fed as text, paths in tmp_path or callables."""

from __future__ import annotations

import sys

import pytest

from edge.doctor import (
    BLACKLIST_LINES,
    Check,
    check_gpio,
    check_groups,
    check_kernel_modules,
    check_nfc_devices,
    check_pcsc_readers,
    check_pcscd,
    check_udev_rules,
    format_checks,
    nfcpy_udev_rule,
    parse_proc_modules,
    run_checks,
)
from hardware.errors import ReaderUnavailable

PROC_MODULES_CLEAN = """\
snd_bcm2835 24576 1 - Live 0x0000000000000000 (C)
brcmfmac 331776 0 - Live 0x0000000000000000
cfg80211 774144 1 brcmfmac, Live 0x0000000000000000
"""
PROC_MODULES_PN533 = PROC_MODULES_CLEAN + """\
pn533_usb 20480 0 - Live 0x0000000000000000
pn533 45056 1 pn533_usb, Live 0x0000000000000000
nfc 131072 1 pn533, Live 0x0000000000000000
rfkill 32768 6 nfc,cfg80211, Live 0x0000000000000000
"""
RC_S380_RULE = (
    'SUBSYSTEM=="usb", ACTION=="add", ATTRS{idVendor}=="054c", '
    'ATTRS{idProduct}=="06c3", GROUP="plugdev"'
)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def fail_if_called():
    raise AssertionError("must not be called")


# -- /proc/modules ------------------------------------------------------------------------


def test_parse_proc_modules():
    assert parse_proc_modules(PROC_MODULES_PN533) == {
        "snd_bcm2835", "brcmfmac", "cfg80211", "pn533_usb", "pn533", "nfc", "rfkill",
    }  # fmt: skip
    assert parse_proc_modules("") == set()


@pytest.mark.parametrize(
    "text",
    [PROC_MODULES_CLEAN, "nfc_fake 1 0 - Live 0x0\npn533x 1 0 - Live 0x0\n", ""],
)
def test_kernel_modules_ok_without_pn533(text):
    check = check_kernel_modules(proc_modules=text, blacklist="")
    assert check.ok and check.fix is None
    assert "none of pn533_usb, pn533, nfc is loaded" in check.detail


def test_kernel_modules_loaded_explains_blacklist_and_unload(tmp_path):
    blacklist_path = tmp_path / "blacklist-nfc.conf"  # does not exist
    check = check_kernel_modules(proc_modules=PROC_MODULES_PN533, blacklist_path=blacklist_path)
    assert not check.ok
    assert "pn533_usb, pn533, nfc loaded" in check.detail
    fix_lines = [line.strip() for line in check.fix.splitlines()]
    for line in ("blacklist pn533_usb", "blacklist pn533", "blacklist nfc"):
        assert line in fix_lines
    assert f"the file {blacklist_path} must contain these lines:" in check.fix
    assert f"| sudo tee {blacklist_path}" in check.fix
    assert "sudo modprobe -r pn533_usb pn533 nfc" in fix_lines


def test_kernel_modules_default_blacklist_path_is_named():
    check = check_kernel_modules(proc_modules=PROC_MODULES_PN533, blacklist="")
    assert "/etc/modprobe.d/blacklist-nfc.conf" in check.fix
    assert (
        "printf 'blacklist pn533_usb\\nblacklist pn533\\nblacklist nfc\\n' "
        "| sudo tee /etc/modprobe.d/blacklist-nfc.conf"
    ) in check.fix


def test_kernel_modules_only_unloads_what_is_loaded():
    check = check_kernel_modules(proc_modules="nfc 131072 0 - Live 0x0\n", blacklist="")
    assert not check.ok
    assert "sudo modprobe -r nfc" in check.fix.splitlines()[-1]
    assert "pn533_usb" not in check.fix.splitlines()[-1]


def test_kernel_modules_blacklisted_but_still_loaded_only_needs_unload(tmp_path):
    blacklist_path = tmp_path / "blacklist-nfc.conf"
    blacklist_path.write_text("# ours\n" + "\n".join(BLACKLIST_LINES) + "\n")
    check = check_kernel_modules(proc_modules=PROC_MODULES_PN533, blacklist_path=blacklist_path)
    assert not check.ok
    assert "already blacklists" in check.fix
    assert "tee" not in check.fix
    assert "sudo modprobe -r pn533_usb pn533 nfc" in check.fix


def test_kernel_modules_partial_blacklist_still_asks_for_the_file():
    check = check_kernel_modules(proc_modules=PROC_MODULES_PN533, blacklist="blacklist pn533\n")
    assert "must contain these lines" in check.fix


def test_kernel_modules_unreadable(tmp_path):
    check = check_kernel_modules(proc_modules_path=tmp_path / "no-such-file")
    assert check.ok and check.detail.startswith("not checked")


# -- pcscd and PC/SC readers --------------------------------------------------------------------


def test_pcscd_missing_socket(tmp_path):
    check = check_pcscd(socket_path=tmp_path / "pcscd.comm")
    assert not check.ok
    assert str(tmp_path / "pcscd.comm") in check.detail
    assert "sudo apt install pcscd" in check.fix
    assert "sudo systemctl enable --now pcscd.socket" in check.fix


def test_pcscd_socket_present(tmp_path):
    socket = tmp_path / "pcscd.comm"
    socket.touch()
    assert check_pcscd(socket_path=socket).ok


def test_pcsc_readers_listed_one_check_each():
    checks = check_pcsc_readers(
        list_readers=lambda: ["ACS ACR122U PICC Interface 00 00", "Identiv uTrust 3700 F 01 00"]
    )
    assert [(c.name, c.ok) for c in checks] == [
        ("PC/SC reader 'ACS ACR122U PICC Interface 00 00'", True),
        ("PC/SC reader 'Identiv uTrust 3700 F 01 00'", True),
    ]


def test_pcsc_no_reader_points_at_pcsc_scan_and_pn533():
    [check] = check_pcsc_readers(list_readers=lambda: [])
    assert not check.ok and check.detail == "pcscd sees no reader"
    assert "pcsc_scan" in check.fix and "pn533_usb" in check.fix


def test_pcsc_listing_error_is_reported():
    def lister():
        raise ReaderUnavailable("pcscd is not running: SCARD_E_NO_SERVICE")

    [check] = check_pcsc_readers(list_readers=lister)
    assert not check.ok
    assert "SCARD_E_NO_SERVICE" in check.detail
    assert "systemctl restart pcscd" in check.fix


def test_pcsc_import_error_means_driver_not_installed():
    def lister():
        raise ImportError("No module named 'smartcard'")

    [check] = check_pcsc_readers(list_readers=lister)
    assert (check.name, check.ok) == ("pyscard driver", False)
    assert check.detail.startswith("pyscard driver not installed")
    assert "libpcsclite-dev" in check.fix


def test_pcsc_module_missing_is_imported_lazily(monkeypatch):
    monkeypatch.setitem(sys.modules, "hardware.pcsc", None)  # import raises ImportError
    [check] = check_pcsc_readers()
    assert (check.name, check.ok) == ("pyscard driver", False)
    assert "pyscard driver not installed" in check.detail


# -- nfcpy ----------------------------------------------------------------------------------------


def test_nfc_devices_listed():
    checks = check_nfc_devices(list_devices=lambda: ["usb:001:004"])
    assert [(c.name, c.ok) for c in checks] == [("nfcpy reader 'usb:001:004'", True)]


def test_nfc_no_device():
    [check] = check_nfc_devices(list_devices=lambda: [])
    assert not check.ok
    assert "udev" in check.fix and "plugdev" in check.fix
    assert "sudo systemctl stop pcscd.socket pcscd" in check.fix


def test_nfc_module_missing_means_driver_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "hardware.nfc", None)
    [check] = check_nfc_devices()
    assert (check.name, check.ok) == ("nfcpy driver", False)
    assert check.detail.startswith("nfcpy driver not installed")


def test_nfc_listing_error():
    def lister():
        raise ReaderUnavailable("libusb not found")

    [check] = check_nfc_devices(list_devices=lister)
    assert not check.ok and "libusb not found" in check.detail


def test_udev_rule_missing_gives_nfcpy_rule(tmp_path):
    check = check_udev_rules(rules_dir=tmp_path)
    assert not check.ok
    assert nfcpy_udev_rule("054c", "06c3") == RC_S380_RULE
    fix_lines = [line.strip() for line in check.fix.splitlines()]
    assert RC_S380_RULE in fix_lines
    assert nfcpy_udev_rule("072f", "2200") in fix_lines  # ACR122U
    assert str(tmp_path / "nfcdev.rules") in check.fix
    assert "sudo udevadm control -R" in fix_lines
    # udev has no trailing comments: comment lines stand alone
    assert all(line.startswith("#") or "#" not in line for line in fix_lines if "==" in line)


@pytest.mark.parametrize("filename", ["nfcdev.rules", "42-pn53x-libnfc.rules"])
def test_udev_rule_present(tmp_path, filename):
    (tmp_path / "10-other.rules").write_text("")
    (tmp_path / filename).write_text(RC_S380_RULE + "\n")
    check = check_udev_rules(rules_dir=tmp_path)
    assert check.ok and filename in check.detail and "10-other" not in check.detail


# -- user and GPIO ------------------------------------------------------------------------------


def test_groups_not_checked_for_root():
    assert check_groups(euid=0, groups=[]) == [
        Check("groups", True, "running as root: no group membership needed")
    ]


def test_groups_missing_give_usermod():
    checks = by_name(
        check_groups(
            euid=1000,
            user="alice",
            groups=["alice", "plugdev"],
            existing_groups=["alice", "plugdev", "dialout"],
        )
    )
    assert checks["group plugdev"].ok
    assert not checks["group dialout"].ok
    assert "sudo usermod -aG dialout alice" in checks["group dialout"].fix
    assert "groupadd" not in checks["group dialout"].fix
    assert not checks["group gpio"].ok
    assert "sudo groupadd gpio" in checks["group gpio"].fix
    assert "sudo usermod -aG gpio alice" in checks["group gpio"].fix


def test_gpio_missing_means_null_feedback(tmp_path):
    check = check_gpio(gpiochip=tmp_path / "gpiochip0")
    assert not check.ok
    assert "null feedback" in check.detail
    assert 'kind = "none"' in check.fix


def test_gpio_present(tmp_path):
    chip = tmp_path / "gpiochip0"
    chip.touch()
    assert check_gpio(gpiochip=chip).ok
    denied = check_gpio(gpiochip=chip, accessible=False, user="pi")
    assert not denied.ok and "sudo usermod -aG gpio pi" in denied.fix


def test_gpio_not_needed_when_feedback_disabled(tmp_path):
    assert check_gpio(gpiochip=tmp_path / "gpiochip0", feedback_kind="none").ok


# -- run_checks and the report ------------------------------------------------------------------


@pytest.fixture
def machine(tmp_path):
    """Inputs for run_checks describing a healthy Pi with a PC/SC reader."""
    socket = tmp_path / "pcscd.comm"
    socket.touch()
    chip = tmp_path / "gpiochip0"
    chip.touch()
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "nfcdev.rules").write_text(RC_S380_RULE + "\n")
    return dict(
        proc_modules=PROC_MODULES_CLEAN,
        blacklist="",
        pcscd_socket=socket,
        list_pcsc_readers=lambda: ["ACS ACR1252 1S CL Reader PICC 00 00"],
        list_nfc_devices=lambda: ["usb:001:004"],
        udev_rules_dir=rules,
        gpiochip=chip,
        gpio_accessible=True,
        user="pi",
        groups=["pi", "plugdev", "dialout", "gpio"],
        existing_groups=["pi", "plugdev", "dialout", "gpio"],
        euid=1000,
    )


def test_run_checks_all_ok(machine):
    checks = run_checks(**machine)
    assert [c.name for c in checks] == [
        "pcscd",
        "PC/SC reader 'ACS ACR1252 1S CL Reader PICC 00 00'",
        "kernel NFC modules",
        "nfcpy reader 'usb:001:004'",
        "udev rule for nfcpy",
        "group plugdev",
        "group dialout",
        "group gpio",
        "GPIO (LEDs and buzzer)",
    ]
    assert all(c.ok for c in checks)
    assert format_checks(checks).splitlines()[-1] == "All 9 checks passed."


def test_run_checks_broken_pi(machine, tmp_path):
    machine.update(
        proc_modules=PROC_MODULES_PN533,
        pcscd_socket=tmp_path / "missing" / "pcscd.comm",
        list_pcsc_readers=fail_if_called,  # no socket: no listing
        list_nfc_devices=lambda: [],
        groups=["pi"],
    )
    checks = by_name(run_checks(driver="pcsc", **machine))
    assert not checks["pcscd"].ok
    assert not checks["kernel NFC modules"].ok
    assert "sudo modprobe -r pn533_usb pn533 nfc" in checks["kernel NFC modules"].fix
    assert "group gpio" in checks and not checks["group gpio"].ok
    # pcsc needs neither nfcpy, its udev rule nor plugdev/dialout
    assert set(checks) == {"pcscd", "kernel NFC modules", "group gpio", "GPIO (LEDs and buzzer)"}


def test_run_checks_nfc_driver_skips_pcsc(machine):
    machine["list_pcsc_readers"] = fail_if_called
    names = [c.name for c in run_checks(driver="nfc", **machine)]
    assert "pcscd" not in names
    assert "udev rule for nfcpy" in names and "group dialout" in names


def test_run_checks_sim_driver_only_checks_gpio(machine):
    machine.update(list_pcsc_readers=fail_if_called, list_nfc_devices=fail_if_called)
    names = [c.name for c in run_checks(driver="sim", **machine)]
    assert names == ["group gpio", "GPIO (LEDs and buzzer)"]
    names = [c.name for c in run_checks(driver="sim", feedback_kind="none", **machine)]
    assert names == ["GPIO (LEDs and buzzer)"]


def test_run_checks_unknown_driver(machine):
    with pytest.raises(ValueError, match="pcsc, nfc, sim"):
        run_checks(driver="pscs", **machine)


def test_format_checks_marks_and_indents_fixes():
    report = format_checks(
        [
            Check("pcscd", True, "socket exists"),
            Check("kernel NFC modules", False, "pn533_usb loaded", "line one\n    sudo cmd"),
            Check("GPIO", False, "no chip", None),
        ]
    )
    assert report.splitlines() == [
        "✓ pcscd: socket exists",
        "✗ kernel NFC modules: pn533_usb loaded",
        "    line one",
        "        sudo cmd",
        "✗ GPIO: no chip",
        "2 problems found.",
    ]


def test_format_checks_one_problem():
    assert format_checks([Check("x", False, "bad", "fix it")]).splitlines()[-1] == "1 problem found."
