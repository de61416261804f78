"""The fault-injection proxy, against a real HTTP server over loopback with ``requests``.

Every fault is shown twice: by what the client sees and by what the server did (its
count of processed POSTs), because "the client got an error" alone cannot tell a
request that was lost from one that was processed and whose reply was lost.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fault_proxy import DEFAULT_WEIGHTS, FAULT_MODES, FaultProxy, _RequestFramer

# Client errors that mean "the reply never arrived whole", not "the server said no".
BROKEN_REPLY = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)


# -- a server that counts what it processed ---------------------------------------


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self._lock = threading.Lock()
        self.processed = 0
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.server_address[0], self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self) -> int:
        with self._lock:
            self.processed += 1
            return self.processed

    def handle_error(self, request: object, client_address: object) -> None:
        # The proxy resets connections on purpose; anything else is a real error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(2)


class _CountingHandler(BaseHTTPRequestHandler):
    """POST /count: JSON with Content-Length; /chunked: chunked JSON; /empty: 204."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the edge's session uses it
    # Head and body go out in two writes; with Nagle the body waits 40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _CountingServer

    def do_POST(self) -> None:
        body = self._read_body()
        processed = self.server.record()
        if self.path == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        payload = json.dumps(
            {"processed": processed, "received": len(body), "padding": "x" * 2000}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (payload[:1000], payload[1000:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size + 2)[:-2]
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return body
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        pass


@pytest.fixture
def make_server() -> Iterator[Callable[[], _CountingServer]]:
    servers: list[_CountingServer] = []

    def make() -> _CountingServer:
        servers.append(_CountingServer())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[[], _CountingServer]) -> _CountingServer:
    return make_server()


@pytest.fixture
def proxy(server: _CountingServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.address, delay_seconds=0.3) as proxy:
        yield proxy


def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll until ``predicate()`` holds or the deadline passes; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.005)
    return True


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (cause, context, or argument)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        stack += [a for a in current.args if isinstance(a, BaseException)]


def post(url: str, session: requests.Session | None = None, **kwargs: object) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    if session is None:
        return requests.post(url, json={"taps": [1, 2, 3]}, **kwargs)  # type: ignore[arg-type]
    return session.post(url, json={"taps": [1, 2, 3]}, **kwargs)  # type: ignore[arg-type]


# -- one test per mode ------------------------------------------------------------


def test_pass_forwards_request_and_reply(server: _CountingServer, proxy: FaultProxy) -> None:
    reply = post(proxy.url + "/count")

    assert reply.status_code == 200
    assert reply.json()["processed"] == 1
    assert server.processed == 1
    stats = proxy.stats
    assert stats["connections"] == 1 and stats["requests"] == 1 and stats["pass"] == 1
    assert stats["bytes_client_to_upstream"] > 0
    assert stats["bytes_upstream_to_client"] > len(reply.content)  # head + body


def test_drop_before_request_server_never_sees_it(
    server: _CountingServer, proxy: FaultProxy
) -> None:
    proxy.mode = "drop_before_request"

    with pytest.raises(requests.exceptions.ConnectionError):
        post(proxy.url + "/count")

    stats = proxy.stats
    assert stats["drop_before_request"] == 1
    # Not one byte went upstream, so the server cannot have processed anything.
    assert stats["bytes_client_to_upstream"] == 0
    assert server.processed == 0


@pytest.mark.parametrize("body", ["json", "chunked"])
def test_drop_after_request_server_processed_it(
    server: _CountingServer, proxy: FaultProxy, body: str
) -> None:
    proxy.mode = "drop_after_request"
    data = {"json": {"json": {"taps": [1]}}, "chunked": {"data": iter([b"ab", b"cdef"])}}[body]

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(proxy.url + "/count", timeout=5, **data)  # type: ignore[arg-type]

    assert wait_for(lambda: server.processed == 1)
    stats = proxy.stats
    assert stats["drop_after_request"] == 1
    assert stats["bytes_upstream_to_client"] == 0


@pytest.mark.parametrize("path", ["/count", "/chunked", "/empty"])
def test_drop_mid_reply_client_gets_part_of_a_processed_reply(
    server: _CountingServer, proxy: FaultProxy, path: str
) -> None:
    post(proxy.url + path).raise_for_status()
    full_reply = proxy.stats["bytes_upstream_to_client"]
    proxy.mode = "drop_mid_reply"

    with pytest.raises(BROKEN_REPLY):
        post(proxy.url + path)

    assert wait_for(lambda: server.processed == 2)
    stats = proxy.stats
    assert stats["drop_mid_reply"] == 1
    partial = stats["bytes_upstream_to_client"] - full_reply
    assert 0 < partial < full_reply


def test_reset_sends_rst(server: _CountingServer, proxy: FaultProxy) -> None:
    proxy.mode = "reset"

    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        post(proxy.url + "/count")
    assert any(isinstance(e, ConnectionResetError) for e in exception_chain(caught.value))

    # The same on a bare socket: a reset, not an orderly end of stream.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        raw.sendall(b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        with pytest.raises(ConnectionResetError):
            raw.recv(100)

    assert proxy.stats["reset"] == 2
    assert server.processed == 0


def test_delay_holds_the_reply(server: _CountingServer, proxy: FaultProxy) -> None:
    proxy.mode = "delay"
    proxy.delay_seconds = 0.3

    started = time.monotonic()
    reply = post(proxy.url + "/count")
    elapsed = time.monotonic() - started

    assert reply.status_code == 200
    assert 0.3 <= elapsed < 2.5
    assert proxy.stats["delay"] == 1
    assert server.processed == 1


def test_blackhole_makes_the_client_time_out(server: _CountingServer, proxy: FaultProxy) -> None:
    proxy.mode = "blackhole"

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(proxy.url + "/count", timeout=0.3)

    assert time.monotonic() - started >= 0.3
    stats = proxy.stats
    assert stats["blackhole"] == 1
    assert stats["bytes_client_to_upstream"] == 0
    assert server.processed == 0


def test_faults_apply_per_request_on_a_keep_alive_connection(
    server: _CountingServer, proxy: FaultProxy
) -> None:
    with requests.Session() as session:
        for _ in range(3):
            post(proxy.url + "/count", session).raise_for_status()
        proxy.mode = "drop_after_request"
        with pytest.raises(requests.exceptions.ConnectionError):
            post(proxy.url + "/count", session)

    stats = proxy.stats
    # Four requests on one connection: the proxy found where each one started.
    assert stats["connections"] == 1
    assert stats["requests"] == 4
    assert (stats["pass"], stats["drop_after_request"]) == (3, 1)
    assert wait_for(lambda: server.processed == 4)


def test_unknown_mode_and_weights_are_refused(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        proxy.mode = "drop_everything"
    with pytest.raises(ValueError, match="unknown fault modes"):
        proxy.weights = {"pass": 1, "random": 1}
    with pytest.raises(ValueError):
        proxy.weights = {"pass": 0}
    assert proxy.mode == "pass"


# -- random ---------------------------------------------------------------------

CUSTOM_WEIGHTS = {"pass": 2, "reset": 1, "delay": 1, "drop_before_request": 1, "drop_mid_reply": 1}


def _random_run(
    server: _CountingServer, seed: int, weights: dict[str, int] | None
) -> tuple[list[str], dict[str, int], int]:
    """200 requests through a fresh proxy; the outcomes, its stats and what the server did."""
    before = server.processed
    outcomes = []
    # A request takes milliseconds; a proxy that loses track of requests makes each one
    # wait for its timeout, so fail on a deadline instead of waiting 200 timeouts.
    deadline = time.monotonic() + 10
    with FaultProxy(
        server.address, mode="random", seed=seed, weights=weights, delay_seconds=0.01
    ) as proxy, requests.Session() as session:
        for _ in range(200):
            assert time.monotonic() < deadline, f"stuck after {len(outcomes)} requests"
            try:
                post(proxy.url + "/count", session, timeout=1).raise_for_status()
                outcomes.append("ok")
            except requests.RequestException as exc:
                outcomes.append(type(exc).__name__)
        stats = proxy.stats
    forwarded = sum(stats[m] for m in ("pass", "delay", "drop_after_request", "drop_mid_reply"))
    assert wait_for(lambda: server.processed - before == forwarded)
    return outcomes, stats, server.processed - before


@pytest.mark.parametrize("weights", [None, CUSTOM_WEIGHTS], ids=["default", "custom"])
def test_random_is_a_reproducible_mix_of_every_configured_mode(
    server: _CountingServer, weights: dict[str, int] | None
) -> None:
    configured = weights or DEFAULT_WEIGHTS
    outcomes, stats, processed = _random_run(server, 1234, weights)

    assert stats["requests"] == 200
    assert sum(stats[m] for m in FAULT_MODES) == 200
    for mode in FAULT_MODES:
        if mode in configured:
            assert stats[mode] > 0, mode
        else:
            assert stats[mode] == 0, mode
    # Only pass and delay let a reply through whole.
    assert outcomes.count("ok") == stats["pass"] + stats["delay"]

    again = _random_run(server, 1234, weights)
    assert again[0] == outcomes
    assert {m: again[1][m] for m in FAULT_MODES} == {m: stats[m] for m in FAULT_MODES}
    assert again[2] == processed

    other = _random_run(server, 4321, weights)
    assert other[0] != outcomes


# -- upstream changes and closing -------------------------------------------------


def test_upstream_can_change_while_running(make_server: Callable[[], _CountingServer]) -> None:
    first, second = make_server(), make_server()
    with FaultProxy(first.address) as proxy, requests.Session() as session:
        post(proxy.url + "/count", session).raise_for_status()
        proxy.upstream = second.address
        assert proxy.upstream == second.address

        # An open connection stays with its server; a new one goes to the new upstream.
        post(proxy.url + "/count", session).raise_for_status()
        post(proxy.url + "/count").raise_for_status()
        assert (first.processed, second.processed) == (2, 1)

        # The server restarts on another port: refused until the proxy is told.
        session.close()
        second.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            post(proxy.url + "/count")
        assert proxy.stats["upstream_errors"] == 1
        restarted = make_server()
        proxy.upstream = restarted.address
        assert post(proxy.url + "/count").json()["processed"] == 1


def test_close_is_fast_and_leaves_no_threads(server: _CountingServer) -> None:
    before = set(threading.enumerate())
    proxy = FaultProxy(server.address, delay_seconds=30)
    outcomes: list[BaseException | None] = []

    def client(mode: str) -> None:
        proxy.mode = mode
        try:
            post(proxy.url + "/count", timeout=30)
            outcomes.append(None)
        except requests.RequestException as exc:
            outcomes.append(exc)

    idle = requests.Session()
    post(proxy.url + "/count", idle).raise_for_status()  # an idle keep-alive connection
    clients = []
    for mode in ("blackhole", "delay"):
        clients.append(threading.Thread(target=client, args=(mode,)))
        clients[-1].start()
        assert wait_for(lambda: proxy.stats[mode] == 1), mode
    assert len([t for t in threading.enumerate() if t.name.startswith("fault-proxy")]) == 4

    started = time.monotonic()
    proxy.close()
    assert time.monotonic() - started < 2

    assert [t.name for t in threading.enumerate() if t.name.startswith("fault-proxy")] == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    # The waiting clients are let go at once, with an error rather than a 30 s wait.
    for thread in clients:
        thread.join(2)
        assert not thread.is_alive()
    assert len(outcomes) == 2 and all(isinstance(o, BROKEN_REPLY) for o in outcomes)
    idle.close()
    proxy.close()  # a second close is harmless
    # The server's handler threads end once they read the proxy's close.
    assert wait_for(lambda: set(threading.enumerate()) <= before)


# -- request framing ---------------------------------------------------------------

REQUESTS = [
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 64, 10_000])
def test_framer_finds_each_request_however_the_bytes_arrive(read_size: int) -> None:
    stream = b"".join(REQUESTS)
    framer = _RequestFramer()
    messages: list[bytes] = []
    methods: list[str | None] = []
    current = b""
    for offset in range(0, len(stream), read_size):
        for segment, starts, ends, method in framer.feed(stream[offset : offset + read_size]):
            assert starts == (current == b"")
            current += segment
            if ends:
                messages.append(current)
                methods.append(method)
                current = b""
    assert messages == REQUESTS
    assert methods == ["GET", "POST", "POST", "HEAD"]


@pytest.mark.parametrize("mode, status", [("http_503", 503), ("http_429", 429)])
def test_canned_http_errors_never_reach_the_server(
    server: _CountingServer, proxy: FaultProxy, mode: str, status: int
) -> None:
    proxy.mode = mode
    reply = post(proxy.url + "/count")
    assert reply.status_code == status
    assert reply.headers["Retry-After"] == "1"
    assert reply.json()["error"]["code"]
    assert server.processed == 0
    assert proxy.stats[mode] == 1
    proxy.mode = "pass"
    assert post(proxy.url + "/count").status_code == 200  # and the next request goes through
