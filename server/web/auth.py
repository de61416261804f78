"""Logging in and out, the account page, and the checks every dashboard request passes.

:func:`guard` runs before every view of the blueprint, in this order:

1. the language (``?lang=``, cookie, Indonesian);
2. the CSRF token of any POST (400 without a valid one; nothing is done);
3. the session: its user must exist, be enabled, have the session's
   ``session_version`` and have made a request within the timeout; otherwise
   the session is cleared and the browser is sent to the login page.

So a new page is protected without doing anything; only :data:`PUBLIC` pages
(the login form, the static files) open without an account. Which *site* a
user may see is the views' business (:func:`visible_sites`, :func:`require_site`).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (Response, abort, current_app, flash, g, get_flashed_messages, redirect,
                   render_template, request, session, url_for)
from flask.sessions import NullSession

from server import accounts
from server.accounts import WebUser
from server.api import engine
from server.db import reading, utcnow
from server.web import PREFIX, _, bp, language
from server.web.i18n import COOKIE, LANGUAGES, pick_language

#: Endpoints open without a session.
PUBLIC = frozenset({"web.login", "web.static"})


def current_user() -> WebUser:
    user = getattr(g, "user", None)
    if user is None:  # pragma: no cover - guard() stops such requests first
        abort(401)
    return user


def visible_sites() -> list[str] | None:
    """The site codes the user may see: None (every site) for diskominfo."""
    user = current_user()
    return None if user.is_diskominfo else [user.site_code or ""]


def require_site(code: str | None) -> str | None:
    """``code`` if the user may see it and it exists; 404 otherwise (an operator cannot tell
    another site's code from a wrong one). None (every site) for diskominfo only."""
    from server.web.queries import site_list

    user = current_user()
    if code is None or code == "":
        return None if user.is_diskominfo else user.site_code
    if not user.may_see(code):
        abort(404)
    with reading(engine()) as conn:
        if not site_list(conn, [code]):
            abort(404)
    return code


def _timeout() -> float:
    return float(current_app.config.get("SESSION_TIMEOUT_MINUTES") or 30) * 60


def _session_user() -> WebUser | None:
    uid = session.get("uid")
    if uid is None:
        return None
    now = time.time()
    if now - float(session.get("seen", 0)) > _timeout():
        session.clear()
        g.session_expired = True
        return None
    with reading(engine()) as conn:
        user = accounts.user_by_id(conn, int(uid))
    if user is None or user.disabled or user.session_version != session.get("ver"):
        session.clear()
        return None
    session["seen"] = int(now)
    return user


@bp.before_request
def guard() -> Any:
    g.lang = pick_language(request.args.get("lang"), request.cookies.get(COOKIE))
    if request.endpoint == "web.static":
        return None
    if getattr(g, "dashboard_unavailable", False):  # no signing key (see the log)
        abort(503)
    if request.method in current_app.config.get("WTF_CSRF_METHODS", ("POST",)):
        current_app.extensions["attendance_csrf"].protect()
    g.user = _session_user()
    if g.user is not None or request.endpoint in PUBLIC:
        return None
    target = request.full_path if request.method == "GET" else None
    if getattr(g, "session_expired", False):
        flash(_("login.expired"), "info")
    elif request.endpoint != "web.home":
        flash(_("login.needed"), "info")
    return redirect(url_for("web.login", next=target.rstrip("?") if target else None))


@bp.after_request
def remember_language(response: Response) -> Response:
    asked = request.args.get("lang")
    if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
        response.set_cookie(COOKIE, asked, max_age=365 * 24 * 3600, path=PREFIX,
                            samesite="Lax", httponly=True,
                            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE"))
                            or request.is_secure)
    return response


@bp.app_context_processor
def template_helpers() -> dict[str, Any]:
    from server.web import views

    return {"_": _, "lang": language(), "user": getattr(g, "user", None),
            "languages": LANGUAGES, "fmt": views.Formats(language()), "lang_url": _lang_url,
            "flashes": _flashes}


def _flashes() -> list[tuple[str, str]]:
    """The flashed messages, or none when the page has no session (no signing key)."""
    if isinstance(session._get_current_object(), NullSession):  # type: ignore[attr-defined]
        return []
    return get_flashed_messages(with_categories=True)


def _lang_url(code: str) -> str:
    """This page in language ``code`` (its query kept)."""
    args = {k: v for k, v in request.args.items() if k != "lang"}
    args["lang"] = code
    if request.url_rule is not None and request.endpoint and request.method == "GET":
        return url_for(request.endpoint, **(request.view_args or {}), **args)
    return "?" + urlencode(args)


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path of this server, nothing else."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith(PREFIX + "/") \
                and "\\" not in target and not target.startswith("//"):
            return target
    return url_for("web.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The login form; a right user name and password open a session."""
    if request.method == "GET":
        if g.user is not None:
            return redirect(_safe_next(request.args.get("next")))
        return render_template("login.html", next=request.args.get("next") or "")
    username = request.form.get("username", "")[:200]
    password = request.form.get("password", "")[:accounts.PASSWORD_MAX]
    config = current_app.config
    with engine().begin() as conn:
        result = accounts.authenticate(
            conn, username, password, max_failures=int(config.get("LOGIN_MAX_FAILURES") or 5),
            lockout=timedelta(minutes=float(config.get("LOGIN_LOCKOUT_MINUTES") or 15)))
    if result.outcome != "ok" or result.user is None:
        if result.outcome == "locked" and result.locked_until is not None:
            left = (result.locked_until - utcnow()).total_seconds() / 60
            error = _("login.locked", minutes=max(1, int(left + 0.999)))
        else:
            error = _("login.bad")
        current_app.logger.info("dashboard login refused for %r from %s (%s)",
                                username[:64], request.remote_addr, result.outcome)
        return render_template("login.html", error=error, username=username[:64],
                               next=request.form.get("next", ""))
    session.clear()  # a fresh session: nothing from before the login is kept
    session.permanent = True
    session.update(uid=result.user.id, ver=result.user.session_version, seen=int(time.time()))
    current_app.logger.info("dashboard login: %s (%s) from %s", result.user.username,
                            result.user.role, request.remote_addr)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    """End the session (and every other session of the account)."""
    user = current_user()
    with engine().begin() as conn:
        accounts.end_sessions(conn, user.id)
    session.clear()
    flash(_("login.logged_out"), "info")
    return redirect(url_for("web.login"))


@bp.route("/account", methods=["GET", "POST"])
def account() -> Any:
    """The user's own account: role, site, and a new password."""
    user = current_user()
    if request.method == "GET":
        return render_template("account.html")
    current = request.form.get("current", "")[:accounts.PASSWORD_MAX]
    new = request.form.get("new", "")[:accounts.PASSWORD_MAX + 1]
    repeat = request.form.get("repeat", "")[:accounts.PASSWORD_MAX + 1]
    with engine().begin() as conn:
        config = current_app.config
        check = accounts.authenticate(
            conn, user.username, current,
            max_failures=int(config.get("LOGIN_MAX_FAILURES") or 5),
            lockout=timedelta(minutes=float(config.get("LOGIN_LOCKOUT_MINUTES") or 15)))
        if check.outcome != "ok":
            error = _("account.wrong_current")
        elif new != repeat:
            error = _("account.mismatch")
        else:
            try:
                accounts.check_new_password(new, user.username)
            except ValueError:
                error = _("account.too_short", n=accounts.PASSWORD_MIN)
            else:
                changed = accounts.set_password(conn, user.username, new, now=utcnow())
                session["ver"] = changed.session_version  # this session goes on
                flash(_("account.changed"), "info")
                return redirect(url_for("web.account"))
    return render_template("account.html", error=error), 400
