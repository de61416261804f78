"""A virtual contactless card for tests, speaking the vpcd wire protocol.

vpcd is the reader driver of vsmartcard that runs inside pcscd: each of its
slots listens on a TCP port and a "card" is whatever connects to that port.
Connecting is inserting the card, closing the socket is removing it.

The wire protocol (https://frankmorgner.github.io/vsmartcard/virtualsmartcard/api.html):
every frame is a 2-byte big-endian length and a payload. A 1-byte payload is
a control code from vpcd (0 power off, 1 power on, 2 reset, 4 ask for the
ATR, which is the only one answered); any longer payload is a command APDU,
answered with a response APDU.

This card answers the PC/SC pseudo-APDU Get UID (``FF CA 00 00 00``) with its
UID and ``90 00``, and anything else with ``6D 00`` (instruction not
supported). We keep our own card because Debian's ``vicc`` crashes on
``FF CA``.

    card = VirtualCard(port, "04A1B2C3D4E5F6")
    card.insert()      # the reader sees a card
    card.remove()      # and now it does not
    card.uid = "DEADBEEF"
"""

from __future__ import annotations

import socket
import struct
import threading
import time

#: ATR of a MIFARE Classic 1K as a PC/SC contactless reader builds it
#: (PC/SC part 3, 3.1.3.2.3); what an ACR122U reports for a typical badge.
CONTACTLESS_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

GET_UID = bytes.fromhex("FFCA000000")
SW_OK = b"\x90\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4


class VirtualCard:
    """A card that can be put on (:meth:`insert`) and taken off (:meth:`remove`)
    the vpcd slot listening on ``port``.

    ``uid`` is hex (4, 7 or 10 bytes, separators allowed) or bytes and may be
    changed at any time; the next Get UID answers with the new value.
    """

    def __init__(
        self,
        port: int,
        uid: bytes | str,
        *,
        host: str = "127.0.0.1",
        atr: bytes = CONTACTLESS_ATR,
    ) -> None:
        self.port = port
        self.host = host
        self.atr = atr
        self.uid = uid
        self.apdus: list[bytes] = []
        """Every command APDU received, in order (for assertions)."""
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- the card's data -------------------------------------------------------
    @property
    def uid(self) -> bytes:
        return self._uid

    @uid.setter
    def uid(self, value: bytes | str) -> None:
        if isinstance(value, str):
            value = bytes.fromhex(value.replace(":", "").replace(" ", ""))
        self._uid = bytes(value)

    @property
    def is_inserted(self) -> bool:
        """True while the socket to vpcd is open (pcscd dying removes the card)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def respond(self, apdu: bytes) -> bytes:
        """The response APDU to ``apdu``."""
        if apdu == GET_UID:
            return self._uid + SW_OK
        return SW_INS_NOT_SUPPORTED

    # -- insert / remove -------------------------------------------------------
    def insert(self, timeout: float = 5.0) -> "VirtualCard":
        """Connect to vpcd, retrying while its port is not open yet.

        The kernel completes the TCP handshake before vpcd calls accept(),
        so returning does not mean pcscd has seen the card: that happens at
        its next presence poll (about every 400 ms).
        """
        if self.is_inserted:
            raise RuntimeError("card is already inserted")
        self.remove()  # drop a socket pcscd closed on its side (it died)
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=1.0)
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(
                        f"vpcd is not listening on {self.host}:{self.port}: {exc}"
                    ) from exc
                time.sleep(0.05)
        sock.settimeout(None)
        with self._lock:
            self._sock = sock
            self._thread = threading.Thread(
                target=self._serve, args=(sock,), name=f"vicc-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def remove(self) -> None:
        """Take the card off the reader (close the socket); idempotent."""
        with self._lock:
            sock, self._sock = self._sock, None
            thread, self._thread = self._thread, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            except OSError:
                pass
            sock.close()
        if thread is not None:
            thread.join(2.0)

    def __enter__(self) -> "VirtualCard":
        return self.insert()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "inserted" if self.is_inserted else "removed"
        return f"<VirtualCard {self._uid.hex().upper()} port={self.port} {state}>"

    # -- protocol ----------------------------------------------------------------
    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exactly(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                payload = _recv_exactly(sock, length)
                if payload is None:
                    return
                if length == 1:
                    if payload[0] == CTRL_ATR:
                        _send_frame(sock, self.atr)
                    # power off/on and reset expect no answer
                    continue
                self.apdus.append(payload)
                _send_frame(sock, self.respond(payload))
        except OSError:
            return  # removed, or pcscd went away


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """``size`` bytes, or None at end of stream."""
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _send_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(struct.pack(">H", len(payload)) + payload)
