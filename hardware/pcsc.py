"""PC/SC card readers through pcscd, with pyscard's low-level ``scard`` API.

=========================  ====================================================
reader                     how to connect
=========================  ====================================================
ACS ACR122U                USB; ``apt install pcscd libccid``. Blacklist the
                           kernel's ``pn533_usb``, ``pn533`` and ``nfc``
                           modules, or they grab the reader before pcscd.
ACS ACR1252U, ACR1552U     USB (CCID class); ``apt install pcscd libccid``.
Identiv uTrust 3700 F,     USB (CCID class); ``apt install pcscd libccid``.
HID OMNIKEY 5022 / 5427
any PC/SC contactless      USB CCID with pcscd; it must answer the Get UID
reader                     pseudo-APDU ``FF CA 00 00 00`` (``pcsc_scan`` and
                           ``attendance-edge doctor`` show what pcscd sees).
=========================  ====================================================

Several readers on one device: one :class:`PcscReader` each, with ``match=``
a part of the PC/SC reader name (``match="ACR1252"``); each runs its own
thread with its own PC/SC context.

Why not pyscard's ``CardMonitor``/``CardRequest``: their threads die for good
when pcscd stops. This driver keeps one loop that establishes a context,
waits with ``SCardGetStatusChange`` and, on any "service or reader gone"
error, releases the context and starts over every ``retry_interval``, so a
restarted pcscd or a re-plugged reader is picked up on its own.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

from hardware.errors import HardwareError, InvalidUID, ReaderUnavailable
from hardware.reader import CardReader, StateCallback, TapCallback
from hardware.uid import parse_get_uid_response

log = logging.getLogger(__name__)

#: Get UID pseudo-APDU (PC/SC part 3, 3.2.2.1.3): the reader answers it
#: itself, whatever the card, with the UID and ``90 00``.
GET_UID_APDU = [0xFF, 0xCA, 0x00, 0x00, 0x00]

# PC/SC constants (winscard.h / pcsclite.h). They are fixed by the standard,
# so they are spelled out here: the parsing below then runs without pyscard.
SCARD_S_SUCCESS = 0x00000000
SCARD_E_CANCELLED = 0x80100002
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_F_COMM_ERROR = 0x80100013
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_P_SHUTDOWN = 0x80100018
SCARD_E_CARD_UNSUPPORTED = 0x8010001C
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_ACCESS = 0x80100027
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_E_COMM_DATA_LOST = 0x8010002F
SCARD_E_SERVER_TOO_BUSY = 0x80100031
SCARD_W_UNSUPPORTED_CARD = 0x80100065
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069
SCARD_W_SECURITY_VIOLATION = 0x8010006A

SCARD_STATE_UNAWARE = 0x0000
SCARD_STATE_IGNORE = 0x0001
SCARD_STATE_CHANGED = 0x0002
SCARD_STATE_UNKNOWN = 0x0004
SCARD_STATE_UNAVAILABLE = 0x0008
SCARD_STATE_EMPTY = 0x0010
SCARD_STATE_PRESENT = 0x0020
SCARD_STATE_MUTE = 0x0200

PCSCD_DOWN_HINT = "pcscd is not running (start it: systemctl start pcscd)"
PCSCD_LOST = "lost the connection to pcscd (did it stop or restart?)"

#: pcscd itself is gone (stopped, killed, restarted: a context from before a
#: restart answers with an invalid handle).
_SERVICE_GONE = frozenset(
    {
        SCARD_E_NO_SERVICE,
        SCARD_E_SERVICE_STOPPED,
        SCARD_E_INVALID_HANDLE,
        SCARD_F_COMM_ERROR,
        SCARD_E_COMM_DATA_LOST,
        SCARD_P_SHUTDOWN,
        SCARD_E_SERVER_TOO_BUSY,
    }
)
#: The reader is gone (unplugged, or never there).
_READER_GONE = frozenset(
    {SCARD_E_NO_READERS_AVAILABLE, SCARD_E_READER_UNAVAILABLE, SCARD_E_UNKNOWN_READER}
)
#: pcscd refuses this user (polkit on Debian/Raspberry Pi OS).
_ACCESS_DENIED = frozenset({SCARD_E_NO_ACCESS, SCARD_W_SECURITY_VIOLATION})
#: The card left too soon or did not answer: this presentation is lost, the
#: reader is fine.
_CARD_FAILED = frozenset(
    {
        SCARD_E_NO_SMARTCARD,
        SCARD_W_REMOVED_CARD,
        SCARD_W_RESET_CARD,
        SCARD_W_UNRESPONSIVE_CARD,
        SCARD_W_UNPOWERED_CARD,
        SCARD_W_UNSUPPORTED_CARD,
        SCARD_E_CARD_UNSUPPORTED,
        SCARD_E_PROTO_MISMATCH,
        SCARD_E_NOT_TRANSACTED,
        SCARD_E_SHARING_VIOLATION,
        SCARD_E_TIMEOUT,
    }
)


# -- errors -------------------------------------------------------------------
def _error_message(code: int) -> str:
    try:
        from smartcard.scard import SCardGetErrorMessage
    except ImportError:
        return "PC/SC error"
    return str(SCardGetErrorMessage(code)).rstrip(".")


def pcsc_error(
    error: int | BaseException, *, reader: str | None = None
) -> HardwareError:
    """Translate a PC/SC result code or a pyscard exception.

    Returns (does not raise) :class:`ReaderUnavailable` when pcscd or the
    reader is gone, else :class:`HardwareError`; either carries the code as
    ``hresult``. Accepts pyscard's ``SmartcardException`` and
    ``BaseSCardException`` (both have ``hresult``) and plain codes, signed
    or not.
    """
    if isinstance(error, BaseException):
        code = getattr(error, "hresult", -1)
        detail = str(error)
    else:
        code = error
        detail = ""
    if not isinstance(code, int) or code == -1:
        exc: HardwareError = HardwareError(f"PC/SC error: {detail or error!r}")
        exc.hresult = None  # type: ignore[attr-defined]
        return exc
    code &= 0xFFFFFFFF  # pyscard gives codes signed or unsigned, by path
    detail = detail or f"{_error_message(code)} (0x{code:08X})"
    where = f"PC/SC reader {reader!r}" if reader else "PC/SC reader"
    if code == SCARD_E_SERVICE_STOPPED:
        exc = ReaderUnavailable("pcscd stopped (start it: systemctl start pcscd)")
    elif code in _SERVICE_GONE:
        exc = ReaderUnavailable(PCSCD_DOWN_HINT)
    elif code == SCARD_E_NO_READERS_AVAILABLE:
        exc = ReaderUnavailable("no PC/SC reader found (is it plugged in? pcsc_scan lists them)")
    elif code in _READER_GONE:
        exc = ReaderUnavailable(f"{where} went away (unplugged?): {detail}")
    elif code in _ACCESS_DENIED:
        exc = ReaderUnavailable(
            "pcscd refused access to this user (polkit): run the service as a "
            f"user allowed by the pcsc-lite polkit policy: {detail}"
        )
    else:
        exc = HardwareError(f"{where}: {detail}")
    exc.hresult = code  # type: ignore[attr-defined]
    return exc


def is_card_failure(error: HardwareError) -> bool:
    """True when ``error`` only lost one card presentation (the card left too
    soon, did not answer, or another program held it): the reader is fine."""
    return isinstance(error, InvalidUID) or getattr(error, "hresult", None) in _CARD_FAILED


def _scard() -> Any:
    """pyscard's ``smartcard.scard``, imported on first use so that importing
    :mod:`hardware` works on machines without pyscard or libpcsclite."""
    try:
        from smartcard import scard
    except ImportError as exc:
        raise ReaderUnavailable(
            "pyscard is not installed or libpcsclite1 is missing "
            "(pip install 'smart-card-attendance[edge]'; apt install libpcsclite1 pcscd): "
            f"{exc}"
        ) from exc
    return scard


def _call(function: Any, *args: Any, reader: str | None = None) -> Any:
    """Call a ``smartcard.scard`` function, translating what it raises.

    The low-level API mostly returns result codes, but its SWIG layer raises
    ``smartcard.scard.error`` and the higher layers raise pyscard's
    exceptions; callers see only :mod:`hardware.errors` types.
    """
    from smartcard.Exceptions import SmartcardException
    from smartcard.pcsc.PCSCExceptions import BaseSCardException
    from smartcard.scard import error as ScardError

    try:
        return function(*args)
    except (SmartcardException, BaseSCardException) as exc:
        raise pcsc_error(exc, reader=reader) from exc
    except ScardError as exc:
        raise pcsc_error(exc, reader=reader) from exc


def _check(code: int, *, reader: str | None = None) -> None:
    if code & 0xFFFFFFFF != SCARD_S_SUCCESS:
        raise pcsc_error(code, reader=reader)


def _establish(scard: Any) -> int:
    code, context = _call(scard.SCardEstablishContext, scard.SCARD_SCOPE_USER)
    _check(code)
    return context


def _release(scard: Any, context: int) -> None:
    try:
        scard.SCardReleaseContext(context)
    except Exception:  # pcscd may be gone already; the handle is dead either way
        log.debug("SCardReleaseContext failed", exc_info=True)


def _list_readers(scard: Any, context: int) -> list[str]:
    code, readers = _call(scard.SCardListReaders, context, [])
    if code & 0xFFFFFFFF == SCARD_E_NO_READERS_AVAILABLE:
        return []
    _check(code)
    return list(readers)


def list_pcsc_readers() -> list[str]:
    """Names of the readers pcscd sees now (possibly empty).

    Raises :class:`ReaderUnavailable` when pcscd is not reachable (or
    pyscard is missing), with a message saying how to fix it.
    """
    scard = _scard()
    context = _establish(scard)
    try:
        return _list_readers(scard, context)
    finally:
        _release(scard, context)


# -- parsing (pure) -----------------------------------------------------------
def pick_reader(readers: Sequence[str], match: str | None) -> str | None:
    """The first of ``readers`` whose name contains ``match`` (any case);
    the first reader when ``match`` is None; None when nothing fits."""
    if match is None:
        return readers[0] if readers else None
    wanted = match.casefold()
    for name in readers:
        if wanted in name.casefold():
            return name
    return None


def no_reader_message(readers: Sequence[str], match: str | None) -> str:
    """Why :func:`pick_reader` found nothing, naming what pcscd does see."""
    seen = ", ".join(repr(name) for name in readers) or "none"
    if match is None:
        return f"no PC/SC reader found (is it plugged in? readers: {seen})"
    return f"no PC/SC reader matching {match!r} (readers: {seen})"


def uid_from_response(response: Sequence[int]) -> str:
    """The normalised UID in a Get UID response (data + SW1 SW2).

    Raises :class:`InvalidUID` when the reader refused (``6A 81``, ``63 00``)
    or the reply is too short or not a UID length.
    """
    if len(response) < 2:
        raise InvalidUID(f"Get UID reply too short: {bytes(response).hex(' ').upper()!r}")
    return parse_get_uid_response(bytes(response[:-2]), response[-2], response[-1])


class CardPresence:
    """Turns successive reader states into card presentations.

    One presentation = one tap: a card left on the reader is reported once;
    taking it off and putting it back is a new one, even when both happened
    between two polls (pcsc-lite counts card insertions and removals in the
    high 16 bits of the event state). A card that lay on the reader while the
    reader or pcscd was away is not a new presentation either: after
    :meth:`restart`, the first card seen is compared by UID in :meth:`accept`.
    """

    def __init__(self) -> None:
        self.card_on = False
        """A card is on the reader and has been handled."""
        self._events: int | None = None
        self._uid: str | None = None
        self._carried_uid: str | None = None

    def restart(self) -> None:
        """The reader's states start over (new PC/SC context)."""
        self._carried_uid = self._uid if self.card_on else None
        self.card_on = False
        self._events = None
        self._uid = None

    def update(self, event_state: int) -> bool:
        """Feed ``dwEventState``; True when a card was (re)presented and its
        UID should be read."""
        present = bool(event_state & SCARD_STATE_PRESENT) and not (
            event_state & SCARD_STATE_MUTE  # on the reader but not answering: no UID
        )
        events = (event_state >> 16) & 0xFFFF
        replaced = self._events is not None and events != self._events
        new = present and (not self.card_on or replaced)
        self._events = events
        self.card_on = present
        if not present:
            self._uid = None
            self._carried_uid = None
        return new

    def accept(self, uid: str | None) -> bool:
        """Record the UID read for the presentation :meth:`update` announced
        (None when it could not be read); True when it is a new tap."""
        carried, self._carried_uid = self._carried_uid, None
        self._uid = uid
        return uid is not None and uid != carried


# -- the reader -----------------------------------------------------------------
class PcscReader(CardReader):
    """A contactless reader behind pcscd.

    ``match`` is a case-insensitive part of the PC/SC reader name (None: the
    first reader pcscd lists). ``poll_timeout`` bounds each wait for a card
    event and so how long :meth:`close` can take without
    ``SCardCancel``; ``retry_interval`` is the pause between attempts while
    pcscd or the reader is missing.
    """

    driver = "pcsc"

    def __init__(
        self,
        name: str = "pcsc",
        *,
        match: str | None = None,
        poll_timeout: float = 1.0,
        retry_interval: float = 1.0,
        when_tapped: TapCallback | None = None,
        when_state_changed: StateCallback | None = None,
    ) -> None:
        super().__init__(
            name, when_tapped=when_tapped, when_state_changed=when_state_changed
        )
        if poll_timeout <= 0 or retry_interval <= 0:
            raise ValueError("poll_timeout and retry_interval must be positive")
        self.match = match
        self.poll_timeout = poll_timeout
        self.retry_interval = retry_interval
        self.pcsc_name: str | None = None
        """PC/SC name of the reader in use, once found."""
        self._presence = CardPresence()
        self._context: int | None = None
        self._context_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(match=self.match, pcsc_name=self.pcsc_name)
        return info

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop, waking it from ``SCardGetStatusChange`` at once."""
        self._stop.set()
        with self._context_lock:
            context = self._context
            if context is not None:
                try:
                    _scard().SCardCancel(context)
                except Exception:  # only a shortcut: the poll timeout ends it too
                    log.debug("SCardCancel failed", exc_info=True)
        super().close(timeout)

    # -- background loop ---------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except ReaderUnavailable as exc:
                self._set_connected(False, str(exc))
            except HardwareError as exc:
                # An unexpected PC/SC error: a fresh context is the cure that
                # works for all of them, so it is handled like an outage.
                self._set_connected(False, str(exc))
            if self._sleep(self.retry_interval):
                break

    def _session(self) -> None:
        """One PC/SC context: find the reader, then watch it until something
        goes away (raises) or we are asked to stop (returns)."""
        scard = _scard()
        context = _establish(scard)
        with self._context_lock:
            self._context = context
        try:
            if self._stop.is_set():
                return
            readers = _list_readers(scard, context)
            reader = pick_reader(readers, self.match)
            if reader is None:
                raise ReaderUnavailable(no_reader_message(readers, self.match))
            self.pcsc_name = reader
            self._presence.restart()
            self._set_connected(True)
            try:
                self._watch(scard, context, reader)
            except ReaderUnavailable as exc:
                if getattr(exc, "hresult", None) in _ACCESS_DENIED:
                    # libpcsclite reports a connection reset as a security
                    # violation (a polkit refusal looks like that on the
                    # wire); on a context that was working, pcscd died.
                    lost = ReaderUnavailable(PCSCD_LOST)
                    lost.hresult = exc.hresult  # type: ignore[attr-defined]
                    raise lost from exc
                raise
        finally:
            with self._context_lock:
                self._context = None
            _release(scard, context)

    def _watch(self, scard: Any, context: int, reader: str) -> None:
        state = SCARD_STATE_UNAWARE
        timeout_ms = max(1, int(self.poll_timeout * 1000))
        while not self._stop.is_set():
            code, states = _call(
                scard.SCardGetStatusChange, context, timeout_ms, [(reader, state)],
                reader=reader,
            )
            code &= 0xFFFFFFFF
            if code in (SCARD_E_TIMEOUT, SCARD_E_CANCELLED):
                continue  # nothing happened, or close() woke us
            _check(code, reader=reader)
            event = states[0][1]
            if event & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_IGNORE):
                raise ReaderUnavailable(f"PC/SC reader {reader!r} went away (unplugged?)")
            # Waiting on the state just seen (event counter included) makes
            # the next call block until something differs from it.
            state = event & ~SCARD_STATE_CHANGED
            if self._presence.update(event):
                uid = self._read_uid(scard, context, reader)
                if self._presence.accept(uid):
                    self._emit(uid)
                elif uid is not None:
                    log.info("reader %s: card %s stayed on the reader; no new tap",
                             self.name, uid)

    def _read_uid(self, scard: Any, context: int, reader: str) -> str | None:
        """The UID of the card on ``reader``; None (logged) when this
        presentation could not be read. Raises when the reader is gone."""
        try:
            code, card, protocol = _call(
                scard.SCardConnect, context, reader, scard.SCARD_SHARE_SHARED,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1, reader=reader,
            )
            _check(code, reader=reader)
            try:
                pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
                code, response = _call(
                    scard.SCardTransmit, card, pci, GET_UID_APDU, reader=reader
                )
                _check(code, reader=reader)
                return uid_from_response(response)
            finally:
                try:
                    scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
                except Exception:  # the card is gone; nothing to give back
                    log.debug("SCardDisconnect failed", exc_info=True)
        except HardwareError as exc:
            if not is_card_failure(exc):
                raise
            # The person will see no "accepted" feedback and tap again.
            log.warning("reader %s: could not read the card: %s", self.name, exc)
            return None
