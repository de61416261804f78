"""The dashboard's excuses (sakit, izin, dinas luar, cuti): the list of a month, recording
one for a person of a site, and withdrawing one recorded by mistake.

What an account sees and may change follows the sync API's rules
(:mod:`server.excuses`): an operator the excuses recorded for its site (by its
readers, its API key or its dashboard users) and those recorded centrally for
people of its site, and may withdraw only the former; Diskominfo every excuse.
An excuse recorded here applies at the chosen site, like one from the site's
reader; its ``source_operator`` is ``web:<username>``.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy.engine import Connection

from server import reports
from server.api import engine
from server.attendance_rules import EXCUSE_STATUS
from server.db import reading, utcnow
from server.errors import ApiError
from server.excuses import (Source, check_people_of_site, store_excuses,
                            withdraw_excuses)
from server.schema import EXCUSE_KINDS, excuses, people
from server.web import _, bp
from server.web.auth import current_user, require_site, visible_sites
from server.web.queries import site_list
from server.web.views import _month_arg, _page_arg, _today

PER_PAGE = 100
MAX_NOTE = 1000
MAX_DAYS = 366


def _source() -> Source:
    user = current_user()
    return Source(site_code=None if user.is_diskominfo else user.site_code,
                  operator=f"web:{user.username}"[:64])


def _visible(site: str | None) -> Any:
    """Which excuses the list shows: those recorded for ``site`` (else every site the
    user sees) and those recorded centrally for people registered there."""
    e = excuses.c
    codes = [site] if site else visible_sites()
    if codes is None:
        return sa.true()
    central = sa.and_(e.site_code.is_(None), e.person_id.in_(
        sa.select(people.c.person_id).where(people.c.site_code.in_(codes))))
    return sa.or_(e.site_code.in_(codes), central)


def excuse_page(conn: Connection, site: str | None, month: date, page: int
                ) -> tuple[list[dict[str, Any]], int]:
    """The month's excuses (any day of it covered), newest first, and how many there are."""
    first, following = reports.month_bounds(month)
    e, p = excuses.c, people.c
    where = sa.and_(_visible(site), e.date_from < following, e.date_to >= first)
    total = conn.execute(sa.select(sa.func.count()).select_from(excuses).where(where)).scalar()
    rows = conn.execute(
        sa.select(e.excuse_id, e.person_id, e.kind, e.date_from, e.date_to, e.note,
                  e.site_code, e.source_device_id, e.source_operator, e.received_at,
                  e.withdrawn_at, e.withdrawn_by, p.name, p.group_name)
        .select_from(excuses.outerjoin(people, p.person_id == e.person_id))
        .where(where).order_by(e.date_from.desc(), e.received_at.desc(), e.excuse_id)
        .limit(PER_PAGE).offset((page - 1) * PER_PAGE)).mappings()
    return [dict(r) for r in rows], int(total or 0)


def _people_of(conn: Connection, site: str) -> list[dict[str, Any]]:
    p = people.c
    return [dict(r) for r in conn.execute(
        sa.select(p.person_id, p.name, p.group_name).where(p.site_code == site)
        .order_by(p.group_name, p.name, p.person_id)).mappings()]


def _render(site: str | None, month: date, form: dict[str, str], errors: dict[str, str],
            status: int = 200) -> Any:
    page = _page_arg()
    with reading(engine()) as conn:
        sites = site_list(conn, visible_sites())
        rows, total = excuse_page(conn, site, month, page)
        choices = _people_of(conn, site) if site else []
    user = current_user()
    filters = {k: v for k, v in {"site": site if user.is_diskominfo else None,
                                 "month": month.strftime("%Y-%m")}.items() if v}
    return render_template(
        "excuses.html", rows=rows, total=total, page=page,
        pages=max(1, math.ceil(total / PER_PAGE)), sites=sites, site=site, month=month,
        people=choices, kinds=EXCUSE_KINDS, status_of=EXCUSE_STATUS, form=form,
        errors=errors, zones={s["code"]: s["timezone"] for s in sites},
        filters=filters, may_withdraw=lambda row: row["withdrawn_at"] is None and (
            user.is_diskominfo or row["site_code"] == user.site_code)), status


@bp.get("/excuses")
def excuse_list() -> Any:
    """The month's excuses of the chosen site (an operator: its own), with the form."""
    site = require_site(request.args.get("site") or None)
    today = _today()
    month = _month_arg(today)
    form = {"person_id": "", "kind": "sakit", "date_from": today.isoformat(),
            "date_to": today.isoformat(), "note": ""}
    return _render(site, month, form, {})


@bp.post("/excuses")
def excuse_add() -> Any:
    """Record an excuse for a person of the chosen site; field errors re-show the form (400)."""
    site = require_site(request.form.get("site") or None)
    month = _month_arg(_today())
    form = {key: request.form.get(key, "").strip()[:MAX_NOTE + 1]
            for key in ("person_id", "kind", "date_from", "date_to", "note")}
    errors: dict[str, str] = {}
    if site is None:
        errors["site"] = _("excuses.pick_site")
    if not form["person_id"]:
        errors["person_id"] = _("excuses.pick_person")
    if form["kind"] not in EXCUSE_KINDS:
        errors["kind"] = _("excuses.pick_kind")
    days = {}
    for field in ("date_from", "date_to"):
        try:
            days[field] = date.fromisoformat(form[field])
        except ValueError:
            errors[field] = _("error.bad_date", value=form[field][:20])
    if len(days) == 2 and days["date_to"] < days["date_from"]:
        errors["date_to"] = _("excuses.order")
    elif len(days) == 2 and days["date_to"] - days["date_from"] >= timedelta(days=MAX_DAYS):
        errors["date_to"] = _("excuses.too_long", days=MAX_DAYS)
    if len(form["note"]) > MAX_NOTE:
        errors["note"] = _("excuses.note_long", n=MAX_NOTE)
    if errors:
        return _render(site, month, form, errors, 400)
    assert site is not None
    item = {"excuse_id": str(uuid.uuid4()), "person_id": form["person_id"],
            "kind": form["kind"], "date_from": form["date_from"], "date_to": form["date_to"],
            "note": form["note"]}
    with engine().begin() as conn:
        try:
            check_people_of_site(conn, [item], site)
        except ApiError:
            errors["person_id"] = _("excuses.not_here", site=site)
        else:
            store_excuses(conn, [item], Source(site_code=site, operator=_source().operator),
                          utcnow())
    if errors:
        return _render(site, month, form, errors, 400)
    flash(_("excuses.saved"), "ok")
    return redirect(url_for("web.excuse_list", month=form["date_from"][:7],
                            **({"site": site} if current_user().is_diskominfo else {})))


@bp.post("/excuses/<excuse_id>/withdraw")
def excuse_withdraw(excuse_id: str) -> Any:
    """Withdraw an excuse: its days are reconciled again without it."""
    e = excuses.c
    with engine().begin() as conn:
        row = conn.execute(sa.select(e.excuse_id, e.person_id, e.kind, e.date_from,
                                     e.date_to, e.note, e.site_code, e.withdrawn_at)
                           .where(e.excuse_id == excuse_id[:64])).first()
        user = current_user()
        if row is None or not (user.is_diskominfo or row.site_code == user.site_code):
            abort(404)
        item = {"excuse_id": row.excuse_id, "person_id": row.person_id, "kind": row.kind,
                "date_from": row.date_from.isoformat(), "date_to": row.date_to.isoformat(),
                "note": row.note}
        (result,) = withdraw_excuses(conn, [item], _source(), utcnow())
    flash(_("excuses.withdrawn" if result["status"] == "withdrawn" else "excuses.already"),
          "ok")
    back = {"month": request.form.get("month") or row.date_from.strftime("%Y-%m")}
    if user.is_diskominfo and request.form.get("site"):
        back["site"] = request.form["site"]
    return redirect(url_for("web.excuse_list", **back))
