"""The card reader abstraction shared by every driver.

=============  =====================================  ===========================
driver         module                                 readers
=============  =====================================  ===========================
``pcsc``       :mod:`hardware.pcsc` (pyscard)         any PC/SC reader: ACR122U,
                                                      ACR1252U, Identiv, ...
``nfc``        :mod:`hardware.nfc` (nfcpy)            PN531/PN533/PN532, RC-S380,
                                                      ACR122U (limited), ``udp``
``sim``        :mod:`hardware.sim`                    none: taps come from
                                                      ``attendance-edge tap UID``
``fake``       :class:`FakeReader` (this module)      none: unit tests only
=============  =====================================  ===========================

A reader runs its own background thread once :meth:`CardReader.open` is
called. Each card presentation calls ``when_tapped`` with a :class:`CardTap`
and also lands in a queue read by :meth:`CardReader.wait_for_tap`. Drivers
report whether the hardware is reachable through :attr:`CardReader.is_connected`
and the ``when_state_changed`` callback; they reconnect on their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from hardware.errors import HardwareError
from hardware.uid import normalise_uid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardTap:
    """One card presentation as the driver saw it."""

    uid: str
    """Normalised UID (uppercase hex, no separators)."""
    reader: str
    """Name of the reader that saw the card."""
    technology: str = "iso14443a"
    """``iso14443a``, ``felica`` or ``unknown``."""
    mono_ns: int = field(default_factory=time.monotonic_ns)
    """``time.monotonic_ns()`` when the driver saw the card."""


TapCallback = Callable[[CardTap], None]
StateCallback = Callable[["CardReader", bool], None]


class CardReader:
    """Base class of the card readers.

    Subclasses implement :meth:`_run` (the loop of the background thread),
    which must return soon after :attr:`_stop` is set, and call
    :meth:`_emit` for each card and :meth:`_set_connected` when the
    hardware comes or goes.
    """

    driver = "base"

    def __init__(
        self,
        name: str = "reader",
        *,
        when_tapped: TapCallback | None = None,
        when_state_changed: StateCallback | None = None,
    ) -> None:
        self.name = name
        self.when_tapped = when_tapped
        self.when_state_changed = when_state_changed
        self._connected = False
        self._last_error: str | None = None
        # Bounded (newest kept): a service that only uses when_tapped never reads it.
        self._taps: deque[CardTap] = deque(maxlen=64)
        self._tap_ready = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------
    def open(self) -> "CardReader":
        """Start the background thread. Never raises for missing hardware:
        the reader reports itself down and keeps trying."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run_guarded, name=f"reader-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread and release the hardware."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._set_connected(False)

    def __enter__(self) -> "CardReader":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._thread is None

    # -- state ---------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        """True while the reader hardware (and its service) is reachable."""
        return self._connected

    @property
    def last_error(self) -> str | None:
        """Why the reader is down, in words a technician can act on."""
        return self._last_error

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary for ``attendance-edge status``."""
        return {
            "name": self.name,
            "driver": self.driver,
            "connected": self.is_connected,
            "error": None if self.is_connected else self.last_error,
        }

    def wait_for_tap(self, timeout: float | None = None) -> CardTap | None:
        """Block until the next tap (or ``timeout`` seconds); None on timeout."""
        with self._tap_ready:
            if not self._tap_ready.wait_for(lambda: self._taps, timeout):
                return None
            return self._taps.popleft()

    # -- for subclasses --------------------------------------------------------
    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a driver bug must not kill the service silently
            log.exception("reader %s: driver loop crashed", self.name)
            self._set_connected(False, f"driver crashed: {exc}")

    def _queue(self, tap: CardTap) -> None:
        with self._tap_ready:
            self._taps.append(tap)
            self._tap_ready.notify()

    def _emit(self, uid: bytes | str, technology: str = "iso14443a") -> CardTap:
        tap = CardTap(uid=normalise_uid(uid), reader=self.name, technology=technology)
        self._queue(tap)
        callback = self.when_tapped
        if callback is not None:
            callback(tap)
        return tap

    def _set_connected(self, connected: bool, error: str | None = None) -> None:
        with self._state_lock:
            if not connected:
                self._last_error = error or self._last_error or "closed"
            else:
                self._last_error = None
            changed = connected != self._connected
            self._connected = connected
        if changed:
            if connected:
                log.info("reader %s (%s): connected", self.name, self.driver)
            else:
                log.warning(
                    "reader %s (%s): down: %s", self.name, self.driver, self._last_error
                )
            callback = self.when_state_changed
            if callback is not None:
                try:
                    callback(self, connected)
                except Exception:
                    log.exception("reader %s: when_state_changed failed", self.name)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when asked to stop."""
        return self._stop.wait(seconds)

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "down"
        return f"<{type(self).__name__} {self.name!r} {state}>"


class FakeReader(CardReader):
    """A reader for unit tests: ``reader.tap("04A1B2C3")`` presents a card.

    Taps are delivered synchronously on the caller's thread, so a test sees
    their effects as soon as :meth:`tap` returns.
    """

    driver = "fake"

    def __init__(self, name: str = "fake", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def open(self) -> "FakeReader":
        self._thread = threading.current_thread()  # marks it open; no loop
        self._set_connected(True)
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._thread = None
        self._set_connected(False)

    def tap(self, uid: bytes | str, technology: str = "iso14443a") -> CardTap:
        """Present a card with ``uid`` to the reader."""
        if self.closed:
            raise HardwareError(f"reader {self.name} is closed")
        return self._emit(uid, technology)

    def unplug(self, error: str = "unplugged") -> None:
        """Pretend the reader was unplugged."""
        self._set_connected(False, error)

    def plug(self) -> None:
        """Pretend the reader came back."""
        self._set_connected(True)


def open_reader(driver: str, name: str = "reader", **options: Any) -> CardReader:
    """Create (not yet open) the reader for ``driver``.

    ``driver`` is ``pcsc``, ``nfc``, ``sim`` or ``fake``; ``options`` are the
    driver's keyword arguments (``match=`` for pcsc, ``path=`` for nfc). The
    choice is always explicit: nothing falls back to the fake.
    """
    if driver == "pcsc":
        from hardware.pcsc import PcscReader

        return PcscReader(name, **options)
    if driver == "nfc":
        from hardware.nfc import NfcReader

        return NfcReader(name, **options)
    if driver == "sim":
        from hardware.sim import SimReader

        return SimReader(name, **options)
    if driver == "fake":
        return FakeReader(name, **options)
    raise HardwareError(f"unknown reader driver {driver!r}; use pcsc, nfc or sim")
