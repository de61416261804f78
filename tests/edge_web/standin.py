"""A stand-in for a central server of the previous release.

That release had no ``POST /api/v1/cards/requests``, no ``GET
/api/v1/roster/people`` and no ``POST /api/v1/excuses/withdraw``: it answers 404
there. Only the current server's code is here, so that older server cannot be
run; this small Flask app plays it, in front of a real (current) central server:
the new endpoints answer 404 as a route the old server does not have, every
other request is forwarded unchanged.
Everything else the edge tests use is the real server.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

#: What the previous release lacks.
NEW_ENDPOINTS = ("api/v1/cards/requests", "api/v1/roster/people", "api/v1/excuses/withdraw")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-encoding",
               "content-length", "server", "date"}


class PreviousReleaseServer:
    """A server of the previous release on 127.0.0.1 (a free port), in a thread of the test
    process: the current server at ``upstream`` without the endpoints it added."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "PreviousReleaseServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _build(self) -> Flask:
        app = Flask("previous_release")

        @app.route("/<path:path>", methods=["GET", "POST"])
        def forward(path: str) -> Any:
            if path in NEW_ENDPOINTS:
                return jsonify({"error": {  # the server's own 404, as that release gave it
                    "code": "not_found",
                    "message": f"nothing at /{path} (the API is described at "
                               f"/api/v1/openapi.json)"}}), 404
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("authorization", "content-type", "if-none-match",
                                        "user-agent", "accept")}
            reply = requests.request(request.method, f"{self.upstream}/{path}",
                                     params=request.args, data=request.get_data(),
                                     headers=headers, timeout=30)
            return Response(reply.content, reply.status_code,
                            [(k, v) for k, v in reply.headers.items()
                             if k.lower() not in HOP_HEADERS])

        return app
