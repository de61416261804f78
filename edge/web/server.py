"""Serving the operator's page from the edge service: waitress in a background thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)


class WebServer:
    """The page on ``host:port``; :meth:`start` raises OSError when the port is taken."""

    def __init__(self, app: Flask, host: str, port: int, *, threads: int = 4) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.threads = threads
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        from waitress import create_server
        from waitress.task import ThreadedTaskDispatcher

        # Our own dispatcher, its threads started once the port is bound: waitress's own
        # starts them first and leaves them running when the port is taken.
        dispatcher = ThreadedTaskDispatcher()
        self._server = create_server(self.app, host=self.host, port=self.port,
                                     threads=self.threads, ident="attendance-edge",
                                     clear_untrusted_proxy_headers=True,
                                     _dispatcher=dispatcher)
        dispatcher.set_thread_count(self.threads)
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)
        self._thread.start()
        log.info("operator page on %s", self.url)

    def stop(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return

        # waitress has no public "stop": close every socket of its loop (listener and open
        # keep-alive connections) from inside the loop thread, which then returns.
        def close_all() -> None:
            for channel in list(server._map.values()):
                channel.close()

        server.trigger.pull_trigger(close_all)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        server.task_dispatcher.shutdown(timeout=timeout)
