"""The school operator's page on the edge (docs/EDGE_WEB.md).

One Flask app, served on the school LAN by ``attendance-edge run`` (waitress,
:mod:`edge.web.server`). It reads and writes the edge's own SQLite file; it
reaches the running service only through what :func:`create_app` is given:
the live status, the card enrolment, and a nudge for the sync worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from flask import Flask, Response, g, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect

from edge.config import EdgeConfig
from edge.enrolment import CardEnrolment
from edge.outbox import open_database

StatusFn = Callable[[], dict[str, Any]]


@dataclass
class EdgeContext:
    """What the page's views need from the edge, kept in ``app.extensions["edge"]``."""

    config: EdgeConfig
    database: Path
    status: StatusFn | None = None
    enrolment: CardEnrolment | None = None
    wake_sync: Callable[[], None] | None = None
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    _status_cache: tuple[float, dict[str, Any] | None] = (0.0, None)
    _status_lock: threading.Lock = field(default_factory=threading.Lock)

    def nudge_sync(self) -> None:
        if self.wake_sync is not None:
            self.wake_sync()

    def service_status(self) -> dict[str, Any] | None:
        """The service's status, at most a second old: however many pages are open and
        refreshing, the service (and its tap database lock) is asked once a second."""
        if self.status is None:
            return None
        with self._status_lock:
            taken, value = self._status_cache
            if value is None or time.monotonic() - taken >= 1.0:
                try:
                    value = self.status()
                except Exception:  # the service is stopping: "unknown" rather than an error
                    value = None
                self._status_cache = (time.monotonic(), value)
            return value


def create_app(config: EdgeConfig, *, database: str | Path | None = None,
               status: StatusFn | None = None, enrolment: CardEnrolment | None = None,
               wake_sync: Callable[[], None] | None = None,
               now: Callable[[], datetime] | None = None,
               test_config: dict[str, Any] | None = None) -> Flask:
    """Build the operator's page.

    ``database`` defaults to the configuration's ``edge.db``; ``status`` returns
    :meth:`edge.service.EdgeService.status` (None: shown as unknown);
    ``enrolment`` is the service's :class:`~edge.enrolment.CardEnrolment` (None:
    new cards cannot be enrolled from this page); ``wake_sync`` sends new excuses
    and card requests at once; ``now`` (aware, UTC) is for tests of timeouts.
    """
    from edge.web import api, auth, db, exports, i18n, pages
    from edge.web.secret import load_or_create_secret

    database = Path(database) if database is not None else config.database_path
    open_database(database).close()  # create the file and apply migrations once
    web = config.web
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=load_or_create_secret(config.web_secret_path),
        SESSION_COOKIE_NAME="absensi_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=web.session_minutes),
        # The token lives as long as the session (which expires on inactivity).
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["edge"] = EdgeContext(config, database, status, enrolment, wake_sync,
                                         now or (lambda: datetime.now(timezone.utc)))
    CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://",
                      default_limits=[], headers_enabled=True)
    db.init_app(app)
    i18n.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(exports.bp)
    # Per client address, on the login POST only (the blueprint is shared by every app
    # made here, the limiter and its in-memory counts are not).
    app.view_functions["auth.login"] = limiter.limit(
        lambda: web.login_rate_limit, methods=["POST"])(app.view_functions["auth.login"])
    auth.init_app(app)

    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError) -> Any:
        return _error(400, "error.csrf")

    @app.errorhandler(404)
    def not_found(exc: Exception) -> Any:
        return _error(404, "error.not_found")

    @app.errorhandler(429)
    def too_many(exc: Exception) -> Any:
        if request.endpoint == "auth.login":
            return auth.login_page(i18n.t("login.too_many"), 429)
        return _error(429, "login.too_many")

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _error(code: int, key: str) -> Any:
    from edge.web.i18n import t

    if wants_json():
        return jsonify({"error": {"code": code, "message": t(key)}}), code
    return render_template("error.html", code=code, message=t(key)), code


def edge_context() -> EdgeContext:
    from flask import current_app

    return current_app.extensions["edge"]


def operator() -> str:
    """The logged-in operator of this request (set by :mod:`edge.web.auth`)."""
    return g.operator
