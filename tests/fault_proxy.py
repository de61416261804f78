"""A loopback TCP proxy that injects network faults between an HTTP client and a server.

It sits between the edge's ``requests`` session and a real server so that tests can
show what the sync client does when the network misbehaves at the worst moment:
before the server saw a request, after it processed one, halfway through a reply.

    with FaultProxy(("127.0.0.1", server_port), mode="drop_after_request") as proxy:
        requests.post(proxy.url + "/api/v1/taps", json=batch)   # ConnectionError...
        assert proxy.stats["drop_after_request"] == 1           # ...but the server stored it

Modes (``proxy.mode``, settable at any time):

=======================  ==========================================================
``pass``                 forward everything both ways
``drop_before_request``  close the client connection as soon as a request starts;
                         the server never sees it
``drop_after_request``   forward the whole request, wait for the first byte of the
                         reply, then close the client side without forwarding it:
                         the server processed the request, the client sees an error
``drop_mid_reply``       forward the request and only part of the reply, then close:
                         status line and headers plus half of a Content-Length body;
                         status line and headers only for a chunked body; and, when
                         the reply has no body, half of the status line (cutting in
                         the headers would not do: an HTTP/1.1 client reads a reply
                         cut there as complete, with an empty body)
``reset``                read the whole request without forwarding it, then answer
                         with a TCP RST (``SO_LINGER`` 0)
``delay``                hold the reply for ``delay_seconds`` before forwarding it
``blackhole``            accept the request and never answer, until the client gives
                         up or the proxy is closed
``random``               each request draws one of ``weights`` (default pass 40 %,
                         the three drops 20 % each) from a ``random.Random(seed)``
=======================  ==========================================================

Faults apply **per request**, not per connection: the mode is drawn when the first
byte of each request arrives, so a keep-alive connection that carried several good
requests can fail on the next one, as a real network does, and 200 requests in
``random`` mode show the configured mix however the client pools its connections.
Given the same seed and the same sequence of requests the draws are the same.

To find where requests start and end the proxy parses just enough HTTP/1.1: the head
up to ``\\r\\n\\r\\n``, then a ``Content-Length`` body or a chunked body up to its last
chunk and trailers. Replies are matched to the latest request, which holds for every
client that does not pipeline (urllib3 and so ``requests`` never do); an interim
``100 Continue`` would count as the start of the reply, which is fine for ``requests``
as it never sends ``Expect: 100-continue``. The upstream is
read when a connection first forwards a request, so ``proxy.upstream = (host, port)``
applies to new connections; existing ones stay with the server they were opened to.

``proxy.stats`` counts what happened, so a test can assert that the fault it wanted
really took place (see :attr:`FaultProxy.stats`).

The proxy listens on 127.0.0.1 only. Each connection is served by one thread with a
selector over both sockets, so one thread owns each socket (no descriptor is closed
under another thread's feet) and :meth:`FaultProxy.close` only has to wake them.
"""

from __future__ import annotations

import logging
import random
import selectors
import socket
import struct
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import NamedTuple

__all__ = ["FaultProxy", "MODES", "FAULT_MODES", "DEFAULT_WEIGHTS"]

log = logging.getLogger(__name__)

#: The modes a request can be given; ``random`` draws one of these per request.
FAULT_MODES: tuple[str, ...] = (
    "pass",
    "drop_before_request",
    "drop_after_request",
    "drop_mid_reply",
    "reset",
    "delay",
    "blackhole",
    "http_503",
    "http_429",
)
#: Replies the proxy gives itself, without asking the server (an overloaded
#: server or a load balancer in front of it). The request is never forwarded.
_CANNED = {
    "http_503": (503, "Service Unavailable", "unavailable"),
    "http_429": (429, "Too Many Requests", "too_many_requests"),
}
#: Retry-After (seconds) in the canned replies.
CANNED_RETRY_AFTER = 1
#: Everything ``proxy.mode`` accepts.
MODES: tuple[str, ...] = FAULT_MODES + ("random",)
#: The mix ``random`` uses unless told otherwise.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "pass": 40,
    "drop_before_request": 20,
    "drop_after_request": 20,
    "drop_mid_reply": 20,
}

_LOOPBACK = "127.0.0.1"
_RECV_SIZE = 65536
# Stop reading from one side while this much is waiting for the other side, so a
# slow or stalled reader (a held ``delay`` reply) cannot make the proxy buffer forever.
_HIGH_WATER = 1 << 20
# A head bigger than this is not HTTP we understand; stop framing and just forward.
_MAX_HEAD = 64 * 1024
_CONNECT_TIMEOUT = 1.0
# close() must finish within 2 s; threads wake at once, this is only a backstop.
_JOIN_TIMEOUT = 1.5


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """Return the start line and the headers (names lower-cased) of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _body_framing(headers: Mapping[str, str]) -> tuple[bool, int]:
    """Return (chunked, content_length) from parsed headers; -1 when no length is given."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return True, -1
    try:
        return False, int(headers.get("content-length", "-1"))
    except ValueError:
        return False, -1


class _Segment(NamedTuple):
    """Consecutive bytes of one request, as :meth:`_RequestFramer.feed` returns them."""

    data: bytes
    starts: bool
    ends: bool
    method: str | None


class _RequestFramer:
    """Splits the client's byte stream into the HTTP/1.1 requests it carries.

    :meth:`feed` returns segments, each inside one request: ``starts`` when the
    segment holds the request's first byte, ``ends`` when it holds its last,
    ``method`` once the request's head has been read. Anything it cannot parse turns the rest of the stream into one
    request that never ends, which the proxy then simply forwards.
    """

    def __init__(self) -> None:
        self._state = "idle"
        self._head = bytearray()
        self._line = bytearray()
        self._remaining = 0
        #: Method of the request being read, or of the last one read.
        self.method: str | None = None

    def feed(self, data: bytes) -> list[_Segment]:
        segments: list[_Segment] = []
        seg_start, starts, i, n = 0, False, 0, len(data)
        while i < n:
            state = self._state
            if state == "idle":
                self._state, self.method = "head", None
                seg_start, starts = i, True
                continue
            if state == "opaque":
                i = n
            elif state == "head":
                # The terminator may straddle two reads: look at the head's last 3 bytes too.
                tail = bytes(self._head[-3:])
                found = (tail + data[i:]).find(b"\r\n\r\n")
                if found < 0:
                    self._head += data[i:]
                    i = n
                    if len(self._head) > _MAX_HEAD:
                        self._state = "opaque"
                    continue
                end = i + found + 4 - len(tail)
                self._head += data[i:end]
                i = end
                first, headers = _parse_head(bytes(self._head))
                self._head.clear()
                self.method = first.split(" ", 1)[0]
                chunked, length = _body_framing(headers)
                if chunked:
                    self._state = "chunk_size"
                elif length > 0:
                    self._state, self._remaining = "body", length
                else:
                    self._state = "done"
            elif state in ("body", "chunk_data"):
                take = min(self._remaining, n - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "done" if state == "body" else "chunk_size"
            else:  # chunk_size or trailers: line by line
                newline = data.find(b"\n", i)
                if newline < 0:
                    self._line += data[i:]
                    i = n
                    continue
                self._line += data[i : newline + 1]
                i = newline + 1
                line = bytes(self._line).strip()
                self._line.clear()
                if state == "trailers":
                    if not line:
                        self._state = "done"
                else:
                    try:
                        size = int(line.split(b";", 1)[0], 16)
                    except ValueError:
                        size = -1
                    if size < 0:
                        self._state = "opaque"
                    elif size == 0:
                        self._state = "trailers"
                    else:
                        # The chunk's data is followed by its own CRLF.
                        self._state, self._remaining = "chunk_data", size + 2
            if self._state == "done":
                segments.append(_Segment(data[seg_start:i], starts, True, self.method))
                self._state, seg_start, starts = "idle", i, False
        if seg_start < n:
            segments.append(_Segment(data[seg_start:n], starts, False, self.method))
        return segments


def _mid_reply_cut(buffered: bytes, request_method: str | None) -> int | None:
    """Where ``drop_mid_reply`` cuts a reply whose first bytes are ``buffered``.

    ``None`` while the head is not complete yet. The cut always leaves the client
    with something it must reject (see the module docstring), never a reply that
    merely looks short.
    """
    head_end = buffered.find(b"\r\n\r\n")
    if head_end < 0:
        return len(buffered) // 2 if len(buffered) > _MAX_HEAD else None
    head_len = head_end + 4
    first, headers = _parse_head(buffered[:head_end])
    try:
        status = int(first.split(" ", 2)[1])
    except (IndexError, ValueError):
        status = 0
    has_body = request_method != "HEAD" and status >= 200 and status not in (204, 304)
    chunked, length = _body_framing(headers)
    if has_body and chunked:
        return head_len
    if has_body and length > 0:
        return head_len + length // 2
    # "HTTP/1.1 2": a status line without its code is rejected by every client.
    space = first.find(" ")
    return space + 2 if space >= 0 else max(1, len(first) // 2)


def _canned_reply(mode: str) -> bytes:
    status, reason, code = _CANNED[mode]
    body = ('{"error": {"code": "%s", "message": "injected by the fault proxy"}}' % code).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Retry-After: {CANNED_RETRY_AFTER}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


class _Exchange:
    """One request on a connection and what the proxy does to it and its reply."""

    __slots__ = ("mode", "delay", "method", "reply_started", "reply_buf")

    def __init__(self, mode: str, delay: float) -> None:
        self.mode = mode
        self.delay = delay
        self.method: str | None = None
        self.reply_started = False
        self.reply_buf = bytearray()  # drop_mid_reply: the reply until the cut is known


class _Connection:
    """Serves one accepted client connection in its own thread."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self._proxy = proxy
        self._client: socket.socket | None = client
        self._upstream: socket.socket | None = None
        self._framer = _RequestFramer()
        self._current: _Exchange | None = None
        self._c2u = bytearray()
        self._u2c = bytearray()
        self._hold_until = 0.0
        self._client_eof = False
        self._upstream_eof = False
        self._upstream_write_shut = False
        self._close_after_flush = False
        self._sel = selectors.DefaultSelector()
        self._masks: dict[socket.socket, int] = {}

    # -- the loop ------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._sel.register(self._proxy._wake_r, selectors.EVENT_READ, "wake")
            self._loop()
        except OSError as exc:
            # A peer vanishing mid-send is what this proxy is for; nothing to report.
            log.debug("fault proxy connection ended: %r", exc)
        finally:
            self._sel.close()
            for sock in (self._client, self._upstream):
                if sock is not None:
                    sock.close()

    def _loop(self) -> None:
        while not self._proxy._closing.is_set():
            now = time.monotonic()
            held = bool(self._u2c) and now < self._hold_until
            client_mask = 0
            if not self._client_eof and len(self._c2u) < _HIGH_WATER:
                client_mask |= selectors.EVENT_READ
            if self._u2c and not held:
                client_mask |= selectors.EVENT_WRITE
            self._want(self._client, client_mask)
            if self._upstream is not None:
                upstream_mask = 0
                if not self._upstream_eof and len(self._u2c) < _HIGH_WATER:
                    upstream_mask |= selectors.EVENT_READ
                if self._c2u:
                    upstream_mask |= selectors.EVENT_WRITE
                self._want(self._upstream, upstream_mask)

            for key, events in self._sel.select(self._hold_until - now if held else None):
                if key.data == "wake":
                    return
                if key.fileobj is self._client:
                    if events & selectors.EVENT_WRITE and not self._send_to_client():
                        return
                    if events & selectors.EVENT_READ and not self._read_client():
                        return
                elif key.fileobj is self._upstream:
                    if events & selectors.EVENT_WRITE and not self._send_to_upstream():
                        return
                    if events & selectors.EVENT_READ and not self._read_upstream():
                        return
                if self._client is None:  # reset: the client socket is gone
                    return

            if self._close_after_flush and not self._u2c:
                return
            if self._client_eof and not self._c2u:
                if self._upstream is None or self._upstream_eof:
                    return
                if not self._upstream_write_shut:
                    # Pass the client's half-close on; the server answers and then closes.
                    self._upstream.shutdown(socket.SHUT_WR)
                    self._upstream_write_shut = True
            if self._upstream_eof and not self._u2c:
                return

    def _want(self, sock: socket.socket | None, mask: int) -> None:
        if sock is None:
            return
        old = self._masks.get(sock, 0)
        if mask == old:
            return
        if not mask:
            self._sel.unregister(sock)
        elif not old:
            self._sel.register(sock, mask)
        else:
            self._sel.modify(sock, mask)
        self._masks[sock] = mask

    # -- client side ---------------------------------------------------------------

    def _read_client(self) -> bool:
        """Handle bytes from the client; False when the connection is to end now."""
        assert self._client is not None
        try:
            data = self._client.recv(_RECV_SIZE)
        except BlockingIOError:
            return True
        if not data:
            self._client_eof = True
            return True
        for segment, starts, ends, method in self._framer.feed(data):
            if starts:
                mode, delay = self._proxy._draw()
                self._current = _Exchange(mode, delay)
                if mode == "drop_before_request":
                    self._proxy._count("drop_before_request")
                    return False
                if mode in ("pass", "blackhole"):
                    self._proxy._count(mode)
                if mode in ("pass", "delay", "drop_after_request", "drop_mid_reply"):
                    if self._upstream is None and not self._connect_upstream():
                        return False
            exchange = self._current
            assert exchange is not None
            if method is not None:
                exchange.method = method
            if exchange.mode in ("reset", "blackhole", *_CANNED):
                if ends and exchange.mode == "reset":
                    self._reset_client()
                    return False
                if ends and exchange.mode in _CANNED:
                    self._u2c += _canned_reply(exchange.mode)
                    self._proxy._count(exchange.mode)
                    self._close_after_flush = True
                continue  # swallowed: never forwarded
            self._c2u += segment
        return True

    def _send_to_client(self) -> bool:
        assert self._client is not None
        try:
            sent = self._proxy._send_counted(self._client, self._u2c, "bytes_upstream_to_client")
        except BlockingIOError:
            return True
        except OSError:
            return False
        del self._u2c[:sent]
        return True

    def _reset_client(self) -> None:
        assert self._client is not None
        # Linger on with a zero timeout makes close() send RST instead of FIN.
        self._client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Counted first: the test that sees the RST may read the stats straight away.
        self._proxy._count("reset")
        if self._masks.pop(self._client, 0):
            self._sel.unregister(self._client)
        self._client.close()
        self._client = None

    # -- upstream side -------------------------------------------------------------

    def _connect_upstream(self) -> bool:
        host, port = self._proxy.upstream
        try:
            upstream = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
        except OSError as exc:
            log.debug("fault proxy: upstream %s:%s unreachable: %r", host, port, exc)
            self._proxy._count("upstream_errors")
            return False
        upstream.setblocking(False)
        # Without it Nagle holds a request's body until the head is ACKed: 40 ms a request.
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream = upstream
        return True

    def _send_to_upstream(self) -> bool:
        assert self._upstream is not None
        try:
            sent = self._proxy._send_counted(self._upstream, self._c2u, "bytes_client_to_upstream")
        except BlockingIOError:
            return True
        except OSError:
            return False
        del self._c2u[:sent]
        return True

    def _read_upstream(self) -> bool:
        assert self._upstream is not None
        try:
            data = self._upstream.recv(_RECV_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        exchange = self._current
        if not data:
            self._upstream_eof = True
            if exchange is not None and exchange.mode == "drop_mid_reply" and exchange.reply_buf:
                # The server ended the reply before our cut: forward at most the cut.
                cut = _mid_reply_cut(bytes(exchange.reply_buf), exchange.method)
                self._cut_reply(exchange, cut if cut is not None else len(exchange.reply_buf) // 2)
            return True
        if exchange is None:  # bytes the server sent unasked: nothing to fault
            self._u2c += data
            return True
        if exchange.mode in ("blackhole", "reset"):
            return True  # these never answer, not even with what the server volunteers
        if not exchange.reply_started:
            exchange.reply_started = True
            if exchange.mode == "drop_after_request":
                # The server has started answering, so it has processed the request.
                self._proxy._count("drop_after_request")
                return False
            if exchange.mode == "delay":
                self._hold_until = time.monotonic() + exchange.delay
                self._proxy._count("delay")
        if exchange.mode == "drop_mid_reply":
            if self._close_after_flush:
                return True  # already cut: discard the rest
            exchange.reply_buf += data
            cut = _mid_reply_cut(bytes(exchange.reply_buf), exchange.method)
            if cut is not None and len(exchange.reply_buf) >= cut:
                self._cut_reply(exchange, cut)
            return True
        self._u2c += data
        return True

    def _cut_reply(self, exchange: _Exchange, cut: int) -> None:
        self._u2c += exchange.reply_buf[:cut]
        exchange.reply_buf.clear()
        self._close_after_flush = True
        self._upstream_eof = True  # stop reading: the rest is never forwarded
        self._proxy._count("drop_mid_reply")


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that forwards HTTP/1.1 to ``upstream`` and injects faults.

    ``upstream`` is the ``(host, port)`` of the real server; ``mode`` one of
    :data:`MODES`; ``seed`` seeds the ``random.Random`` that ``random`` mode draws from;
    ``delay_seconds`` is how long ``delay`` holds each reply; ``weights`` maps fault
    modes to relative weights for ``random`` (default :data:`DEFAULT_WEIGHTS`).

    The proxy listens as soon as it is made (:attr:`port`, :attr:`url`). ``mode``,
    ``weights``, ``delay_seconds`` and ``upstream`` may be changed at any time from any
    thread. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        mode: str = "pass",
        seed: int | None = 0,
        delay_seconds: float = 1.0,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._upstream = (upstream[0], int(upstream[1]))
        self._mode = self._check_mode(mode)
        self._weights = self._check_weights(DEFAULT_WEIGHTS if weights is None else weights)
        self._delay = self._check_delay(delay_seconds)
        self._stats: dict[str, int] = dict.fromkeys(
            ("connections", "requests", *FAULT_MODES, "upstream_errors",
             "bytes_client_to_upstream", "bytes_upstream_to_client"),
            0,
        )
        self._closing = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._n_connections = 0
        # Every thread's selector watches this pair: one byte written on close wakes them all.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((_LOOPBACK, 0))
            self._listener.listen(128)
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()
            raise
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"fault-proxy-{self.port}-accept", daemon=True
        )
        self._acceptor.start()

    # -- settings ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the base URL to give the client instead of the server's."""
        return f"http://{_LOOPBACK}:{self.port}"

    @property
    def upstream(self) -> tuple[str, int]:
        """Where new connections are forwarded; existing ones keep their server."""
        with self._lock:
            return self._upstream

    @upstream.setter
    def upstream(self, value: tuple[str, int]) -> None:
        with self._lock:
            self._upstream = (value[0], int(value[1]))

    @property
    def mode(self) -> str:
        """The fault applied to each new request; one of :data:`MODES`."""
        with self._lock:
            return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        value = self._check_mode(value)
        with self._lock:
            self._mode = value

    @property
    def weights(self) -> dict[str, float]:
        """Relative weights of the fault modes ``random`` draws from."""
        with self._lock:
            return dict(self._weights)

    @weights.setter
    def weights(self, value: Mapping[str, float]) -> None:
        value = self._check_weights(value)
        with self._lock:
            self._weights = value

    @property
    def delay_seconds(self) -> float:
        """How long ``delay`` holds each reply."""
        with self._lock:
            return self._delay

    @delay_seconds.setter
    def delay_seconds(self, value: float) -> None:
        value = self._check_delay(value)
        with self._lock:
            self._delay = value

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters.

        ``connections`` accepted; ``requests`` started (each drew a mode); one key per
        fault mode, counted when the fault is carried out (``pass`` and ``blackhole``
        when the request starts, ``drop_before_request`` when the connection is
        closed, ``drop_after_request`` when the reply is dropped, ``drop_mid_reply``
        when the reply is cut, ``reset`` when the RST is sent, ``delay`` when a reply
        is held); ``upstream_errors`` (server unreachable, client connection closed);
        ``bytes_client_to_upstream`` and ``bytes_upstream_to_client`` forwarded.
        """
        with self._lock:
            return dict(self._stats)

    @staticmethod
    def _check_mode(mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(MODES)}")
        return mode

    @staticmethod
    def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(FAULT_MODES)
        if unknown:
            raise ValueError(f"unknown fault modes in weights: {', '.join(sorted(unknown))}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        # Drop zero weights so "every configured mode" means every mode that can be drawn.
        return {mode: float(w) for mode, w in weights.items() if w > 0}

    @staticmethod
    def _check_delay(seconds: float) -> float:
        if seconds < 0:
            raise ValueError("delay_seconds must be >= 0")
        return float(seconds)

    # -- used by connections -------------------------------------------------------

    def _draw(self) -> tuple[str, float]:
        """The mode (and delay) for a request that has just started."""
        with self._lock:
            self._stats["requests"] += 1
            mode = self._mode
            if mode == "random":
                # Under the lock, so the draws follow the order requests arrive in.
                modes = list(self._weights)
                mode = self._rng.choices(modes, weights=[self._weights[m] for m in modes])[0]
            return mode, self._delay

    def _send_counted(self, sock: socket.socket, buffer: bytearray, key: str) -> int:
        """Send from ``buffer`` (non-blocking) and count what went, as one step.

        Under the lock, so that once the peer has the bytes the stats show them: a
        test reading the stats right after its reply arrived sees the whole reply.
        """
        with self._lock:
            sent = sock.send(buffer[:_RECV_SIZE])
            self._stats[key] += sent
            return sent

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[key] += amount

    # -- lifecycle -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._closing.is_set():
                for key, _ in sel.select():
                    if key.data == "wake":
                        return
                    try:
                        client, _addr = self._listener.accept()
                    except BlockingIOError:
                        continue
                    client.setblocking(False)
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._start_connection(client)
        finally:
            sel.close()

    def _start_connection(self, client: socket.socket) -> None:
        with self._lock:
            self._stats["connections"] += 1
            self._n_connections += 1
            number = self._n_connections
        connection = _Connection(self, client)
        thread = threading.Thread(
            target=self._run_connection,
            args=(connection,),
            name=f"fault-proxy-{self.port}-conn-{number}",
            daemon=True,
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run_connection(self, connection: _Connection) -> None:
        try:
            connection.run()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def close(self) -> None:
        """Stop listening, close every connection and join every thread (well under 2 s)."""
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        deadline = time.monotonic() + _JOIN_TIMEOUT
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        # The acceptor has stopped, so no thread is added after this snapshot.
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FaultProxy {self.url} -> {self.upstream[0]}:{self.upstream[1]} mode={self.mode}>"
