"""Logging in and out, the login guard on every page, changing one's own password.

The session (a signed cookie, HttpOnly, SameSite=Lax) holds the username, the
password's change time and the time of the operator's last action. A session
ends after ``[web] session_minutes`` without an action (the page's own
background refreshes do not count), when the password is changed elsewhere,
or when the account is removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, flash, g, jsonify, redirect, render_template, request,
                   session, url_for)

from edge import operators
from edge.web import edge_context, wants_json
from edge.web.db import get_db
from edge.web.i18n import t

bp = Blueprint("auth", __name__)

#: Reachable without logging in.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static", "i18n.switch"})
#: Refreshed by the page itself every few seconds: not an action of the operator.
BACKGROUND_ENDPOINTS = frozenset({"api.today", "api.enrolment_state"})


def _now() -> datetime:
    return edge_context().now()


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no '//' trick) may be a redirect target."""
    if not target:
        return url_for("pages.today")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return url_for("pages.today")
    return target


def current_operator() -> str | None:
    """The operator of this session, or None (and the session cleared) when it has ended."""
    username = session.get("user")
    if not username:
        return None
    now = _now().timestamp()
    idle_limit = edge_context().config.web.session_minutes * 60
    seen = session.get("seen")
    account = operators.get_operator(get_db(), username)
    if (not isinstance(seen, (int, float)) or now - seen > idle_limit or account is None
            or account.changed_at != session.get("pw")):
        expired = isinstance(seen, (int, float)) and now - seen > idle_limit
        session.clear()
        if expired:
            session["expired"] = True
        return None
    if request.endpoint not in BACKGROUND_ENDPOINTS:
        session["seen"] = now
    return username


def require_login() -> Any:
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    username = current_operator()
    if username is None:
        if wants_json():
            return jsonify({"error": {"code": 401, "message": t("login.required")}}), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    g.operator = username
    return None


def init_app(app: Flask) -> None:
    app.before_request(require_login)


def login_page(error: str | None = None, code: int = 200) -> Any:
    no_accounts = not operators.list_operators(get_db())
    return render_template("login.html", error=error, no_accounts=no_accounts,
                           next=request.values.get("next", "")), code


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if session.pop("expired", False):
            return login_page(t("login.expired"))
        return login_page()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    web = edge_context().config.web
    now = _now()
    result = operators.check_login(get_db(), username, password, now=now,
                                   max_failures=web.lockout_failures,
                                   lockout=timedelta(minutes=web.lockout_minutes))
    if not result.ok:
        if result.locked_until is not None:
            until = result.locked_until.astimezone().strftime("%H:%M")
            return login_page(t("login.locked", until=until), 401)
        return login_page(t("login.wrong"), 401)
    session.clear()  # a new session for a new login (no fixation)
    session.permanent = True
    session["user"] = username
    session["pw"] = result.changed_at
    session["seen"] = now.timestamp()
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
def account() -> Any:
    errors: dict[str, str] = {}
    if request.method == "POST":
        db = get_db()
        old = request.form.get("old_password", "")
        new = request.form.get("new_password", "")
        again = request.form.get("new_password_again", "")
        if not operators.verify_password(db, g.operator, old):
            errors["old_password"] = t("account.old_wrong")
        elif new != again:
            errors["new_password_again"] = t("account.mismatch")
        elif len(new) < operators.MIN_PASSWORD_LENGTH:
            errors["new_password"] = t("account.too_short", n=operators.MIN_PASSWORD_LENGTH)
        else:
            operators.set_password(db, g.operator, new)
            account = operators.get_operator(db, g.operator)
            session["pw"] = account.changed_at if account else None
            flash(t("account.changed"), "ok")
            return redirect(url_for("auth.account"))
    return render_template("account.html", errors=errors), 400 if errors else 200
