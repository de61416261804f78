"""The dashboard: web pages for Diskominfo and site operators under ``/dashboard``.

One blueprint (``web``) with its templates and static files (hand-written CSS
and a little vanilla JavaScript; nothing is loaded from elsewhere). What it
adds to the app (:func:`init_app`):

* cookie sessions only under ``/dashboard`` (the JSON API has none), signed
  with a key from the configuration or a file made on first use
  (:mod:`server.web.secret_key`); a session ends after
  ``SESSION_TIMEOUT_MINUTES`` without a request;
* CSRF protection (Flask-WTF) on every form the blueprint receives; the JSON
  API under ``/api/v1`` authenticates with bearer tokens and is not checked;
* a per-address limit on failed logins (Flask-Limiter, memory storage: each
  worker process counts for itself) on top of the per-account lockout kept in
  the database (:mod:`server.accounts`);
* ``ProxyFix`` for ``PROXY_COUNT`` reverse proxies (the client's address and
  scheme come from their ``X-Forwarded-*`` headers);
* security headers on every page (a strict Content-Security-Policy: only this
  server's own scripts and styles), HTML error pages, and ``/`` redirecting to
  the dashboard.

Pages: :mod:`server.web.auth` (login, logout, account) and
:mod:`server.web.views` (attendance, recap, charts, anomalies, fleet) and
:mod:`server.web.excuse_views` (excuses: recording and withdrawing them).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from server.errors import ConfigError
from server.web.i18n import COOKIE, translate

log = logging.getLogger(__name__)

PREFIX = "/dashboard"

bp = Blueprint("web", __name__, url_prefix=PREFIX, template_folder="templates",
               static_folder="static")

_key_lock = threading.Lock()

#: Content-Security-Policy of every page: nothing from elsewhere, no inline script or style.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")


def is_dashboard_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def ensure_secret_key(app: Flask) -> None:
    """Resolve the signing key on first use (the API never needs it)."""
    if app.secret_key:
        return
    from server.web import secret_key

    with _key_lock:
        if not app.secret_key:
            app.secret_key = secret_key.resolve(app.config)


class DashboardSessions(SecureCookieSessionInterface):
    """Cookie sessions for the dashboard's paths only; the cookie is ``Secure`` when so
    configured or when the request came over HTTPS."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if not is_dashboard_path(request.path):
            return None  # Flask then uses a null session: the API never sets a cookie
        try:
            ensure_secret_key(app)
        except ConfigError as exc:
            # Pages answer 503 (auth.guard) and say why in the log; the API goes on.
            log.error("dashboard unavailable: %s", exc)
            g.dashboard_unavailable = True
            return None
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_app(app: Flask) -> None:
    """Add the dashboard to ``app`` (after the API's blueprints and error handlers)."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address
    from flask_wtf.csrf import CSRFProtect

    from server.web import auth, excuse_views, views  # noqa: F401 - the blueprint's routes

    timeout = float(app.config.get("SESSION_TIMEOUT_MINUTES") or 30)
    app.config.update(
        SESSION_COOKIE_NAME="absensi_session", SESSION_COOKIE_PATH=PREFIX,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=timeout),
        # CSRF is checked by the blueprint for its own forms (auth.guard), never for the
        # API's JSON requests.
        WTF_CSRF_CHECK_DEFAULT=False,
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.session_interface = DashboardSessions()
    app.extensions["attendance_csrf"] = CSRFProtect(app)

    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,  # type: ignore
                                x_host=proxies)

    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://",
                      default_limits=[], key_prefix="attendance")
    app.extensions["attendance_limiter"] = limiter
    # Only the login form is limited: the API's requests skip the limiter's bookkeeping.
    limiter.request_filter(lambda: not is_dashboard_path(request.path))
    app.register_blueprint(bp)
    # Only failed logins count against the address (a redirect is a success): an office
    # behind one address must not lock itself out at 07:30.
    app.view_functions["web.login"] = limiter.limit(
        lambda: current_app.config.get("LOGIN_RATE_LIMIT") or "10 per minute",
        methods=["POST"], deduct_when=lambda response: response.status_code != 302,
    )(app.view_functions["web.login"])

    app.add_url_rule("/", "root", lambda: redirect(PREFIX + "/"))
    app.after_request(_security_headers)
    app.extensions["attendance_web_errors"] = error_page


def _security_headers(response: Response) -> Response:
    if is_dashboard_path(request.path) or request.path == "/":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "web.static":
            # Pages hold personal data: not kept by the browser or a proxy.
            response.headers["Cache-Control"] = "no-store"
    return response


def language() -> str:
    return getattr(g, "lang", None) or "id"


def _(key: str, **values: object) -> str:
    """The text of ``key`` in the request's language."""
    return translate(language(), key, **values)


def error_page(error: BaseException) -> Response | None:
    """An HTML error page for a dashboard path (None elsewhere: the API answers JSON)."""
    if not is_dashboard_path(request.path):
        return None
    from flask_wtf.csrf import CSRFError

    if not hasattr(g, "lang"):
        from server.web.i18n import pick_language

        g.lang = pick_language(request.args.get("lang"), request.cookies.get(COOKIE))
    status = error.code if isinstance(error, HTTPException) and error.code else 500
    key = "error.csrf" if isinstance(error, CSRFError) else f"error.{status}"
    message = _(key) if key in _known_keys() else _("error.400" if status < 500 else "error.500")
    detail = getattr(error, "dashboard_message", None)
    body = render_template("error.html", status=status, message=detail or message)
    response = Response(body, status=status, mimetype="text/html")
    if isinstance(error, HTTPException):
        for name in ("Retry-After", "Allow"):
            value = error.get_response().headers.get(name)
            if value:
                response.headers[name] = value
    return response


def _known_keys() -> frozenset[str]:
    from server.web.i18n import ID

    return frozenset(ID)


__all__ = ["PREFIX", "bp", "init_app"]
