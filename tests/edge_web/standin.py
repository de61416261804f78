"""A stand-in for the central server's card-request and people endpoints.

``POST /api/v1/cards/requests`` and ``GET /api/v1/roster/people`` are being
added to the real server at the same time as the edge's side; until they
exist, the edge's client is tested against this small Flask app, which holds
to the agreed contract strictly (docs/SYNC_API.md, "Card requests" and
"People"). With ``upstream`` it forwards every other request to a real central
server, so one edge can talk to both through one URL.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

import requests
from flask import Flask, Response, abort, jsonify, request
from werkzeug.serving import make_server

HEX_UID = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{16}|[0-9A-F]{20})$")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-encoding",
               "content-length", "server", "date"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StandInServer:
    """The stand-in on 127.0.0.1 (a free port), in a thread of the test process."""

    def __init__(self, *, upstream: str | None = None, token: str | None = None) -> None:
        self.upstream = upstream
        self.token = token
        self.people: list[dict[str, Any]] = []
        self.people_version = "p1"
        self.plans: list[dict[str, Any]] | None = None
        """When set, GET /roster is answered here (with these plans) instead of upstream."""
        self.roster_cards: list[dict[str, Any]] = []
        self.applied: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self.reject_cards: set[str] = set()
        self.fail_next = 0
        self.not_modified = 0
        self.authorization: list[str] = []
        self.missing: set[str] = set()
        """"cards" and/or "people": answer 404 there, as a server of an older release."""
        self.lock = threading.Lock()
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "StandInServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["kind"] == kind]

    # -- the app ------------------------------------------------------------------------------
    def _device(self) -> None:
        header = request.headers.get("Authorization", "")
        self.authorization.append(header)
        if not header.startswith("Bearer ") or (self.token and header != f"Bearer {self.token}"):
            abort(Response('{"error": {"code": "unauthorized", "message": "bad token"}}', 401,
                           mimetype="application/json"))

    def _build(self) -> Flask:
        app = Flask("standin")

        @app.post("/api/v1/cards/requests")
        def card_requests() -> Any:
            if "cards" in self.missing:
                return jsonify({"error": {"code": "not_found", "message": "no route"}}), 404
            self._device()
            with self.lock:
                if self.fail_next:
                    self.fail_next -= 1
                    return jsonify({"error": {"code": "unavailable", "message": "db"}}), 503
            body = request.get_json(silent=True)
            problems = check_card_requests(body)
            if problems:
                return jsonify({"error": {"code": "validation_error",
                                          "message": problems[0]}}), 400
            results = []
            with self.lock:
                for item in body["requests"]:
                    self.received.append(item)
                    if item["request_id"] in self.applied:
                        results.append({"request_id": item["request_id"],
                                        "status": "duplicate"})
                    elif item["card_uid"] in self.reject_cards:
                        results.append({"request_id": item["request_id"], "status": "rejected",
                                        "error": f"card {item['card_uid']} belongs to someone"})
                    else:
                        self.applied[item["request_id"]] = item
                        results.append({"request_id": item["request_id"], "status": "applied"})
            return jsonify({"results": results, "server_time": _now()})

        @app.get("/api/v1/roster/people")
        def people() -> Any:
            if "people" in self.missing:
                return jsonify({"error": {"code": "not_found", "message": "no route"}}), 404
            self._device()
            if request.if_none_match.contains(self.people_version):
                with self.lock:
                    self.not_modified += 1
                return Response(status=304)
            return jsonify({"people": self.people, "version": self.people_version,
                            "server_time": _now()})

        @app.get("/api/v1/roster")
        def roster() -> Any:
            if self.plans is None:
                return forward("api/v1/roster")
            self._device()
            return jsonify({"cursor": "s1", "full": True, "cards": self.roster_cards,
                            "removed": [], "plans": self.plans, "server_time": _now()})

        @app.route("/<path:path>", methods=["GET", "POST"])
        def forward(path: str) -> Any:
            if not self.upstream:
                return jsonify({"error": {"code": "not_found", "message": path}}), 404
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


def check_card_requests(body: Any) -> list[str]:
    """Every way ``body`` departs from the agreed ``POST /cards/requests`` request."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list) \
            or not 1 <= len(body["requests"]) <= 1000:
        return ["requests: a list of 1 to 1000 requests is required"]
    problems = []
    for i, item in enumerate(body["requests"]):
        if not isinstance(item, dict):
            problems.append(f"requests[{i}]: not an object")
            continue
        if set(item) != {"request_id", "kind", "card_uid", "person_id", "requested_at"}:
            problems.append(f"requests[{i}]: keys {sorted(item)}")
        try:
            uuid.UUID(str(item.get("request_id")))
        except ValueError:
            problems.append(f"requests[{i}].request_id: not a uuid")
        if item.get("kind") not in ("bind", "lost"):
            problems.append(f"requests[{i}].kind: {item.get('kind')!r}")
        if not HEX_UID.match(str(item.get("card_uid"))):
            problems.append(f"requests[{i}].card_uid: {item.get('card_uid')!r}")
        person = item.get("person_id")
        if item.get("kind") == "bind" and not (isinstance(person, str) and person):
            problems.append(f"requests[{i}].person_id: required for bind")
        if item.get("kind") == "lost" and person is not None:
            problems.append(f"requests[{i}].person_id: null for lost")
        try:
            when = datetime.fromisoformat(str(item.get("requested_at")).replace("Z", "+00:00"))
            if when.utcoffset() is None or when.utcoffset().total_seconds() != 0:
                raise ValueError
        except ValueError:
            problems.append(f"requests[{i}].requested_at: not ISO 8601 UTC")
    return problems
