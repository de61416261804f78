"""nfcpy reader driver: talks to the reader chip directly, without PC/SC.

===========================  =====================  ==========================================
reader                       ``path``               how to connect
===========================  =====================  ==========================================
Sony RC-S380 (PaSoRi)        ``usb:054c:06c3``      USB. Reads ISO 14443-A cards and FeliCa.
                             (older: ``06c1``)      Needs a udev rule (group ``plugdev``).
SCM SCL3711, PN533 boards    ``usb:04e6:5591``,     USB. Blacklist the kernel modules that
                             ``usb:04cc:2533``      grab it: ``pn533_usb``, ``pn533``, ``nfc``.
ACS ACR122U                  ``usb:072f:2200``      USB, *limited*: nfcpy tunnels through the
                                                    PC/SC firmware. Prefer the ``pcsc``
                                                    driver; else stop ``pcscd`` and blacklist
                                                    as above.
PN532 breakout on the Pi     ``tty:S0:pn532`` or    Board in UART/HSU mode; PN532 TX → GPIO15
UART                         ``tty:AMA0:pn532``     (pin 10), RX → GPIO14 (pin 8), GND, VCC.
                                                    ``enable_uart=1``, serial console off;
                                                    ``ttyAMA0`` is Bluetooth's unless
                                                    ``dtoverlay=disable-bt``. User in
                                                    ``dialout``.
PN532 on a USB-serial        ``tty:USB0:pn532``     As above, through the adapter.
adapter
Another nfcpy process        ``udp:HOST:PORT``      The peer emulates a card on ``PORT``.
(tests)
===========================  =====================  ==========================================

``usb`` alone opens the first supported USB reader that is free; ``usb:BBB:DDD``
(bus and device number from ``lsusb``) picks one exactly but changes on each
replug, so prefer vendor:product in configuration.

The reader polls for ISO 14443-A (106 kbps) and FeliCa (212 kbps). A card
yields one tap per presentation: it must leave the field before it is read
again. ISO 14443-A cards give their UID (4, 7 or 10 bytes), FeliCa cards their
IDm (8 bytes).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
from typing import Any

from hardware.errors import InvalidUID, ReaderUnavailable
from hardware.reader import CardReader, StateCallback, TapCallback

log = logging.getLogger(__name__)

#: Technologies polled for: ISO 14443-A at 106 kbps and FeliCa at 212 kbps.
#: 106B is left out: no card we accept needs it and each technology costs
#: polling time.
TARGETS = ("106A", "212F")

#: Pause between two polling rounds. Short enough that a tap feels instant
#: and that :meth:`CardReader.close` returns promptly, long enough not to
#: keep the RF field and the USB bus busy all the time.
POLL_PAUSE = 0.2

# The device paths nfcpy understands (see nfc.clf.ContactlessFrontend.open).
_PATH_PATTERNS = (
    re.compile(r"^usb(:[0-9a-fA-F]{4}(:[0-9a-fA-F]{4})?)?$"),
    re.compile(r"^usb:[0-9]{1,3}(:[0-9]{1,3})?$"),
    re.compile(r"^(tty|com):[^:]+(:[a-z0-9_]+)?$"),
    re.compile(r"^udp(:[^:]*(:[0-9]{1,5})?)?$"),
)

_PATH_HELP = (
    "use usb, usb:VVVV:PPPP (vendor:product), usb:BBB:DDD (bus:device), "
    "tty:PORT:DRIVER (e.g. tty:S0:pn532) or udp:HOST:PORT"
)

_BLACKLIST_HINT = "blacklist pn533_usb, pn533, nfc"


def is_valid_path(path: str) -> bool:
    """True if ``path`` has the shape of an nfcpy device path."""
    return any(p.match(path) for p in _PATH_PATTERNS)


def _import_nfc() -> Any:
    """Import nfcpy on demand, so the rest of the system runs without it."""
    try:
        import nfc
        import nfc.clf
    except ImportError as exc:
        raise ReaderUnavailable(
            f"nfcpy is not installed ({exc}); install it with: pip install nfcpy"
        ) from exc
    return nfc


def _pn533_module_loaded() -> bool:
    # The kernel's NFC stack claims PN533-based readers (and the ACR122U)
    # before nfcpy can, which looks to nfcpy exactly like "no reader".
    return os.path.isdir("/sys/module/pn533_usb")


def _usb_readers() -> list[tuple[int, int, int, int, str]]:
    """(vendor, product, bus, device, nfcpy driver) of supported USB readers.

    Enumerates the bus only; nothing is opened, so a reader in use by a
    running edge is not disturbed.
    """
    _import_nfc()
    from nfc.clf import device as nfc_device
    from nfc.clf import transport

    try:
        found = transport.USB.find("usb") or []
    except Exception as exc:  # libusb missing or broken
        raise ReaderUnavailable(
            f"cannot list USB devices ({exc}); install libusb: "
            "apt install libusb-1.0-0"
        ) from exc
    readers = []
    for vid, pid, bus, dev in found:
        driver = nfc_device.usb_device_map.get((vid, pid))
        if driver is not None:
            readers.append((vid, pid, bus, dev, driver))
    return readers


def _usb_access_denied(path: str) -> tuple[int, int, int, int] | None:
    """A supported reader matching ``path`` that this user may not open.

    nfcpy silently skips such readers for partial paths like ``usb`` and then
    reports "no such device", which would send a technician looking for a
    cable fault instead of a udev rule.
    """
    try:
        readers = _usb_readers()
    except ReaderUnavailable:
        return None
    parts = path.split(":")[1:]
    for vid, pid, bus, dev, _driver in readers:
        if len(parts) >= 1 and len(parts[0]) == 4:
            if int(parts[0], 16) != vid or (len(parts) > 1 and int(parts[1], 16) != pid):
                continue
        elif len(parts) >= 1 and parts[0].isdigit():
            if int(parts[0]) != bus or (len(parts) > 1 and int(parts[1]) != dev):
                continue
        node = f"/dev/bus/usb/{bus:03d}/{dev:03d}"
        if os.path.exists(node) and not os.access(node, os.R_OK | os.W_OK):
            return vid, pid, bus, dev
    return None


def _permission_hint(path: str, vid: int | None = None, pid: int | None = None) -> str:
    if path.startswith(("tty", "com")):
        return (
            f"permission denied for the serial port of {path!r} "
            "(add the service user to the dialout group, then log in again)"
        )
    ids = ""
    if vid is not None and pid is not None:
        ids = f'ATTRS{{idVendor}}=="{vid:04x}", ATTRS{{idProduct}}=="{pid:04x}", '
    return (
        f"permission denied for the reader at {path!r} (add a udev rule such as "
        f'SUBSYSTEM=="usb", {ids}GROUP="plugdev", MODE="0660" in '
        "/etc/udev/rules.d/60-nfc-reader.rules, add the service user to plugdev, "
        "then replug the reader)"
    )


def explain_error(path: str, exc: BaseException) -> str:
    """Say why the reader at ``path`` failed with ``exc``, and what to do.

    The words are for the technician reading ``attendance-edge status`` or
    ``doctor``; the nfcpy exception alone ("No such device") rarely says
    which of the usual causes applies.
    """
    if not is_valid_path(path):
        return f"{path!r} is not an nfcpy device path; {_PATH_HELP}"
    nfc_error = _nfc_error_class()
    if nfc_error is not None and isinstance(exc, nfc_error):
        return (
            f"the reader at {path!r} did not answer as expected "
            f"({type(exc).__name__}: {exc}); unplug it and plug it back in"
        )
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host in {path!r} ({exc})"
    if isinstance(exc, (ValueError, TypeError)):
        return f"{path!r} is not a usable nfcpy device path ({exc}); {_PATH_HELP}"
    code = getattr(exc, "errno", None)
    if code == errno.ENODEV:
        if path.startswith("usb"):
            denied = _usb_access_denied(path)
            if denied is not None:
                vid, pid, bus, dev = denied
                return _permission_hint(f"usb:{bus:03d}:{dev:03d}", vid, pid)
            text = (
                f"no reader at {path!r} (is it plugged in? is the kernel "
                f"pn533_usb module holding it? {_BLACKLIST_HINT})"
            )
            if _pn533_module_loaded():
                text += "; pn533_usb is loaded right now"
            return text
        if path.startswith(("tty", "com")):
            return (
                f"no serial port for {path!r} (for the Pi UART: enable_uart=1 "
                "and the serial console off in raspi-config; for a USB-serial "
                "adapter: is it plugged in? see ls /dev/ttyUSB*)"
            )
        return f"no reader at {path!r}"
    if code == errno.EACCES:
        return _permission_hint(path)
    if code == errno.EBUSY:
        return (
            f"the reader at {path!r} is in use by another process or a kernel "
            f"driver (stop the other program, e.g. pcscd holds an ACR122U; "
            f"{_BLACKLIST_HINT})"
        )
    if code == errno.ETIMEDOUT:
        return (
            f"no answer from a reader at {path!r} (wrong port or driver name? "
            "for a PN532 on the Pi UART: board switched to UART/HSU mode, TX and "
            "RX crossed, enable_uart=1, serial console off)"
        )
    if code == errno.ENOENT:
        return f"no such device for {path!r} ({exc}); check the port name"
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return (
            f"cannot use the reader at {path!r}: {reason} "
            "(unplug it and plug it back in)"
        )
    return f"cannot use the reader at {path!r}: {type(exc).__name__}: {exc}"


def _nfc_error_class() -> type[BaseException] | None:
    try:
        import nfc.clf
    except ImportError:
        return None
    return nfc.clf.Error


def translate_error(path: str, exc: BaseException) -> ReaderUnavailable:
    """nfcpy/OS exception → :class:`ReaderUnavailable` with an actionable text.

    The original ``errno`` is kept on the result so callers may still branch
    on it without importing nfcpy.
    """
    if isinstance(exc, ReaderUnavailable):
        return exc
    error = ReaderUnavailable(explain_error(path, exc))
    error.errno = getattr(exc, "errno", None)
    return error


def _open_frontend(path: str) -> Any:
    """Open nfcpy's ContactlessFrontend on ``path`` or raise ReaderUnavailable."""
    nfc = _import_nfc()
    if not is_valid_path(path):
        raise translate_error(path, ValueError(path))
    try:
        return nfc.ContactlessFrontend(path)
    except Exception as exc:  # nfcpy raises IOError, serial, socket, usb1 errors
        raise translate_error(path, exc) from exc


def list_nfc_devices() -> list[str]:
    """Device paths (``usb:BBB:DDD``) of nfcpy-supported USB readers present.

    Only the USB bus is enumerated; no reader is opened, so this is safe while
    the edge service is running. Serial (``tty:``) readers cannot be found
    without talking to every serial port, so they are not listed: try
    :func:`probe` on the configured path. Raises :class:`ReaderUnavailable`
    when USB cannot be enumerated at all (libusb missing).
    """
    return [f"usb:{bus:03d}:{dev:03d}" for _vid, _pid, bus, dev, _drv in _usb_readers()]


def probe(path: str) -> str:
    """Open and close the reader at ``path``; return its description.

    For example ``"SONY RC-S380/P NFC Port-100 v1.11 at usb:001:004"``.
    Raises :class:`ReaderUnavailable` with a hint when it cannot be opened
    (which includes being in use by the running edge service).
    """
    clf = _open_frontend(path)
    try:
        device = clf.device
        return str(device) if device is not None else str(clf)
    finally:
        clf.close()


def tag_uid(tag: Any) -> tuple[bytes, str]:
    """The identifying bytes of an activated nfcpy tag and its technology.

    FeliCa (Type 3) cards are identified by their IDm; everything found at
    106 kbps type A by the UID nfcpy collected during anticollision.
    """
    if getattr(tag, "type", None) == "Type3Tag":
        return bytes(tag.idm), "felica"
    target = getattr(tag, "target", None)
    brty = getattr(target, "brty", "") or ""
    technology = "iso14443a" if brty.endswith("A") else "unknown"
    return bytes(tag.identifier), technology


class NfcReader(CardReader):
    """A reader driven by nfcpy (see the module table for supported readers).

    ``path`` is any nfcpy device path; it is read again at each (re)open
    attempt. While the reader is missing or fails, :attr:`is_connected` is
    False, :attr:`last_error` says what to do, and the reader retries every
    ``retry_interval`` seconds.
    """

    driver = "nfc"

    def __init__(
        self,
        name: str = "nfc",
        *,
        path: str = "usb",
        retry_interval: float = 1.0,
        when_tapped: TapCallback | None = None,
        when_state_changed: StateCallback | None = None,
    ) -> None:
        super().__init__(
            name, when_tapped=when_tapped, when_state_changed=when_state_changed
        )
        self.path = path
        self.retry_interval = retry_interval
        self._clf: Any = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["path"] = self.path
        return info

    # -- background loop -------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            path = self.path
            try:
                clf = _open_frontend(path)
            except ReaderUnavailable as exc:
                self._set_connected(False, str(exc))
                if self._sleep(self.retry_interval):
                    return
                continue
            self._clf = clf
            try:
                self._set_connected(True)
                error = self._read_cards(clf, path)
            finally:
                self._clf = None
                try:
                    clf.close()
                except Exception:  # the device may already be gone
                    log.debug("reader %s: close failed", self.name, exc_info=True)
            if error is None:
                return  # asked to stop
            self._set_connected(False, error)
            if self._sleep(self.retry_interval):
                return

    def _read_cards(self, clf: Any, path: str) -> str | None:
        """Poll until asked to stop (→ None) or the device fails (→ why)."""
        options = {
            "targets": list(TARGETS),
            "on-connect": self._on_connect,
            # One sensing round per call, so ``terminate`` (our pause and stop
            # check) runs between rounds.
            "iterations": 1,
            # The edge sounds its own buzzer once the tap is recorded; a
            # reader beep at detection would promise what is not yet true.
            "beep-on-connect": False,
        }
        while not self._stop.is_set():
            try:
                result = clf.connect(rdwr=options, terminate=self._pause_or_stop)
            except Exception as exc:  # nfcpy raises ENODEV before its own try
                log.debug("reader %s: connect failed", self.name, exc_info=True)
                return explain_error(path, exc)
            if result is False:
                # nfcpy swallows the IOError (USB unplugged, serial gone) and
                # returns False; the reopen attempt will say precisely why.
                return f"lost contact with the reader at {path!r}; trying to reopen it"
            # True: a card came and left. None: stop was requested.
        return None

    def _pause_or_stop(self) -> bool:
        # nfcpy calls this between polling rounds and while waiting for a card
        # to leave: it paces the loop and ends it as soon as close() is called.
        return self._stop.wait(POLL_PAUSE)

    def _on_connect(self, tag: Any) -> bool:
        try:
            uid, technology = tag_uid(tag)
            self._emit(uid, technology)
        except InvalidUID as exc:
            log.warning("reader %s: ignoring card %s: %s", self.name, tag, exc)
        except Exception:
            # A failing when_tapped must not stop the reader.
            log.exception("reader %s: handling a tap failed", self.name)
        # True tells nfcpy to wait until the card has left the field before
        # returning, so a card held on the reader makes a single tap.
        return True
