"""``attendance-server`` commands: registry (registered by :mod:`server.cli`).

* ``import sites|employees|students|cards FILE``: check the whole file, show
  the diff, apply it in one transaction (or only show it with ``--dry-run``);
* ``card show|lost|block|unblock|bind|replace|refresh``: the card lifecycle.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import click

T = TypeVar("T")
#: Below this many items no progress bar is drawn (it would only flicker).
PROGRESS_MIN_ITEMS = 500


def _progress(label: str, items: Iterable[T], length: int) -> Iterator[T]:
    """A progress bar on stderr for long steps, when stderr is a terminal."""
    if length < PROGRESS_MIN_ITEMS or not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, length=length, label=label.ljust(16), file=sys.stderr) as bar:
        yield from bar


def _run_import(ctx: click.Context, importer: Callable[..., Any], path: Path, *,
                dry_run: bool, as_json: bool, limit: int, **options: Any) -> None:
    """Run one import and print its diff; problems are listed on stderr, then exit 1."""
    from server.cli import _engine, fail
    from server.db import reading
    from server.registry import RegistryImportError

    engine = _engine(ctx)
    try:
        if dry_run:
            with reading(engine) as conn:
                diff = importer(conn, path, dry_run=True, progress=_progress, **options)
        else:
            with engine.begin() as conn:
                diff = importer(conn, path, progress=_progress, **options)
    except RegistryImportError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        fail(exc.summary())
    if as_json:
        click.echo(json.dumps(diff.to_dict(limit=None)))
        return
    click.echo(diff.describe(limit=limit))
    if dry_run:
        click.echo("dry run: nothing was written")
    elif diff.applied:
        click.echo("applied")


def _import_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every import command has."""
    func = click.option("--limit", default=10, show_default=True, type=click.IntRange(0),
                        help="Entries shown per category of the diff.")(func)
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print the diff as one JSON object (every entry).")(func)
    func = click.option("--dry-run", is_flag=True,
                        help="Check the file and show the diff; write nothing.")(func)
    return click.argument("file", type=click.Path(dir_okay=False, path_type=Path))(func)


_effective_option = click.option(
    "--effective", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
    help="Date the joiners, leavers and transfers take effect, unless a row's "
         "effective_from says otherwise (default: today in each site's time zone).")


def _day(value: datetime | None) -> date | None:
    return value.date() if value else None


@click.group("import")
def import_group() -> None:
    """Import registries: sites, ASN employees, students (Dapodik), cards.

    Every row is checked first; with any problem nothing is imported and
    every problem is listed with file, line and field. Otherwise the diff
    against the database is shown and applied in one transaction.
    Re-importing the same file changes nothing. Formats: docs/REGISTRY.md.
    """


@import_group.command("sites")
@_import_options
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]),
              help="File format (default: detected).")
@click.pass_context
def import_sites_command(ctx: click.Context, file: Path, dry_run: bool, as_json: bool,
                         limit: int, fmt: str | None) -> None:
    """Add or update sites from FILE (code,name,kind,timezone,schedule,regency).

    kind is school (sekolah; the code is the NPSN) or office (kantor);
    timezone is WIB, WITA, WIT or an IANA name. Sites missing from FILE stay.
    """
    from server.registry import import_sites

    _run_import(ctx, import_sites, file, dry_run=dry_run, as_json=as_json, limit=limit,
                fmt=fmt)


@import_group.command("employees")
@_import_options
@_effective_option
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]),
              help="File format (default: detected).")
@click.pass_context
def import_employees_command(ctx: click.Context, file: Path, dry_run: bool, as_json: bool,
                             limit: int, effective: datetime | None, fmt: str | None) -> None:
    """Import the ASN employee registry of the regency from FILE.

    Columns: nip,nik,name,site_code,unit,position,status,sex,birth_date and
    optionally effective_from (Indonesian names such as nama, kode_opd,
    unit_kerja, jabatan, status_pegawai, jenis_kelamin, tanggal_lahir work
    too). FILE is the whole registry: employees missing from it are leavers.
    """
    from server.registry import import_employees

    _run_import(ctx, import_employees, file, dry_run=dry_run, as_json=as_json, limit=limit,
                effective=_day(effective), fmt=fmt)


@import_group.command("students")
@_import_options
@_effective_option
@click.option("--npsn", help="The school's NPSN (default: from a title row 'NPSN : …').")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv", "dapodik-json"]),
              help="xlsx or csv (the Dapodik 'Daftar Peserta Didik' export) or "
                   "dapodik-json (the getPesertaDidik web-service answer); default: detected.")
@click.pass_context
def import_students_command(ctx: click.Context, file: Path, dry_run: bool, as_json: bool,
                            limit: int, effective: datetime | None, npsn: str | None,
                            fmt: str | None) -> None:
    """Import one school's students from a Dapodik export FILE.

    Reads the columns Nama, NISN, NIK, JK, Tanggal Lahir and Rombel Saat Ini
    by name below any title rows. FILE is the school's full list: its
    students missing from it are leavers (or transfers, once another
    school's export lists them).
    """
    from server.registry import import_students

    _run_import(ctx, import_students, file, dry_run=dry_run, as_json=as_json, limit=limit,
                effective=_day(effective), npsn=npsn, fmt=fmt)


@import_group.command("cards")
@_import_options
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]),
              help="File format (default: detected).")
@click.pass_context
def import_cards_command(ctx: click.Context, file: Path, dry_run: bool, as_json: bool,
                         limit: int, fmt: str | None) -> None:
    """Import the card register from FILE (card_uid,nip,nisn,nik,status,valid_from,valid_to).

    Each row names the holder by NIP, NISN or NIK. Cards missing from FILE
    are left as they are; a UID given to someone else keeps its old taps with
    the old holder.
    """
    from server.registry import import_cards

    _run_import(ctx, import_cards, file, dry_run=dry_run, as_json=as_json, limit=limit,
                fmt=fmt)


# -- the card lifecycle -----------------------------------------------------------------------
def _when(value: datetime | None) -> str:
    from server.cli import _when as when

    return when(value)


def _moment(zone: str, text: str | None) -> datetime | None:
    """``--at``: ISO 8601; without an offset, a local time in ``zone``."""
    if text is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--at {text!r} is not an ISO 8601 time such as "
                         f"2026-03-02T07:15 or 2026-03-02T07:15+07:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment


_at_option = click.option(
    "--at", "at_text", metavar="TIME",
    help="When it happened (ISO 8601; without an offset: local time at the card holder's "
         "site). Default: now. Taps since then are judged again.")


@click.group("card")
def card_group() -> None:
    """The card register: show a card, report it lost, block, unblock, bind, replace."""


@card_group.command("show")
@click.argument("uid")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def card_show(ctx: click.Context, uid: str, as_json: bool) -> None:
    """Show card UID: holder, status, validity and its whole history."""
    from server.cards import card_info
    from server.cli import _engine, _jsonable
    from server.db import reading

    with reading(_engine(ctx)) as conn:
        info = card_info(conn, uid)
    if as_json:
        data = _jsonable({k: v for k, v in info.items() if k != "history"})
        data = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}
        data["history"] = [_jsonable(h) for h in info["history"]]
        click.echo(json.dumps(data))
        return
    person = info["person"] or {}
    click.echo(f"card     {info['card_uid']}")
    click.echo(f"holder   {info['person_id']} {person.get('name') or ''}"
               + ("" if person.get("active", True) else " (left the registry)"))
    click.echo(f"status   {info['status']} since {_when(info['status_since'])} "
               f"(sent to the gates as {info['gate_status']})")
    click.echo(f"valid    {info['valid_from'] or '-'} .. {info['valid_to'] or '-'}")
    click.echo(f"site     {info['site_code'] or '- (on no roster)'}")
    click.echo("history:")
    for h in info["history"]:
        click.echo(f"  {_when(h['effective_at'])}  {h['person_id']:<20} {h['status']}")


def _status_command(ctx: click.Context, uid: str, status: str, at_text: str | None,
                    *, refuse_replaced: bool = False) -> None:
    from server.cards import card_info, card_zone, set_card_status
    from server.cli import _engine, fail

    with _engine(ctx).begin() as conn:
        info = card_info(conn, uid)
        if refuse_replaced and info["status"] == "replaced":
            fail(f"card {info['card_uid']} was replaced; to use it again give it to its "
                 f"holder with: attendance-server card bind")
        at = _moment(card_zone(conn, info["card_uid"]), at_text)
        changed = set_card_status(conn, info["card_uid"], status, at=at)
    if changed:
        click.echo(f"card {info['card_uid']} ({info['person_id']}): {status} from "
                   f"{_when(at) if at else 'now'}")
    else:
        click.echo(f"card {info['card_uid']} is already {status}")


@card_group.command("lost")
@click.argument("uid")
@_at_option
@click.pass_context
def card_lost(ctx: click.Context, uid: str, at_text: str | None) -> None:
    """Report card UID lost: its taps from --at on are anomalies, earlier taps still count."""
    _status_command(ctx, uid, "lost", at_text)


@card_group.command("block")
@click.argument("uid")
@_at_option
@click.pass_context
def card_block(ctx: click.Context, uid: str, at_text: str | None) -> None:
    """Block card UID: the gates refuse it from --at on."""
    _status_command(ctx, uid, "blocked", at_text)


@card_group.command("unblock")
@click.argument("uid")
@_at_option
@click.pass_context
def card_unblock(ctx: click.Context, uid: str, at_text: str | None) -> None:
    """Make a blocked or lost card UID active again."""
    _status_command(ctx, uid, "active", at_text, refuse_replaced=True)


@card_group.command("bind")
@click.argument("uid")
@click.option("--nip", help="The holder's NIP (employees).")
@click.option("--nisn", help="The holder's NISN (students).")
@click.option("--nik", help="The holder's NIK.")
@click.option("--valid-from", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="First valid day (local date).")
@click.option("--valid-to", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Last valid day (local date).")
@_at_option
@click.pass_context
def card_bind(ctx: click.Context, uid: str, nip: str | None, nisn: str | None, nik: str | None,
              valid_from: datetime | None, valid_to: datetime | None,
              at_text: str | None) -> None:
    """Give card UID to the person named by --nip, --nisn or --nik (status active).

    A new card counts from the start of its first valid day; a card taken
    from someone else from --at (default now), and its earlier taps stay
    with its earlier holder.
    """
    from server.cards import bind_card, find_person, parse_card_uid, person_zone
    from server.cli import _engine

    card = parse_card_uid(uid)
    with _engine(ctx).begin() as conn:
        person_id = find_person(conn, nip=nip, nisn=nisn, nik=nik)
        at = _moment(person_zone(conn, person_id), at_text)
        result = bind_card(conn, card, person_id, at=at, valid_from=_day(valid_from),
                           valid_to=_day(valid_to))
    what = {"new": "registered", "rebound": "given", "changes": "updated"}.get(result or "")
    click.echo(f"card {card} {what} to {person_id}" if what else
               f"card {card} already belongs to {person_id} with these dates")


@card_group.command("replace")
@click.argument("old")
@click.argument("new")
@_at_option
@click.pass_context
def card_replace(ctx: click.Context, old: str, new: str, at_text: str | None) -> None:
    """Replace card OLD by card NEW: OLD becomes 'replaced', NEW goes to OLD's holder."""
    from hardware.uid import normalise_uid
    from server.cards import card_zone, replace_card
    from server.cli import _engine

    with _engine(ctx).begin() as conn:
        at = _moment(card_zone(conn, normalise_uid(old)), at_text)
        person_id = replace_card(conn, old, new, at=at)
    click.echo(f"card {normalise_uid(old)} replaced by {normalise_uid(new)} for {person_id}")


@card_group.command("refresh")
@click.pass_context
def card_refresh(ctx: click.Context) -> None:
    """Rebuild every site's roster from the register as of today.

    Run it daily (cron or a systemd timer): cards whose validity starts or
    ends today change status on the gates only through a refresh.
    """
    from server.cards import refresh_rosters
    from server.cli import _engine

    with _engine(ctx).begin() as conn:
        summaries = refresh_rosters(conn)
    changed = [s for s in summaries if s.version]
    for summary in changed:
        click.echo(summary.describe())
    click.echo(f"{len(summaries)} site(s) checked, {len(changed)} roster(s) changed")


#: The click commands and groups this module adds to ``attendance-server``.
COMMANDS: list[click.Command] = [import_group, card_group]
