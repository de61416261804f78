"""Simulated reader, for demos and for sites waiting for their hardware.

==========  ===============================================================
reader      how to connect
==========  ===============================================================
``sim``     nothing: ``attendance-edge tap 04A1B2C3`` sends a tap to the
            running edge over its control socket, which calls
            :meth:`SimReader.inject`.
==========  ===============================================================
"""

from __future__ import annotations

import threading
from typing import Any

from hardware.errors import HardwareError
from hardware.reader import CardReader, CardTap
from hardware.uid import normalise_uid


class SimReader(CardReader):
    """A reader whose taps are injected by software.

    Unlike :class:`~hardware.reader.FakeReader` it is meant for a running
    service: the edge exposes :meth:`inject` on its local control socket.
    """

    driver = "sim"

    def __init__(self, name: str = "sim", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)

    def open(self) -> "SimReader":
        self._thread = threading.current_thread()
        self._set_connected(True)
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._thread = None
        self._set_connected(False)

    def inject(self, uid: bytes | str, technology: str = "iso14443a") -> Any:
        """Deliver a tap as if a card had been presented.

        The tap is delivered on the caller's thread; returns what the
        ``when_tapped`` callback returned (the edge's ``TapResult``), or the
        :class:`CardTap` when there is no callback.
        """
        if self.closed:
            raise HardwareError(f"reader {self.name} is not open")
        tap = CardTap(uid=normalise_uid(uid), reader=self.name, technology=technology)
        self._queue(tap)
        callback = self.when_tapped
        return callback(tap) if callback is not None else tap
