"""NfcReader against real nfcpy: a card emulated by another nfcpy process over
nfcpy's ``udp`` driver (see tests/nfc_tag_emulator.py), and real errors.

Over udp nfcpy waits 1 s for an answer per technology polled, so one polling
round (106A + 212F) takes about 2 s there; the deadlines below allow for it.
On a USB reader a round takes milliseconds.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hardware.errors import HardwareError, ReaderUnavailable
from hardware.nfc import (
    NfcReader,
    explain_error,
    list_nfc_devices,
    probe,
    tag_uid,
    translate_error,
)
from hardware.reader import CardReader, open_reader
from tests.syspart import need

EMULATOR = Path(__file__).with_name("nfc_tag_emulator.py")
FELICA_IDM = "012e3c4d5e6f7081"  # lower case on purpose: taps are upper case


@pytest.fixture(autouse=True)
def _need_nfcpy() -> None:
    need(importlib.util.find_spec("nfc") is not None, "nfcpy is not installed")


def free_udp_port() -> int:
    # The emulator binds the port (the udp driver's listening side); ask the
    # kernel for one nobody uses so tests can run in parallel.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Emulator:
    """A card presented by another process (nfc_tag_emulator.py)."""

    def __init__(self, port: int, card: str, ident: str, **options: Any) -> None:
        args = [sys.executable, str(EMULATOR), "--port", str(port)]
        for key, value in options.items():
            args += [f"--{key}", str(value)]
        self.proc = subprocess.Popen(
            args + [card, ident],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def finish(self, timeout: float = 20.0) -> tuple[int, str]:
        """Wait for the emulator to exit; its return code and output."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            pytest.fail(f"tag emulator did not finish within {timeout}s:\n{out}")
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(port: int, card: str, ident: str, **options: Any) -> Emulator:
        emu = Emulator(port, card, ident, **options)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.kill()


@pytest.fixture
def make_reader() -> Iterator[Callable[..., NfcReader]]:
    """NfcReaders that record ``.states``: (connected, last_error) per change."""
    readers: list[NfcReader] = []

    def make(path: str, **kwargs: Any) -> NfcReader:
        states: list[tuple[bool, str | None]] = []

        def on_state(reader: CardReader, connected: bool) -> None:
            states.append((connected, reader.last_error))

        reader = NfcReader("door", path=path, when_state_changed=on_state, **kwargs)
        reader.states = states  # type: ignore[attr-defined]
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


def drain(reader: NfcReader) -> list[Any]:
    taps = []
    while (tap := reader.wait_for_tap(0)) is not None:
        taps.append(tap)
    return taps


# -- taps from emulated cards ---------------------------------------------------


def test_felica_card_held_on_the_reader_is_one_tap_with_its_idm(make_reader, emulator):
    port = free_udp_port()
    emu = emulator(port, "felica", FELICA_IDM, hold=2.0)
    reader = make_reader(f"udp:localhost:{port}").open()

    tap = reader.wait_for_tap(timeout=10)

    assert tap is not None, "no tap from the emulated FeliCa card"
    assert tap.uid == "012E3C4D5E6F7081"
    assert tap.technology == "felica"
    assert tap.reader == "door"
    code, out = emu.finish()
    assert code == 0, out
    # The card stayed 2 s after activation: still one tap, not one per poll.
    assert drain(reader) == []
    assert reader.is_connected
    assert reader.states == [(True, None)]


def test_two_presentations_make_two_taps(make_reader, emulator):
    port = free_udp_port()
    emu = emulator(port, "felica", FELICA_IDM, times=2, hold=0.3)
    reader = make_reader(f"udp:localhost:{port}").open()

    first = reader.wait_for_tap(timeout=20)
    second = reader.wait_for_tap(timeout=20)

    code, out = emu.finish()
    assert code == 0, out
    assert [t and (t.uid, t.technology) for t in (first, second)] == [
        ("012E3C4D5E6F7081", "felica"),
        ("012E3C4D5E6F7081", "felica"),
    ]
    assert second.mono_ns - first.mono_ns > 1_000_000_000  # removal + pause between
    assert drain(reader) == []


# nfcpy's connect(card=...) can only emulate Type 3 tags, but its udp driver
# can be a 106A target at the lower listen() level, which the emulator uses
# to act as a Type 2 tag: the reader side is then nfcpy's real 14443-3
# anticollision (cascade levels included) and its Type2Tag class.
@pytest.mark.parametrize("uid", ["5A2B3C4D", "05a1b2c3d4e5f6"])
def test_iso14443a_card_gives_its_uid(make_reader, emulator, uid):
    port = free_udp_port()
    emu = emulator(port, "type2", uid)
    reader = make_reader(f"udp:localhost:{port}").open()

    tap = reader.wait_for_tap(timeout=10)

    assert tap is not None, "no tap from the emulated Type 2 tag"
    assert (tap.uid, tap.technology) == (uid.upper(), "iso14443a")
    code, out = emu.finish()
    assert code == 0, out
    assert drain(reader) == []


def test_a_failing_when_tapped_does_not_stop_the_reader(make_reader, emulator):
    port = free_udp_port()
    calls: list[str] = []

    def broken(tap: Any) -> None:
        calls.append(tap.uid)
        raise RuntimeError("recorder bug")

    emu = emulator(port, "type2", "05A1B2C3D4E5F6", times=2, hold=0.2, pause=1.0)
    reader = make_reader(f"udp:localhost:{port}", when_tapped=broken).open()

    taps = [reader.wait_for_tap(timeout=10), reader.wait_for_tap(timeout=10)]

    assert [t and t.uid for t in taps] == ["05A1B2C3D4E5F6"] * 2
    assert calls == ["05A1B2C3D4E5F6"] * 2
    assert reader.is_connected
    assert emu.finish()[0] == 0


# -- missing, appearing and vanishing readers -------------------------------------


def test_missing_usb_reader_is_down_with_a_hint_and_closes_promptly(make_reader):
    reader = make_reader("usb:ffff:ffff", retry_interval=0.2)
    reader.open()  # must not raise

    assert wait_until(lambda: reader.last_error is not None, 3)
    assert not reader.is_connected
    error = reader.last_error
    assert "no reader at 'usb:ffff:ffff'" in error
    assert "pn533_usb" in error and "blacklist" in error
    assert reader.describe() == {
        "name": "door",
        "driver": "nfc",
        "connected": False,
        "error": error,
        "path": "usb:ffff:ffff",
    }
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 3
    assert reader.closed
    assert reader.states == []  # never came up


def test_malformed_path_is_reported_not_raised(make_reader):
    reader = make_reader("serial:/dev/ttyS0").open()
    assert wait_until(lambda: reader.last_error is not None, 3)
    assert "is not an nfcpy device path" in reader.last_error
    assert "tty:PORT:DRIVER" in reader.last_error


def test_close_is_prompt_while_polling_over_udp(make_reader):
    reader = make_reader(f"udp:localhost:{free_udp_port()}").open()
    assert wait_until(lambda: reader.is_connected, 3)
    time.sleep(0.3)  # let it get into a polling round

    started = time.monotonic()
    reader.close()

    # Bounded by one udp polling round (2 x 1 s nfcpy timeouts); milliseconds
    # on hardware.
    assert time.monotonic() - started < 3.5
    assert not reader.is_connected
    assert [connected for connected, _ in reader.states] == [True, False]


def test_reader_that_appears_later_is_picked_up(make_reader, emulator):
    reader = make_reader("usb:ffff:ffff", retry_interval=0.2).open()
    assert wait_until(lambda: reader.last_error is not None, 3)
    assert not reader.is_connected

    # The path is read at each reopen attempt; a udp "device" that now exists
    # stands in for a reader plugged in later.
    port = free_udp_port()
    reader.path = f"udp:localhost:{port}"
    assert wait_until(lambda: reader.is_connected, 3)
    assert reader.last_error is None
    emu = emulator(port, "felica", FELICA_IDM, hold=0.2)

    tap = reader.wait_for_tap(timeout=10)
    assert tap is not None and tap.uid == "012E3C4D5E6F7081"
    assert emu.finish()[0] == 0
    assert reader.states == [(True, None)]


def test_vanished_device_reports_down_then_reconnects(make_reader, emulator):
    port = free_udp_port()
    reader = make_reader(f"udp:localhost:{port}", retry_interval=0.3).open()
    assert wait_until(lambda: reader.is_connected and reader._clf is not None, 3)

    # Close the reader's real nfcpy frontend under its feet: nfcpy then fails
    # every call with IOError(ENODEV), just as after a USB unplug. (The udp
    # driver itself cannot vanish: it is only a socket.)
    reader._clf.close()

    assert wait_until(lambda: len(reader.states) >= 3, 6), reader.states
    (up, _), (down, why), (up_again, error_after) = reader.states[:3]
    assert (up, down, up_again) == (True, False, True)
    assert f"'udp:localhost:{port}'" in why
    assert "lost contact" in why or "no reader" in why
    assert error_after is None and reader.last_error is None

    # And it reads cards again after reconnecting.
    emu = emulator(port, "type2", "5A2B3C4D", hold=0.2)
    tap = reader.wait_for_tap(timeout=10)
    assert tap is not None and tap.uid == "5A2B3C4D"
    assert emu.finish()[0] == 0


def test_open_reader_builds_an_nfc_reader():
    reader = open_reader("nfc", "gate", path="udp:localhost:9")
    assert isinstance(reader, NfcReader)
    assert (reader.name, reader.driver, reader.path) == ("gate", "nfc", "udp:localhost:9")
    assert reader.closed


# -- error translation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "expected"),
    [
        ("usb", errno.ENODEV, ["no reader at 'usb'", "plugged in", "pn533_usb", "blacklist"]),
        ("usb:054c:06c3", errno.EACCES, ["permission denied", "udev", "plugdev"]),
        ("usb:001:004", errno.EBUSY, ["in use by another process", "pcscd"]),
        ("tty:AMA0:pn532", errno.EACCES, ["permission denied", "dialout"]),
        ("tty:AMA0:pn532", errno.ENODEV, ["no serial port", "enable_uart"]),
        ("tty:S0:pn532", errno.ETIMEDOUT, ["no answer", "TX and RX crossed"]),
        ("usb:054c:06c3", errno.EIO, ["Input/output error", "plug it back in"]),
    ],
)
def test_errno_is_translated_into_a_hint(path, code, expected):
    # The same exception nfcpy raises: IOError(errno, os.strerror(errno)).
    vendor_error = IOError(code, os.strerror(code))

    error = translate_error(path, vendor_error)

    assert isinstance(error, ReaderUnavailable)
    assert isinstance(error, HardwareError) and isinstance(error, OSError)
    assert error.errno == code
    for words in expected:
        assert words in str(error), str(error)


def test_real_nfcpy_errors_are_translated():
    import nfc
    import nfc.clf

    with pytest.raises(OSError) as missing:
        nfc.ContactlessFrontend("usb:ffff:ffff")
    assert missing.value.errno == errno.ENODEV
    assert "no reader at 'usb:ffff:ffff'" in str(translate_error("usb:ffff:ffff", missing.value))

    with pytest.raises(socket.gaierror) as unresolved:
        nfc.ContactlessFrontend("udp:no-such-host.invalid:5")
    text = explain_error("udp:no-such-host.invalid:5", unresolved.value)
    assert text.startswith("cannot resolve the host in 'udp:no-such-host.invalid:5'")

    text = explain_error("usb:054c:06c3", nfc.clf.TimeoutError("no data received"))
    assert "did not answer as expected" in text and "TimeoutError" in text

    with pytest.raises(ValueError) as bad_port:
        nfc.ContactlessFrontend("udp:localhost:port")
    assert "not an nfcpy device path" in explain_error("udp:localhost:port", bad_port.value)


def test_translate_keeps_reader_unavailable_as_is():
    original = ReaderUnavailable("already explained")
    assert translate_error("usb", original) is original


def test_probe_describes_or_explains():
    assert probe(f"udp:localhost:{free_udp_port()}").startswith("Linux IP-Stack UDP at udp:")
    with pytest.raises(ReaderUnavailable, match="no reader at 'usb:ffff:ffff'"):
        probe("usb:ffff:ffff")
    with pytest.raises(ReaderUnavailable, match="not an nfcpy device path"):
        probe("pcsc:ACR122")


def test_list_nfc_devices_gives_usb_paths():
    paths = list_nfc_devices()
    assert isinstance(paths, list)
    for path in paths:  # none on a machine without a reader
        assert len(path) == len("usb:001:004") and path.startswith("usb:")
        assert explain_error(path, IOError(errno.EBUSY, "busy"))


# -- UIDs from real nfcpy tag objects ---------------------------------------------


def test_tag_uid_of_nfcpy_tags():
    from nfc.clf import RemoteTarget
    from nfc.tag.tt2 import Type2Tag
    from nfc.tag.tt3 import Type3Tag

    felica = Type3Tag(None, RemoteTarget(
        "212F", sensf_res=bytearray.fromhex("01" "012E3C4D5E6F7081" "0301FFFFFFFFFFFF" "12FC")))
    mifare = Type2Tag(None, RemoteTarget(
        "106A", sens_res=bytearray.fromhex("4400"), sel_res=bytearray.fromhex("00"),
        sdd_res=bytearray.fromhex("04A1B2C3D4E5F6")))

    assert tag_uid(felica) == (bytes.fromhex("012E3C4D5E6F7081"), "felica")
    assert tag_uid(mifare) == (bytes.fromhex("04A1B2C3D4E5F6"), "iso14443a")
