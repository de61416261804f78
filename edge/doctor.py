"""Diagnosis for ``attendance-edge doctor``: find the readers, say how to fix what is wrong.

Each ``check_*`` function looks at one thing and returns :class:`Check`
results; everything it reads (file contents, paths, the user's groups, the
reader listing functions) can be passed as a keyword, so tests feed text
instead of touching the machine. :func:`run_checks` runs the checks that
matter for the configured reader driver and :func:`format_checks` turns them
into the report::

    ✓ pcscd: socket /run/pcscd/pcscd.comm exists
    ✗ kernel NFC modules: pn533_usb, pn533, nfc loaded: the kernel's NFC driver holds PN533/ACR122 readers
        the file /etc/modprobe.d/blacklist-nfc.conf must contain these lines:
        ...

The reader drivers are imported lazily from :mod:`hardware.pcsc` and
:mod:`hardware.nfc`; a missing module counts as "driver not installed".
Groups are those of the process running the doctor: run it as the user the
edge service runs as.
"""

from __future__ import annotations

import glob
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

PCSCD_SOCKET = "/run/pcscd/pcscd.comm"
PROC_MODULES = "/proc/modules"
#: Kernel modules that claim PN533-based readers (ACR122U, SCL3711, ...) before
#: pcscd or nfcpy can; in the order ``modprobe -r`` must remove them.
NFC_KERNEL_MODULES = ("pn533_usb", "pn533", "nfc")
BLACKLIST_FILE = "/etc/modprobe.d/blacklist-nfc.conf"
BLACKLIST_LINES = tuple(f"blacklist {module}" for module in NFC_KERNEL_MODULES)
UDEV_RULES_DIR = "/etc/udev/rules.d"
#: The file nfcpy's own ``python -m nfc`` suggests for its udev rules.
NFCPY_UDEV_FILE = "/etc/udev/rules.d/nfcdev.rules"
#: USB readers nfcpy 1.0.4 drives (``nfc.clf.device.usb_device_map``).
NFCPY_USB_READERS = (
    ("054c", "06c3", "Sony RC-S380"),
    ("054c", "06c1", "Sony RC-S380"),
    ("054c", "02e1", "Sony RC-S330/360/370"),
    ("072f", "2200", "ACS ACR122U"),
    ("04e6", "5591", "SCM SCL3711"),
    ("04e6", "5593", "SCM SCL3712"),
    ("04cc", "2533", "NXP PN533 demo board"),
    ("04cc", "0531", "PN531 (Philips), SCM SCL3710"),
    ("054c", "0193", "PN531 (Sony)"),
)
GPIOCHIP = "/dev/gpiochip0"
#: Groups a non-root edge user needs, and what for.
GROUPS = {
    "plugdev": "USB readers driven by nfcpy, through the udev rule",
    "dialout": "a PN532 on a serial port (UART) driven by nfcpy",
    "gpio": "the LEDs and the buzzer (gpiozero)",
}
#: Drivers ``run_checks`` knows; None means "not configured yet: check everything".
DRIVERS = ("pcsc", "nfc", "sim", "fake")


@dataclass(frozen=True)
class Check:
    """The outcome of one check, with the commands that fix it when not ok."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


# -- pure helpers ------------------------------------------------------------------
def parse_proc_modules(text: str) -> set[str]:
    """Names of the loaded kernel modules in ``/proc/modules`` text."""
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def nfcpy_udev_rule(vendor: str, product: str) -> str:
    """The udev rule nfcpy documents to give the ``plugdev`` group a USB reader."""
    return (
        f'SUBSYSTEM=="usb", ACTION=="add", ATTRS{{idVendor}}=="{vendor}", '
        f'ATTRS{{idProduct}}=="{product}", GROUP="plugdev"'
    )


def _indent(lines: Iterable[str], prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in lines)


def _read(path: str | os.PathLike[str]) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _load(module: str, function: str) -> Callable[[], Sequence[Any]]:
    """``module.function``, imported now; ImportError when either is missing."""
    mod = importlib.import_module(module)
    try:
        return getattr(mod, function)
    except AttributeError:
        raise ImportError(f"{module} has no {function}()") from None


def _describe(item: Any) -> str:
    """A reader or device from a listing function, in words."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return " ".join(str(v) for v in item.values())
    if isinstance(item, (tuple, list)):
        return " ".join(str(v) for v in item)
    return str(item)


# -- PC/SC ---------------------------------------------------------------------------
PCSCD_FIX = (
    "install pcscd and start it (it is socket-activated):\n"
    "    sudo apt install pcscd libpcsclite1\n"
    "    sudo systemctl enable --now pcscd.socket"
)


def check_pcscd(*, socket_path: str | os.PathLike[str] = PCSCD_SOCKET) -> Check:
    """pcscd listens on its fixed client socket."""
    if os.path.exists(socket_path):
        return Check("pcscd", True, f"socket {socket_path} exists")
    return Check(
        "pcscd",
        False,
        f"no socket {socket_path}: pcscd is not installed or not running",
        PCSCD_FIX,
    )


def check_pcsc_readers(
    *, list_readers: Callable[[], Sequence[Any]] | None = None
) -> list[Check]:
    """Ask pcscd for its readers (``hardware.pcsc.list_pcsc_readers``): one
    check per reader, or one failed check saying why there is none."""
    try:
        lister = list_readers or _load("hardware.pcsc", "list_pcsc_readers")
        readers = list(lister())
    except ImportError as exc:
        return [
            Check(
                "pyscard driver",
                False,
                f"pyscard driver not installed ({exc})",
                "install the edge extra in the service's virtualenv (builds pyscard):\n"
                "    sudo apt install gcc python3-dev libpcsclite-dev\n"
                "    pip install 'smart-card-attendance[edge]'",
            )
        ]
    except Exception as exc:  # ReaderUnavailable and friends: the message says why
        return [
            Check(
                "PC/SC readers",
                False,
                f"cannot list readers: {exc}",
                "check pcscd and restart it:\n"
                "    sudo systemctl restart pcscd.socket pcscd\n"
                "    journalctl -u pcscd -n 50",
            )
        ]
    if not readers:
        return [
            Check(
                "PC/SC readers",
                False,
                "pcscd sees no reader",
                "plug the reader in (`lsusb` should list it) and watch what pcscd sees:\n"
                "    pcsc_scan        (package pcsc-tools)\n"
                "an ACR122U or another PN533 reader stays invisible to pcscd while the\n"
                "kernel module pn533_usb holds it (see 'kernel NFC modules')",
            )
        ]
    return [Check(f"PC/SC reader {_describe(r)!r}", True, "listed by pcscd") for r in readers]


# -- kernel NFC modules ----------------------------------------------------------------
def check_kernel_modules(
    *,
    proc_modules: str | None = None,
    proc_modules_path: str | os.PathLike[str] = PROC_MODULES,
    blacklist: str | None = None,
    blacklist_path: str | os.PathLike[str] = BLACKLIST_FILE,
) -> Check:
    """None of the kernel NFC modules is loaded (they grab PN533/ACR122 readers).

    ``proc_modules`` is the text of ``/proc/modules`` and ``blacklist`` the
    text of the blacklist file (None: read them from the paths)."""
    name = "kernel NFC modules"
    text = proc_modules if proc_modules is not None else _read(proc_modules_path)
    if text is None:
        return Check(name, True, f"not checked: cannot read {proc_modules_path}")
    loaded = [m for m in NFC_KERNEL_MODULES if m in parse_proc_modules(text)]
    if not loaded:
        return Check(name, True, f"none of {', '.join(NFC_KERNEL_MODULES)} is loaded")

    detail = (
        f"{', '.join(loaded)} loaded: the kernel's NFC driver holds PN533-based readers "
        "(ACR122U, SCL3711, ...) so neither pcscd nor nfcpy can open them"
    )
    unload = f"sudo modprobe -r {' '.join(loaded)}"
    present = blacklist if blacklist is not None else _read(blacklist_path)
    present_lines = {line.strip() for line in (present or "").splitlines()}
    missing = [line for line in BLACKLIST_LINES if line not in present_lines]
    if not missing:
        fix = (
            f"{blacklist_path} already blacklists them; unload the modules now (or reboot):\n"
            f"    {unload}"
        )
    else:
        printf = "\\n".join(BLACKLIST_LINES) + "\\n"
        fix = (
            f"the file {blacklist_path} must contain these lines:\n"
            + _indent(BLACKLIST_LINES)
            + "\ncreate it with:\n"
            + f"    printf '{printf}' | sudo tee {blacklist_path}\n"
            + "then unload the modules now (or reboot):\n"
            + f"    {unload}"
        )
    return Check(name, False, detail, fix)


# -- nfcpy ---------------------------------------------------------------------------------
def check_nfc_devices(
    *, list_devices: Callable[[], Sequence[Any]] | None = None
) -> list[Check]:
    """Ask nfcpy for USB readers (``hardware.nfc.list_nfc_devices``)."""
    try:
        lister = list_devices or _load("hardware.nfc", "list_nfc_devices")
        devices = list(lister())
    except ImportError as exc:
        return [
            Check(
                "nfcpy driver",
                False,
                f"nfcpy driver not installed ({exc})",
                "install the edge extra in the service's virtualenv:\n"
                "    pip install 'smart-card-attendance[edge]'",
            )
        ]
    except Exception as exc:
        return [Check("nfcpy USB readers", False, f"cannot search for readers: {exc}", _NFC_FIX)]
    if not devices:
        return [Check("nfcpy USB readers", False, "nfcpy finds no USB reader", _NFC_FIX)]
    return [Check(f"nfcpy reader {_describe(d)!r}", True, "found by nfcpy") for d in devices]


_NFC_FIX = (
    "plug the reader in (`lsusb` should list it), then check:\n"
    "- the kernel NFC modules do not hold it (see 'kernel NFC modules')\n"
    "- without root, the udev rule and the plugdev group (see below)\n"
    "- pcscd does not hold it (ACR122U):  sudo systemctl stop pcscd.socket pcscd"
)


def check_udev_rules(*, rules_dir: str | os.PathLike[str] = UDEV_RULES_DIR) -> Check:
    """A udev rule file for nfcpy readers (``*nfc*`` in ``rules_dir``) exists."""
    name = "udev rule for nfcpy"
    found = sorted(glob.glob(os.path.join(glob.escape(str(rules_dir)), "*nfc*")))
    if found:
        return Check(name, True, ", ".join(found))
    rules_file = os.path.join(str(rules_dir), "nfcdev.rules")
    lines: list[str] = []
    for vendor, product, model in NFCPY_USB_READERS:
        lines += [f"# {model} ({vendor}:{product})", nfcpy_udev_rule(vendor, product)]
    fix = (
        f"nfcpy needs the reader's USB device in the plugdev group; put the rule of your\n"
        f"reader (`lsusb` shows its ID vendor:product) into {rules_file}:\n"
        + _indent(lines)
        + "\nthen reload the rules and plug the reader in again:\n"
        "    sudo udevadm control -R"
    )
    return Check(name, False, f"no *nfc* rule file in {rules_dir}", fix)


# -- the user ---------------------------------------------------------------------------------
def check_groups(
    *,
    needed: Iterable[str] = tuple(GROUPS),
    user: str | None = None,
    groups: Iterable[str] | None = None,
    euid: int | None = None,
    existing_groups: Iterable[str] | None = None,
) -> list[Check]:
    """The user is in each ``needed`` group (nothing to check for root).

    ``groups`` are the user's group names (default: the current process's),
    ``existing_groups`` the groups this system has (default: ``/etc/group``).
    """
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return [Check("groups", True, "running as root: no group membership needed")]
    user = user or _current_user()
    mine = set(_current_groups() if groups is None else groups)
    existing = set(_all_groups() if existing_groups is None else existing_groups)
    checks = []
    for group in needed:
        purpose = GROUPS.get(group, "device access")
        if group in mine:
            checks.append(Check(f"group {group}", True, f"{user} is a member ({purpose})"))
            continue
        add = f"    sudo usermod -aG {group} {user}"
        if group not in existing:
            add = f"    sudo groupadd {group}\n" + add
        checks.append(
            Check(
                f"group {group}",
                False,
                f"{user} is not in group {group}, needed for {purpose}",
                add + "\nthen log out and in again (or restart the edge service)",
            )
        )
    return checks


def _current_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _current_groups() -> list[str]:
    import grp

    names = []
    for gid in {os.getegid(), *os.getgroups()}:
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            pass
    return names


def _all_groups() -> list[str]:
    import grp

    return [g.gr_name for g in grp.getgrall()]


# -- GPIO --------------------------------------------------------------------------------------
def check_gpio(
    *,
    gpiochip: str | os.PathLike[str] = GPIOCHIP,
    feedback_kind: str | None = None,
    accessible: bool | None = None,
    user: str | None = None,
) -> Check:
    """GPIO exists (``/dev/gpiochip0``) and can be used, else feedback is null.

    ``accessible`` overrides the read/write permission test of ``gpiochip``.
    """
    name = "GPIO (LEDs and buzzer)"
    if feedback_kind == "none":
        return Check(name, True, "feedback disabled in the configuration (kind = \"none\")")
    if not os.path.exists(gpiochip):
        return Check(
            name,
            False,
            f"no {gpiochip}: the edge runs with null feedback, LEDs and buzzer stay dark "
            "and silent (taps are still recorded)",
            "on a Raspberry Pi, check `ls -l /dev/gpiochip*` and the kernel; on a machine\n"
            "without GPIO, set kind = \"none\" in the [feedback] section of the config",
        )
    if accessible is None:
        accessible = os.access(gpiochip, os.R_OK | os.W_OK)
    if not accessible:
        return Check(
            name,
            False,
            f"{gpiochip} exists but this user cannot open it: the edge would run with "
            "null feedback",
            f"    sudo usermod -aG gpio {user or _current_user()}\n"
            "then log out and in again (or restart the edge service)",
        )
    return Check(name, True, f"{gpiochip} is usable")


# -- all together -------------------------------------------------------------------------------
def run_checks(
    *,
    driver: str | None = None,
    feedback_kind: str | None = None,
    proc_modules: str | None = None,
    proc_modules_path: str | os.PathLike[str] = PROC_MODULES,
    blacklist: str | None = None,
    blacklist_path: str | os.PathLike[str] = BLACKLIST_FILE,
    pcscd_socket: str | os.PathLike[str] = PCSCD_SOCKET,
    list_pcsc_readers: Callable[[], Sequence[Any]] | None = None,
    list_nfc_devices: Callable[[], Sequence[Any]] | None = None,
    udev_rules_dir: str | os.PathLike[str] = UDEV_RULES_DIR,
    gpiochip: str | os.PathLike[str] = GPIOCHIP,
    gpio_accessible: bool | None = None,
    user: str | None = None,
    groups: Iterable[str] | None = None,
    existing_groups: Iterable[str] | None = None,
    euid: int | None = None,
) -> list[Check]:
    """Run the checks that matter for ``driver`` (``pcsc``, ``nfc``, ``sim``;
    None checks everything) and return them in report order.

    Every other keyword replaces what the check would read from the machine.
    PC/SC readers are listed only when pcscd's socket exists.
    """
    if driver is not None and driver not in DRIVERS:
        raise ValueError(f"unknown reader driver {driver!r}; use {', '.join(DRIVERS)}")
    usb_reader = driver in (None, "pcsc", "nfc")
    checks: list[Check] = []
    if driver in (None, "pcsc"):
        pcscd = check_pcscd(socket_path=pcscd_socket)
        checks.append(pcscd)
        if pcscd.ok:
            checks += check_pcsc_readers(list_readers=list_pcsc_readers)
    if usb_reader:
        checks.append(
            check_kernel_modules(
                proc_modules=proc_modules,
                proc_modules_path=proc_modules_path,
                blacklist=blacklist,
                blacklist_path=blacklist_path,
            )
        )
    if driver in (None, "nfc"):
        checks += check_nfc_devices(list_devices=list_nfc_devices)
        checks.append(check_udev_rules(rules_dir=udev_rules_dir))
    needed = ["plugdev", "dialout"] if driver in (None, "nfc") else []
    if feedback_kind != "none":
        needed.append("gpio")
    if needed:
        checks += check_groups(
            needed=needed, user=user, groups=groups, euid=euid, existing_groups=existing_groups
        )
    checks.append(
        check_gpio(
            gpiochip=gpiochip, feedback_kind=feedback_kind, accessible=gpio_accessible, user=user
        )
    )
    return checks


def format_checks(checks: Sequence[Check]) -> str:
    """The human report: one ✓/✗ line per check, its fix indented below."""
    lines: list[str] = []
    for check in checks:
        lines.append(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(_indent(check.fix.splitlines()))
    problems = sum(not c.ok for c in checks)
    if problems:
        lines.append(f"{problems} problem{'s' if problems != 1 else ''} found.")
    else:
        lines.append(f"All {len(checks)} checks passed.")
    return "\n".join(lines)
