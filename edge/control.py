"""The local control socket of a running edge (a Unix socket in the data dir).

One JSON object per line each way. Requests::

    {"cmd": "status"}
    {"cmd": "tap", "uid": "04A1B2C3", "reader": "sim"}   # reader is optional

Replies are ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. The
socket is mode 0660, so only root and the service's group can reach it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any, Callable

from edge.errors import ControlError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST = 64 * 1024


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handle_request_fn: Handler


class _RequestHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.connection.settimeout(10)
        try:
            line = self.rfile.readline(MAX_REQUEST)
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            reply = self.server.handle_request_fn(request)  # type: ignore[attr-defined]
        except (ValueError, UnicodeDecodeError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc}"}
        except Exception as exc:  # never let one request take the socket down
            log.exception("control request failed")
            reply = {"ok": False, "error": f"internal error: {exc}"}
        try:
            self.wfile.write(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass


class ControlServer:
    """Serves control requests on ``path`` from a background thread."""

    def __init__(self, path: str | os.PathLike[str], handler: Handler) -> None:
        self.path = Path(path)
        self.handler = handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if _is_alive(self.path):
                raise ControlError(
                    f"another edge service is already running (its socket {self.path} answers)"
                )
            self.path.unlink()  # left over from a crash
        server = _Server(str(self.path), _RequestHandler)
        server.handle_request_fn = self.handler
        os.chmod(self.path, 0o660)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="control",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _is_alive(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(str(path))
        return True
    except OSError:
        return False


def request(path: str | os.PathLike[str], payload: dict[str, Any],
            timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a running edge; raise ControlError when it cannot be reached."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except FileNotFoundError:
        raise ControlError(f"the edge service is not running (no socket at {path})") from None
    except ConnectionRefusedError:
        raise ControlError(f"the edge service is not running (nobody answers at {path})") from None
    except PermissionError:
        raise ControlError(
            f"no permission to reach {path}: run as root or as a member of the service's group"
        ) from None
    except OSError as exc:
        raise ControlError(f"cannot reach the edge service at {path}: {exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError("the edge service gave an unreadable reply") from None
    return reply
