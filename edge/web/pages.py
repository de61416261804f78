"""The operator's pages: today, the roster by class or unit, excuses, cards."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlite_utils
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from edge import attendance, cards, daily
from edge import settings as remote_settings
from edge.excuses import (KINDS, Excuse, ExcuseError, UnknownExcuse, add_excuse, recent_excuses,
                          waiting_count, withdraw_excuse)
from edge.people import Person, find_person, groups, site_people
from edge.web import edge_context, operator
from edge.web.db import get_db
from edge.web.i18n import format_day, format_when, status_label, t, verdict_label

bp = Blueprint("pages", __name__)

UNKNOWN_CARD_DAYS = 7


def local_today() -> date:
    return edge_context().now().astimezone().date()


# -- shared with the JSON endpoints -----------------------------------------------------------
def service_state() -> dict[str, Any]:
    """The reader and sync state from the running service, ready to show."""
    status = edge_context().service_status()
    db = get_db()
    waiting_excuses = waiting_count(db)  # withdrawals waiting to be sent count too
    waiting_cards = db.conn.execute(
        "SELECT count(*) FROM card_requests WHERE sent_at IS NULL").fetchone()[0]
    if status is None:
        return {"known": False, "waiting_excuses": waiting_excuses,
                "waiting_cards": waiting_cards}
    readers = status.get("readers") or []
    sync = status.get("sync")
    return {
        "known": True,
        "readers_ok": bool(readers) and all(r.get("connected") for r in readers),
        "readers": [{"name": r.get("name"), "connected": bool(r.get("connected")),
                     "error": r.get("error")} for r in readers],
        "backlog": status.get("backlog", 0),
        "enrolled": sync is not None,
        "last_sync": format_when(sync.get("last_success_at")) if sync else None,
        "sync_error": sync.get("last_error") if sync else None,
        "clock_synced": bool((status.get("clock") or {}).get("synced")),
        "storage_error": status.get("storage_error"),
        "waiting_excuses": waiting_excuses,
        "waiting_cards": waiting_cards,
    }


def service_lines(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The state as label/value lines, in the page's language (the script shows them as given)."""
    def line(key: str, value: str, ok: bool) -> dict[str, Any]:
        return {"key": key, "label": t(f"service.{key}"), "value": value, "ok": ok}

    waiting = line("waiting", t("service.waiting_value", excuses=state["waiting_excuses"],
                                cards=state["waiting_cards"]),
                   not (state["waiting_excuses"] or state["waiting_cards"]))
    if not state["known"]:
        return [line("reader", t("service.unknown"), False), waiting]
    readers = state["readers"]
    if state["readers_ok"]:
        reader = t("service.reader_ok") if len(readers) < 2 else t(
            "service.readers_ok", n=len(readers))
    else:
        down = [r for r in readers if not r["connected"]] or readers
        reader = "; ".join(t("service.reader_down", name=r["name"], error=r["error"] or "")
                           for r in down) or t("service.no_reader")
    if not state["enrolled"]:
        sync = line("last_sync", t("service.not_enrolled"), False)
    elif state["sync_error"]:
        sync = line("last_sync", t("service.sync_failing", when=state["last_sync"] or
                                   t("service.never")), False)
    else:
        sync = line("last_sync", state["last_sync"] or t("service.never"),
                    state["last_sync"] is not None)
    lines = [
        line("reader", reader, state["readers_ok"]),
        line("backlog", t("service.backlog_value", n=state["backlog"]), state["backlog"] == 0),
        sync,
        line("clock", t("service.clock_ok") if state["clock_synced"] else t("service.clock_bad"),
             state["clock_synced"]),
        waiting,
    ]
    if state.get("storage_error"):
        lines.insert(0, line("storage", state["storage_error"], False))
    return lines


def plan_text(plan: attendance.DayPlan) -> str:
    if not plan.workday:
        reason = plan.reason or t("plan.no_reason")
        if reason == "weekend":  # the server's words for a day off (docs/SYNC_API.md)
            reason = t("plan.weekend")
        elif reason.startswith("holiday:"):
            reason = reason.split(":", 1)[1].strip() or t("plan.no_reason")
        return t("plan.holiday", reason=reason)
    if plan.start is None:
        return t("plan.no_start")
    key = "plan.server" if plan.from_server else "plan.config"
    return t(key, start=plan.start.strftime("%H:%M"), grace=plan.grace_minutes)


def coming_days(db: sqlite_utils.Database, day: date, days: int) -> list[dict[str, str]]:
    """The plans of the days after ``day`` the page shows (``page_days`` from the server:
    1 shows none, 7 the next six days)."""
    web = edge_context().config.web
    coming = []
    for offset in range(1, max(1, days)):
        when = day + timedelta(days=offset)
        coming.append({"date": when.isoformat(), "label": format_day(when),
                       "text": plan_text(daily.day_plan(db, when, web))})
    return coming


def today_summary(db: sqlite_utils.Database, day: date) -> dict[str, Any]:
    """Everything the "today" page shows, as JSON (the page refreshes itself from it)."""
    plan = daily.day_plan(db, day, edge_context().config.web)
    sheet = daily.day_sheet(db, day, plan, day)
    taps = daily.recent_taps(db, day)
    for tap in taps:
        tap["verdict_label"] = verdict_label(tap["verdict"])
    notice, days = remote_settings.page_settings(db)
    return {
        "date": day.isoformat(),
        "date_label": format_day(day),
        "plan": plan_text(plan),
        "notice": notice,
        "coming": coming_days(db, day, days),
        "counts": attendance.count_statuses(row.status for row in sheet),
        "taps": taps,
        "service_lines": service_lines(service_state()),
    }


# -- pages --------------------------------------------------------------------------------------
@bp.get("/")
def today() -> Any:
    return render_template("today.html", summary=today_summary(get_db(), local_today()))


@bp.get("/roster")
def roster() -> Any:
    db = get_db()
    day = local_today()
    people = site_people(db)
    group = request.args.get("group")
    shown = people if group is None else [p for p in people if p.group_name == group]
    plan = daily.day_plan(db, day, edge_context().config.web)
    sheet = daily.day_sheet(db, day, plan, day, people=shown)
    counts = attendance.count_statuses(row.status for row in sheet)
    return render_template("roster.html", sheet=sheet, groups=groups(people), group=group,
                           counts=counts, day_label=format_day(day), plan=plan_text(plan),
                           status_label=status_label)


def _parse_date(text: str, field: str, errors: dict[str, str]) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = t("excuse.bad_date")
        return None


def excuse_days(excuse: Excuse) -> str:
    """"2026-11-20", or "2026-11-20 – 2026-11-22" for several days."""
    first, last = excuse.date_from.isoformat(), excuse.date_to.isoformat()
    return first if first == last else f"{first} – {last}"


@bp.route("/excuses", methods=["GET", "POST"])
def excuses() -> Any:
    db = get_db()
    day = local_today()
    errors: dict[str, str] = {}
    form = {"person_id": request.args.get("person_id", ""), "kind": "sakit",
            "date_from": day.isoformat(), "date_to": day.isoformat(), "note": ""}
    if request.method == "POST":
        form = {key: request.form.get(key, "").strip() for key in form}
        person = find_person(db, form["person_id"]) if form["person_id"] else None
        if person is None:
            errors["person_id"] = t("excuse.pick_person")
        if form["kind"] not in KINDS:
            errors["kind"] = t("excuse.pick_kind")
        first = _parse_date(form["date_from"], "date_from", errors)
        last = _parse_date(form["date_to"] or form["date_from"], "date_to", errors)
        if first and last and last < first:
            errors["date_to"] = t("excuse.order")
        if not errors:
            assert person is not None and first is not None and last is not None
            try:
                add_excuse(db, person_id=person.person_id, kind=form["kind"], date_from=first,
                           date_to=last, note=form["note"], created_by=operator())
            except ExcuseError as exc:
                errors[exc.field] = exc.message
            else:
                edge_context().nudge_sync()
                flash(t("excuse.saved", name=person.label, kind=status_label(form["kind"])), "ok")
                return redirect(url_for("pages.excuses"))
    people = site_people(db)
    names = {p.person_id: p for p in people}
    listed = recent_excuses(db, since=day - timedelta(days=7))
    return render_template("excuses.html", people=people, names=names, form=form,
                           errors=errors, kinds=KINDS, excuses=listed,
                           status_label=status_label, format_when=format_when,
                           excuse_days=excuse_days), \
        400 if errors else 200


@bp.post("/excuses/<excuse_id>/withdraw")
def withdraw(excuse_id: str) -> Any:
    """Withdraw ("Batalkan") an excuse recorded by mistake; the server is told at the next
    sync. An unknown excuse is a 404; one already withdrawn is said so."""
    db = get_db()
    try:
        excuse = withdraw_excuse(db, excuse_id, withdrawn_by=operator())
    except UnknownExcuse:
        abort(404)
    except ExcuseError:
        flash(t("excuse.already_withdrawn"), "error")
    else:
        edge_context().nudge_sync()
        person = find_person(db, excuse.person_id)
        flash(t("excuse.withdrawn", name=person.label if person else excuse.person_id,
                kind=status_label(excuse.kind), days=excuse_days(excuse)), "ok")
    return redirect(url_for("pages.excuses"))


@bp.get("/cards")
def cards_page() -> Any:
    db = get_db()
    day = local_today()
    people = site_people(db)
    active_cards = [(uid, p) for p in people for uid, status in p.cards if status == "active"]
    ctx = edge_context()
    return render_template(
        "cards.html", people=people, active_cards=active_cards,
        unknown=daily.unknown_cards(db, day - timedelta(days=UNKNOWN_CARD_DAYS)),
        requests=cards.recent_requests(db), names={p.person_id: p for p in people},
        enrolment_available=ctx.enrolment is not None,
        enrolment=ctx.enrolment.state() if ctx.enrolment else {"outcome": None},
        format_when=format_when, today=day)


def arm_enrolment(person_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """Arm "bind the next unknown card to this person"; returns (state, error)."""
    ctx = edge_context()
    if ctx.enrolment is None:
        return None, t("enrol.unavailable")
    person: Person | None = find_person(get_db(), person_id) if person_id else None
    if person is None:
        return None, t("excuse.pick_person")
    return ctx.enrolment.arm(person.person_id, person.label, operator()), None


@bp.post("/cards/enrol")
def enrol() -> Any:
    state, error = arm_enrolment(request.form.get("person_id", ""))
    if error:
        flash(error, "error")
    return redirect(url_for("pages.cards_page"))


@bp.post("/cards/lost")
def lost() -> Any:
    uid = request.form.get("card_uid", "")
    try:
        request_ = cards.report_lost(get_db(), uid, operator())
    except (cards.CardRequestError, ValueError) as exc:
        flash(t("lost.failed", reason=str(exc)), "error")
    else:
        edge_context().nudge_sync()
        flash(t("lost.done", card=request_.card_uid), "ok")
    return redirect(url_for("pages.cards_page"))
