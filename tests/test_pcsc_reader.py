"""PcscReader against a real pcscd with virtual (vpcd) readers and cards.

The parsing helpers are tested with plain values first; the tests marked
``system`` run a private pcscd (see tests/pcscd_fixture.py) and skip without
root, pcscd or the vpcd driver (fail with ``REQUIRE_ALL=1``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware import pcsc
from hardware.errors import HardwareError, InvalidUID, ReaderUnavailable
from hardware.pcsc import (
    CardPresence,
    PcscReader,
    list_pcsc_readers,
    no_reader_message,
    pcsc_error,
    pick_reader,
    uid_from_response,
)
from hardware.reader import CardTap, open_reader
from tests.pcscd_fixture import Pcscd, pcscd, pcscd_stopped  # noqa: F401 (fixtures)
from tests.vpcd_card import VirtualCard

REPO = Path(__file__).resolve().parents[1]
system = pytest.mark.system

# Fast loops so that the suite stays short; the defaults are 1 s.
FAST = dict(poll_timeout=0.3, retry_interval=0.2)
TAP_TIMEOUT = 5.0


def wait_until(predicate: Callable[[], bool], timeout: float = 8.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


# -- pure parsing ----------------------------------------------------------------
@pytest.mark.parametrize(
    "readers, match, expected",
    [
        ([], None, None),
        ([], "ACR", None),
        (["ACS ACR122U PICC Interface 00 00"], None, "ACS ACR122U PICC Interface 00 00"),
        (["A 00 00", "B 00 00"], None, "A 00 00"),
        (["ACS ACR122U 00 00", "ACS ACR1252 1S CL Reader [PICC] 01 00"], "acr1252", "ACS ACR1252 1S CL Reader [PICC] 01 00"),
        (["ACS ACR122U 00 00", "ACS ACR1252 1S CL Reader [PICC] 01 00"], "ACR122", "ACS ACR122U 00 00"),
        (["Virtual PCD 00 00", "Virtual PCD 00 01"], "pcd 00 01", "Virtual PCD 00 01"),
        (["Virtual PCD 00 00"], "OMNIKEY", None),
    ],
)
def test_pick_reader(readers: list[str], match: str | None, expected: str | None) -> None:
    assert pick_reader(readers, match) == expected


@pytest.mark.parametrize(
    "readers, match, expected",
    [
        ([], "ACR122", "no PC/SC reader matching 'ACR122' (readers: none)"),
        (["A 00 00", "B 00 00"], "ACR122", "no PC/SC reader matching 'ACR122' (readers: 'A 00 00', 'B 00 00')"),
        ([], None, "no PC/SC reader found (is it plugged in? readers: none)"),
    ],
)
def test_no_reader_message(readers: list[str], match: str | None, expected: str) -> None:
    assert no_reader_message(readers, match) == expected


@pytest.mark.parametrize(
    "response, uid",
    [
        ([0x04, 0xA1, 0xB2, 0xC3, 0x90, 0x00], "04A1B2C3"),
        ([0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x90, 0x00], "04A1B2C3D4E5F6"),
        (list(range(1, 11)) + [0x90, 0x00], "0102030405060708090A"),
    ],
)
def test_uid_from_response(response: list[int], uid: str) -> None:
    assert uid_from_response(response) == uid


@pytest.mark.parametrize(
    "response",
    [
        [],
        [0x90],
        [0x90, 0x00],  # no UID at all
        [0x6A, 0x81],  # function not supported
        [0x04, 0xA1, 0xB2, 0xC3, 0x63, 0x00],  # data but an error status
        [0x04, 0xA1, 0xB2, 0x90, 0x00],  # 3 bytes is no UID length
    ],
)
def test_uid_from_response_refuses(response: list[int]) -> None:
    with pytest.raises(InvalidUID):
        uid_from_response(response)


@given(st.sampled_from([4, 7, 8, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_uid_from_response_round_trip(uid: bytes) -> None:
    assert uid_from_response(list(uid) + [0x90, 0x00]) == uid.hex().upper()


EMPTY, PRESENT, MUTE = pcsc.SCARD_STATE_EMPTY, pcsc.SCARD_STATE_PRESENT, pcsc.SCARD_STATE_MUTE


def ev(state: int, count: int) -> int:
    """dwEventState with pcsc-lite's event counter in the high word."""
    return (count << 16) | state


@pytest.mark.parametrize(
    "states, taps",
    [
        ([ev(EMPTY, 0)], [False]),
        ([ev(EMPTY, 0), ev(PRESENT, 1)], [False, True]),
        # left on the reader: the same state again and again
        ([ev(PRESENT, 1), ev(PRESENT, 1), ev(PRESENT, 1)], [True, False, False]),
        ([ev(PRESENT, 1), ev(EMPTY, 2), ev(PRESENT, 3)], [True, False, True]),
        # removed and put back between two polls: only the counter tells
        ([ev(PRESENT, 1), ev(PRESENT, 3)], [True, True]),
        # mute (no ATR): no UID to read until it answers
        ([ev(PRESENT | MUTE, 1), ev(PRESENT, 1)], [False, True]),
        ([ev(PRESENT | pcsc.SCARD_STATE_CHANGED, 1)], [True]),
    ],
)
def test_card_presence(states: list[int], taps: list[bool]) -> None:
    presence = CardPresence()
    assert [presence.update(state) for state in states] == taps


def test_card_presence_across_reconnect() -> None:
    presence = CardPresence()
    assert presence.update(ev(PRESENT, 1)) and presence.accept("04A1B2C3")
    # pcscd restarts while the card lies on the reader: the same card is no tap
    presence.restart()
    assert presence.update(ev(PRESENT, 1))
    assert not presence.accept("04A1B2C3")
    # ... another card in its place is
    presence.restart()
    assert presence.update(ev(PRESENT, 1))
    assert presence.accept("DEADBEEF")
    # ... and once the reader was seen empty, the same card is a new tap
    presence.restart()
    assert not presence.update(ev(EMPTY, 2))
    assert presence.update(ev(PRESENT, 3))
    assert presence.accept("DEADBEEF")
    # a presentation whose UID could not be read is no tap
    assert not presence.update(ev(PRESENT, 3))
    assert presence.update(ev(PRESENT, 5)) and not presence.accept(None)


@pytest.mark.parametrize(
    "code, kind, text",
    [
        (0x8010001D, ReaderUnavailable, "pcscd is not running (start it: systemctl start pcscd)"),
        (0x8010001D - 0x100000000, ReaderUnavailable, "pcscd is not running"),  # signed
        (0x8010001E, ReaderUnavailable, "pcscd stopped (start it: systemctl start pcscd)"),
        (0x80100003, ReaderUnavailable, "pcscd is not running"),  # stale context
        (0x8010002E, ReaderUnavailable, "no PC/SC reader found"),
        (0x80100017, ReaderUnavailable, "went away (unplugged?)"),
        (0x80100009, ReaderUnavailable, "went away (unplugged?)"),
        (0x80100027, ReaderUnavailable, "polkit"),
        (0x80100069, HardwareError, "PC/SC reader 'R 00 00'"),  # card removed
        (0x80100001, HardwareError, "0x80100001"),  # internal error
    ],
)
def test_pcsc_error_codes(code: int, kind: type, text: str) -> None:
    error = pcsc_error(code, reader="R 00 00")
    assert type(error) is kind
    assert text in str(error)
    assert error.hresult == code & 0xFFFFFFFF


@pytest.mark.parametrize(
    "code, lost_card",
    [(0x80100069, True), (0x80100066, True), (0x8010000B, True), (0x8010001D, False), (0x80100001, False)],
)
def test_card_failure_is_not_a_reader_failure(code: int, lost_card: bool) -> None:
    assert pcsc.is_card_failure(pcsc_error(code)) is lost_card
    assert pcsc.is_card_failure(InvalidUID("6A 81"))


def test_pcsc_error_from_pyscard_exceptions() -> None:
    Exceptions = importlib.import_module("smartcard.Exceptions")
    PCSCExceptions = importlib.import_module("smartcard.pcsc.PCSCExceptions")
    from smartcard import scard

    high = pcsc_error(Exceptions.CardConnectionException("connect failed", hresult=scard.SCARD_E_NO_SERVICE))
    low = pcsc_error(PCSCExceptions.EstablishContextException(scard.SCARD_E_NO_SERVICE))
    listed = pcsc_error(PCSCExceptions.ListReadersException(scard.SCARD_E_NO_READERS_AVAILABLE))
    plain = pcsc_error(Exceptions.SmartcardException("no code"))
    assert isinstance(high, ReaderUnavailable) and isinstance(high, OSError)
    assert isinstance(low, ReaderUnavailable) and "pcscd is not running" in str(low)
    assert isinstance(listed, ReaderUnavailable) and "no PC/SC reader" in str(listed)
    assert type(plain) is HardwareError and "no code" in str(plain)


def test_constants_match_pyscard() -> None:
    scard = importlib.import_module("smartcard.scard")
    names = [n for n in dir(pcsc) if n.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_", "SCARD_S_", "SCARD_STATE_"))]
    assert len(names) > 30
    for name in names:
        assert getattr(pcsc, name) == getattr(scard, name) & 0xFFFFFFFF, name


def test_importing_the_driver_does_not_import_pyscard() -> None:
    code = (
        "import sys, hardware, hardware.reader, hardware.pcsc; "
        "sys.exit('smartcard' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_open_reader_makes_a_pcsc_reader() -> None:
    reader = open_reader("pcsc", "gate", match="ACR122", poll_timeout=0.5)
    assert isinstance(reader, PcscReader)
    assert (reader.name, reader.driver, reader.match, reader.poll_timeout) == ("gate", "pcsc", "ACR122", 0.5)
    assert reader.closed and not reader.is_connected


# -- against pcscd -----------------------------------------------------------------
@pytest.fixture
def readers() -> Callable[..., PcscReader]:
    """Make PcscReaders that are closed at teardown."""
    made: list[PcscReader] = []

    def make(name: str = "gate", **options: object) -> PcscReader:
        reader = PcscReader(name, **{**FAST, **options})
        made.append(reader)
        return reader

    yield make
    for reader in made:
        reader.close()


def open_connected(reader: PcscReader) -> PcscReader:
    reader.open()
    wait_until(lambda: reader.is_connected, what=f"{reader} to connect ({reader.last_error})")
    return reader


@system
@pytest.mark.parametrize("uid", ["04A1B2C3D4E5F6", "deadbeef", "04:a1:b2:c3"])
def test_one_tap_per_presentation(pcscd: Pcscd, readers, uid: str) -> None:
    seen: list[CardTap] = []
    reader = open_connected(readers(match="00 00", when_tapped=seen.append))
    card = pcscd.card(uid).insert()
    tap = reader.wait_for_tap(TAP_TIMEOUT)
    assert tap is not None, pcscd.log_tail()
    expected = uid.replace(":", "").upper()
    assert (tap.uid, tap.reader, tap.technology) == (expected, "gate", "iso14443a")
    assert seen == [tap]
    assert card.apdus == [bytes.fromhex("FFCA000000")]
    assert reader.pcsc_name == "Virtual PCD 00 00"


@system
def test_remove_and_present_again_gives_a_new_tap(pcscd: Pcscd, readers) -> None:
    reader = open_connected(readers(match="00 00"))
    card = pcscd.card("04A1B2C3D4E5F6").insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3D4E5F6"
    pcscd.remove(card)
    card.insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3D4E5F6"
    pcscd.remove(card)
    card.uid = "DEADBEEF"
    card.insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "DEADBEEF"
    assert reader.wait_for_tap(0.5) is None


@system
def test_card_left_on_the_reader_taps_once(pcscd: Pcscd, readers) -> None:
    reader = open_connected(readers(match="00 00", poll_timeout=0.2))
    card = pcscd.card("04A1B2C3").insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3"
    # Many poll cycles and pcscd presence checks (every ~0.4 s) go by.
    assert reader.wait_for_tap(2.5) is None
    assert card.is_inserted and len(card.apdus) == 1


@system
def test_a_card_that_refuses_get_uid_is_no_tap(pcscd: Pcscd, readers) -> None:
    class NoUid(VirtualCard):
        def respond(self, apdu: bytes) -> bytes:
            return bytes.fromhex("6A81")

    reader = open_connected(readers(match="00 00"))
    odd = NoUid(pcscd.ports[0], "04A1B2C3").insert()
    try:
        wait_until(lambda: odd.apdus, what="the reader to ask the card for its UID")
        assert reader.wait_for_tap(0.5) is None
        assert reader.is_connected
    finally:
        pcscd.remove(odd)
    pcscd.card("DEADBEEF").insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "DEADBEEF"


@system
def test_pcscd_missing_at_start(pcscd_stopped: Pcscd, readers) -> None:
    states: list[bool] = []
    reader = readers(match="00 00", when_state_changed=lambda r, up: states.append(up))
    reader.open()  # must not raise
    wait_until(lambda: reader.last_error is not None, what="the reader to report down")
    assert not reader.is_connected
    assert reader.last_error == "pcscd is not running (start it: systemctl start pcscd)"
    assert reader.describe()["error"] == reader.last_error

    pcscd_stopped.start()
    wait_until(lambda: reader.is_connected, what="the reader to connect once pcscd runs")
    assert reader.last_error is None
    pcscd_stopped.card("04A1B2C3D4E5F6").insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3D4E5F6"
    assert states == [True]


@system
def test_pcscd_killed_and_restarted(pcscd: Pcscd, readers) -> None:
    states: list[bool] = []
    reader = open_connected(
        readers(match="00 00", when_state_changed=lambda r, up: states.append(up))
    )
    card = pcscd.card("04A1B2C3").insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3"

    pcscd.kill()
    wait_until(lambda: not reader.is_connected, what="the reader to report down")
    # The first word can be "lost the connection" (libpcsclite may see a reset
    # socket); the next retry finds no pcscd at all.
    assert "pcscd" in reader.last_error
    wait_until(
        lambda: reader.last_error == "pcscd is not running (start it: systemctl start pcscd)",
        what="the reader to say pcscd is not running",
    )
    wait_until(lambda: not card.is_inserted, what="the card to drop with pcscd")

    pcscd.start()
    wait_until(lambda: reader.is_connected, what="the reader to come back")
    card.uid = "04A1B2C3D4E5F6"
    card.insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3D4E5F6"
    pcscd.remove(card)
    card.insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3D4E5F6"
    assert states == [True, False, True]
    assert reader.wait_for_tap(0.3) is None


@system
def test_reader_missing_then_plugged_then_gone(pcscd_stopped: Pcscd, readers) -> None:
    # With vpcd the only way to add or remove a reader is a pcscd with
    # another configuration (pcscd does not rescan serial readers at run time).
    pcscd_stopped.start(readers=False)
    reader = readers(match="Virtual PCD 00 01")
    reader.open()
    wait_until(lambda: reader.last_error is not None, what="the reader to report down")
    assert not reader.is_connected
    assert reader.last_error.startswith("no PC/SC reader matching 'Virtual PCD 00 01' (readers: ")

    pcscd_stopped.kill()
    pcscd_stopped.start(readers=True)
    wait_until(lambda: reader.is_connected, what="the reader to be found")
    pcscd_stopped.card("DEADBEEF", slot=1).insert()
    assert reader.wait_for_tap(TAP_TIMEOUT).uid == "DEADBEEF"

    pcscd_stopped.stop()
    pcscd_stopped.start(readers=False)
    wait_until(
        lambda: (reader.last_error or "").startswith("no PC/SC reader matching"),
        what="the reader to report itself missing",
    )
    assert not reader.is_connected


@system
def test_no_matching_reader_names_the_readers_seen(pcscd: Pcscd, readers) -> None:
    reader = readers(match="ACR122")
    reader.open()
    wait_until(lambda: reader.last_error is not None, what="the reader to report down")
    assert not reader.is_connected
    assert "no PC/SC reader matching 'ACR122' (readers: " in reader.last_error
    assert "'Virtual PCD 00 00', 'Virtual PCD 00 01'" in reader.last_error


@system
def test_two_readers_each_get_their_own_taps(pcscd: Pcscd, readers) -> None:
    entrance = open_connected(readers("entrance", match="virtual pcd 00 00"))
    exit_ = open_connected(readers("exit", match="PCD 00 01"))
    assert (entrance.pcsc_name, exit_.pcsc_name) == pcscd.reader_names

    pcscd.card("04A1B2C3", slot=1).insert()
    tap = exit_.wait_for_tap(TAP_TIMEOUT)
    assert (tap.uid, tap.reader) == ("04A1B2C3", "exit")
    pcscd.card("04A1B2C3D4E5F6", slot=0).insert()
    tap = entrance.wait_for_tap(TAP_TIMEOUT)
    assert (tap.uid, tap.reader) == ("04A1B2C3D4E5F6", "entrance")
    assert entrance.wait_for_tap(0.5) is None
    assert exit_.wait_for_tap(0.1) is None


@system
def test_list_pcsc_readers(pcscd_stopped: Pcscd) -> None:
    with pytest.raises(ReaderUnavailable, match="pcscd is not running"):
        list_pcsc_readers()
    pcscd_stopped.start(readers=False)
    assert not set(pcscd_stopped.reader_names) & set(list_pcsc_readers())
    pcscd_stopped.stop()
    pcscd_stopped.start()
    assert set(pcscd_stopped.reader_names) <= set(list_pcsc_readers())


@system
def test_close_is_prompt_while_waiting_for_a_card(pcscd: Pcscd, readers) -> None:
    # A long poll timeout: only SCardCancel can make close() fast.
    reader = open_connected(readers(match="00 00", poll_timeout=30.0))
    time.sleep(0.2)  # let it settle in SCardGetStatusChange
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 3.0
    assert reader.closed and not reader.is_connected


@system
def test_close_is_prompt_while_pcscd_is_down(pcscd_stopped: Pcscd, readers) -> None:
    reader = readers(match="00 00", retry_interval=30.0)
    reader.open()
    wait_until(lambda: reader.last_error is not None, what="the reader to report down")
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 3.0
    assert reader.closed


@system
def test_context_manager_default_timings(pcscd: Pcscd) -> None:
    with PcscReader("gate", match="00 00") as reader:
        wait_until(lambda: reader.is_connected, what="the reader to connect")
        pcscd.card("04A1B2C3").insert()
        assert reader.wait_for_tap(TAP_TIMEOUT).uid == "04A1B2C3"
        started = time.monotonic()
    assert time.monotonic() - started < 3.0
    assert reader.closed
