"""Sync with the central server: push the outbox, heartbeats, roster pulls.

:class:`SyncClient` speaks the HTTP contract of ``docs/SYNC_API.md`` with
``requests``; :class:`SyncWorker` is the loop that runs in the edge service
(and once by hand from ``attendance-edge sync``).

The one rule that matters: a tap is marked sent only when the server's reply
names it (accepted, duplicate or conflict). A request cut at any point is
simply pushed again; the server's ``event_id`` idempotency makes that safe.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import requests

from edge import __version__, cards, daily, excuses, people
from edge import settings as remote_settings
from edge.backoff import Backoff, parse_retry_after
from edge.clock import Clock
from edge.errors import EdgeError
from edge.outbox import Outbox, TapRecord
from edge.rules import CARD_STATUSES, RosterEntry

log = logging.getLogger(__name__)

ACK_STATUSES = frozenset({"accepted", "duplicate", "conflict"})
#: The wall clock counts as confirmed by the server when it is this close.
CLOCK_TOLERANCE_SECONDS = 5.0


class SyncError(EdgeError, ConnectionError):
    """A sync exchange failed; it will be retried."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthorized(SyncError):
    """The server refused the device token (revoked, or never enrolled)."""


class Rejected(SyncError):
    """The server refused the request as bad (4xx): retrying the same will not help."""

    def __init__(self, message: str, *, retry_after: float | None = None,
                 status: int = 400) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


# -- enrolment -------------------------------------------------------------------------
@dataclass
class Enrolment:
    device_id: str
    site: dict[str, Any]
    server_url: str
    enrolled_at: str
    token: str = field(repr=False, default="")


def hardware_id() -> str:
    """A stable id of this board: the Pi's CPU serial, else the machine id."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("Serial"):
                return "pi-" + line.split(":", 1)[1].strip()
    except OSError:
        pass
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return "machine-" + Path(path).read_text().strip()
        except OSError:
            continue
    return "unknown"


def save_enrolment(enrolment: Enrolment, info_path: Path, token_path: Path) -> None:
    """Write the enrolment; the token file is created with mode 0600 before any byte is in it."""
    info_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = token_path.with_name(token_path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(enrolment.token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, token_path)
    info = {"device_id": enrolment.device_id, "site": enrolment.site,
            "server_url": enrolment.server_url, "enrolled_at": enrolment.enrolled_at}
    tmp_info = info_path.with_name(info_path.name + ".tmp")
    tmp_info.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp_info, info_path)


def load_enrolment(info_path: Path, token_path: Path) -> Enrolment | None:
    """The saved enrolment, or None when the device was never enrolled."""
    if not info_path.exists() or not token_path.exists():
        return None
    info = json.loads(info_path.read_text())
    return Enrolment(device_id=info["device_id"], site=info.get("site", {}),
                     server_url=info.get("server_url", ""),
                     enrolled_at=info.get("enrolled_at", ""),
                     token=token_path.read_text().strip())


# -- HTTP ----------------------------------------------------------------------------------
class SyncClient:
    """The edge's side of the sync API, over one ``requests.Session``."""

    def __init__(self, server_url: str, *, token: str | None = None,
                 session: requests.Session | None = None, timeout: float = 15.0,
                 ca_file: str | None = None) -> None:
        self.base = server_url.rstrip("/") + "/api/v1"
        self.token = token
        self.session = session or requests.Session()
        self.timeout = timeout
        self.verify: bool | str = ca_file or True
        self.session.headers["User-Agent"] = f"attendance-edge/{__version__}"

    def close(self) -> None:
        self.session.close()

    def _send(self, method: str, path: str, *, json_body: Any = None,
              params: dict[str, str] | None = None, auth: bool = True,
              headers: dict[str, str] | None = None) -> requests.Response:
        headers = dict(headers or {})
        if auth:
            if not self.token:
                raise Unauthorized("this device is not enrolled (attendance-edge enroll)")
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            return self.session.request(method, self.base + path, json=json_body,
                                        params=params, headers=headers,
                                        timeout=self.timeout, verify=self.verify)
        except requests.RequestException as exc:
            raise SyncError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    def _call(self, method: str, path: str, *, json_body: Any = None,
              params: dict[str, str] | None = None, auth: bool = True) -> dict[str, Any]:
        response = self._send(method, path, json_body=json_body, params=params, auth=auth)
        return self._reply(method, path, response)

    @staticmethod
    def _reply(method: str, path: str, response: requests.Response) -> dict[str, Any]:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            return body
        message = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message", ""))
        text = f"{method} {path}: HTTP {response.status_code} {message}".strip()
        if response.status_code == 401:
            raise Unauthorized(text)
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise SyncError(text, retry_after=retry_after)
        if response.status_code == 200:
            raise SyncError(f"{method} {path}: unreadable reply")
        raise Rejected(text, retry_after=retry_after, status=response.status_code)

    def enroll(self, claim_code: str, hardware: str, name: str | None = None,
               outbox: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"claim_code": claim_code, "hardware_id": hardware}
        if name:
            body["name"] = name
        if outbox is not None:
            body["outbox"] = outbox
        return self._call("POST", "/devices/enroll", json_body=body, auth=False)

    def rotate_token(self, token_sha256: str) -> dict[str, Any]:
        """``POST /devices/token``: make the token of this hash the device's (edge.tokens)."""
        return self._call("POST", "/devices/token", json_body={"token_sha256": token_sha256})

    def push_taps(self, taps: list[dict[str, Any]], clock: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/taps", json_body={"clock": clock, "taps": taps})

    def heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/heartbeat", json_body=payload)

    def roster(self, since: str | None) -> dict[str, Any]:
        return self._call("GET", "/roster", params={"since": since} if since else None)

    def push_excuses(self, excuses: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /excuses``: idempotent by ``excuse_id`` (accepted or duplicate each)."""
        return self._call("POST", "/excuses", json_body={"excuses": excuses})

    def push_withdrawals(self, withdrawals: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /excuses/withdraw``: each item is the whole excuse (as for ``push_excuses``);
        idempotent by ``excuse_id`` (withdrawn or duplicate each)."""
        return self._call("POST", "/excuses/withdraw", json_body={"withdrawals": withdrawals})

    def push_card_requests(self, card_requests: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /cards/requests``: bind or lost, idempotent by ``request_id``."""
        return self._call("POST", "/cards/requests", json_body={"requests": card_requests})

    def people(self, etag: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
        """``GET /roster/people``: the site's people, or None when unchanged since ``etag``.

        Returns the reply and the tag to send next time: the reply's ``ETag``
        header as given, else its ``version`` as a quoted entity tag.
        """
        headers = {"If-None-Match": etag} if etag else None
        response = self._send("GET", "/roster/people", headers=headers)
        if response.status_code == 304:
            return None, etag
        body = self._reply("GET", "/roster/people", response)
        tag = response.headers.get("ETag")
        if not tag and body.get("version") not in (None, ""):
            version = str(body["version"])
            tag = version if version.startswith(('"', 'W/"')) else f'"{version}"'
        return body, tag


# -- the worker ----------------------------------------------------------------------------------
def tap_payload(tap: TapRecord, device_id: str) -> dict[str, Any]:
    return {
        "event_id": tap.event_id,
        "device_id": tap.device_id or device_id,
        "seq": tap.seq,
        "card_uid": tap.card_uid,
        "tapped_at": tap.tapped_at,
        "boot_id": tap.boot_id,
        "mono_ns": tap.mono_ns,
        "clock_synced": tap.clock_synced,
        "reader": tap.reader,
        "verdict": tap.verdict,
    }


def acknowledged_seqs(sent: list[TapRecord], reply: dict[str, Any]) -> list[int]:
    """The ``seq`` of the sent taps that the reply acknowledges.

    Only events that were in the batch and carry a known status count; a
    reply naming anything else is ignored rather than trusted.
    """
    by_event = {t.event_id: t.seq for t in sent}
    results = reply.get("results")
    if not isinstance(results, list):
        raise SyncError("reply to POST /taps has no results list")
    seqs = []
    for item in results:
        if not isinstance(item, dict):
            continue
        seq = by_event.get(item.get("event_id"))
        if seq is not None and item.get("status") in ACK_STATUSES:
            seqs.append(seq)
    return seqs


def roster_entries(cards: list[dict[str, Any]]) -> list[RosterEntry]:
    from hardware.uid import normalise_uid

    entries = []
    for card in cards:
        status = card.get("status", "active")
        if status not in CARD_STATUSES:
            raise SyncError(f"roster reply: unknown card status {status!r}")
        try:
            uid = normalise_uid(card["card_uid"])
        except (KeyError, ValueError) as exc:
            raise SyncError(f"roster reply: bad card: {exc}") from None
        entries.append(RosterEntry(uid, str(card.get("person_id", "")),
                                   card.get("name") or "", card.get("kind") or "",
                                   card.get("group") or "", status))
    return entries


@dataclass
class SyncReport:
    """What one round did, for ``attendance-edge sync`` and the logs."""

    pushed: int = 0
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    batches: int = 0
    missing_seq: list[list[int]] = field(default_factory=list)
    sent_again: int = 0
    """Acknowledged taps made unsent again because the server no longer holds them."""
    heartbeat: bool = False
    roster: str = ""
    excuses_sent: int = 0
    withdrawals_sent: int = 0
    card_requests_sent: int = 0
    people: str = ""
    plans: int | None = None
    settings: str = ""
    """The remote settings received: "" (none in the reply), "unchanged" or the new ones."""
    notes: list[str] = field(default_factory=list)
    """Problems that did not stop the round (a refused excuse, an endpoint the server lacks)."""
    clock_offset_s: float | None = None
    error: str | None = None

    def summary(self) -> str:
        parts = [f"pushed {self.pushed} tap(s) in {self.batches} batch(es)"
                 f" (accepted {self.accepted}, duplicate {self.duplicate},"
                 f" conflict {self.conflict})"]
        if self.missing_seq:
            parts.append(f"server misses seq {self.missing_seq}")
        if self.sent_again:
            parts.append(f"{self.sent_again} acknowledged tap(s) to send again")
        parts.append("heartbeat ok" if self.heartbeat else "no heartbeat")
        if self.roster:
            parts.append(f"roster {self.roster}")
        if self.excuses_sent:
            parts.append(f"sent {self.excuses_sent} excuse(s)")
        if self.withdrawals_sent:
            parts.append(f"sent {self.withdrawals_sent} excuse withdrawal(s)")
        if self.card_requests_sent:
            parts.append(f"sent {self.card_requests_sent} card request(s)")
        if self.people:
            parts.append(f"people {self.people}")
        if self.plans is not None:
            parts.append(f"{self.plans} day plan(s)")
        if self.settings:
            parts.append(f"settings {self.settings}")
        parts.extend(self.notes)
        if self.clock_offset_s is not None:
            parts.append(f"clock offset {self.clock_offset_s:+.1f} s")
        if self.error:
            parts.append(f"ERROR {self.error}")
        return "; ".join(parts)


class SyncWorker:
    """Pushes the outbox, sends heartbeats and pulls the roster, in a background thread."""

    def __init__(self, outbox: Outbox, client: SyncClient, *, device_id: str, clock: Clock,
                 batch_size: int = 500, push_interval: float = 5.0,
                 heartbeat_seconds: float = 60.0, roster_seconds: float = 300.0,
                 offline_after: float = 3600.0,
                 health: Callable[[], dict[str, Any]] | None = None,
                 when_offline: Callable[[bool], None] | None = None,
                 backoff: Backoff | None = None, rng: random.Random | None = None) -> None:
        self.outbox = outbox
        self.client = client
        self.device_id = device_id
        self.clock = clock
        self.batch_size = batch_size
        self.push_interval = push_interval
        self.heartbeat_seconds = heartbeat_seconds
        self.roster_seconds = roster_seconds
        self.offline_after = offline_after
        self.health = health or (lambda: {})
        self.when_offline = when_offline
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.last_success: float | None = None
        self.last_success_at: str | None = None
        self.last_error: str | None = None
        self.next_attempt_at: float = 0.0
        self.started = time.monotonic()
        self._next_heartbeat = 0.0
        self._next_roster = 0.0
        #: seqs made unsent again this run (see _send_again_what_server_lacks)
        self._sent_again: set[int] = set()
        #: side exchanges the server refused (4xx) -> when to offer them again
        self._paused_until: dict[str, float] = {}
        self._offline_shown = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._round_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Called with the remote settings kept from a roster reply, when they changed.
        self.when_settings: Callable[[dict[str, Any]], None] | None = None
        #: run first in every round (build_sync_worker: settle the device token, and
        #: rotate it when it is old, edge.tokens)
        self.before_round: Callable[[], Any] | None = None

    # -- one exchange of each kind ------------------------------------------------------
    def _clock_sample(self) -> dict[str, Any]:
        now = self.clock.now()
        return {"boot_id": now.boot_id, "mono_ns": now.mono_ns, "wall_time": now.iso,
                "clock_synced": now.synced}

    def _note_server_time(self, reply: dict[str, Any], report: SyncReport) -> None:
        server_time = reply.get("server_time")
        if not isinstance(server_time, str):
            return
        try:
            server = datetime.fromisoformat(server_time.replace("Z", "+00:00"))
        except ValueError:
            return
        offset = (datetime.now(timezone.utc) - server).total_seconds()
        report.clock_offset_s = offset
        if abs(offset) <= CLOCK_TOLERANCE_SECONDS:
            self.clock.mark_synced()

    def push_once(self, report: SyncReport) -> int:
        """Push one batch of the oldest unsent taps; returns how many were sent."""
        batch = list(self.outbox.taps(unacked_only=True, limit=self.batch_size))
        if not batch:
            return 0
        reply = self.client.push_taps([tap_payload(t, self.device_id) for t in batch],
                                      self._clock_sample())
        seqs = acknowledged_seqs(batch, reply)
        self.outbox.mark_acked(seqs)
        for item in reply["results"]:
            status = item.get("status") if isinstance(item, dict) else None
            if status in ("accepted", "duplicate", "conflict"):
                setattr(report, status, getattr(report, status) + 1)
            if status == "conflict":
                log.error("server quarantined tap %s as a conflict", item.get("event_id"))
        report.pushed += len(batch)
        report.batches += 1
        missing = reply.get("missing_seq")
        if isinstance(missing, list) and missing:
            report.missing_seq = missing
        self._note_server_time(reply, report)
        self._send_again_what_server_lacks(reply, report)
        if len(seqs) < len(batch):
            raise SyncError(f"server acknowledged {len(seqs)} of {len(batch)} taps")
        return len(batch)

    def heartbeat_once(self, report: SyncReport) -> None:
        backlog, oldest = self.outbox.backlog()
        health = self.health()
        payload = {
            **self._clock_sample(),
            "backlog": backlog,
            "oldest_unsent_at": oldest,
            "reader_ok": all(r.get("connected") for r in health.get("readers", [])),
            "readers": health.get("readers", []),
            "versions": {"software": __version__},
        }
        reply = self.client.heartbeat(payload)
        report.heartbeat = True
        self._note_server_time(reply, report)
        self._send_again_what_server_lacks(reply, report)

    def _send_again_what_server_lacks(self, reply: dict[str, Any], report: SyncReport) -> None:
        """Acknowledged taps the server says it does not hold (its database was restored
        from a backup) become unsent again, once per run of the service: the server keeps
        each tap once whatever happens (``event_id``), so sending again is always safe."""
        highest, missing = reply.get("highest_seq"), reply.get("missing_seq")
        if not isinstance(highest, int) or isinstance(highest, bool):
            return  # a server of an earlier release does not say
        ranges = [(r[0], r[1]) for r in missing or [] if isinstance(r, list) and len(r) == 2
                  and all(isinstance(v, int) and not isinstance(v, bool) for v in r)]
        again = self.outbox.take_back_acks(highest, ranges, skip=self._sent_again)
        if again:
            self._sent_again.update(again)
            report.sent_again += len(again)
            log.warning("the server does not hold %d acknowledged tap(s) (seq %d-%d; restored "
                        "from a backup?): sending them again", len(again), again[0], again[-1])

    def roster_once(self, report: SyncReport) -> None:
        cursor = self.outbox.meta("roster_cursor")
        reply = self.client.roster(cursor)
        entries = roster_entries(reply.get("cards") or [])
        removed = [str(u) for u in reply.get("removed") or []]
        full = bool(reply.get("full"))
        self.outbox.apply_roster(entries, removed, full=full, cursor=str(reply.get("cursor", "")))
        report.roster = (f"full, {len(entries)} card(s)" if full else
                         f"+{len(entries)} -{len(removed)}")
        if "plans" in reply:
            today = datetime.now().astimezone().date()
            report.plans = self.outbox.call(daily.store_plans, reply["plans"], today)
        if "settings" in reply:
            self._settings_received(reply["settings"], report)

    def _settings_received(self, raw: Any, report: SyncReport) -> None:
        """Keep the valid remote settings (a bad one is logged and left out: the edge's
        own value applies) and apply them when they changed."""
        kept, problems, changed = self.outbox.call(remote_settings.store_server_settings, raw)
        for problem in problems:
            log.warning("remote setting ignored: %s", problem)
        report.settings = (json.dumps(kept, ensure_ascii=False, sort_keys=True)
                           if changed else "unchanged")
        if changed:
            log.info("remote settings now %s", report.settings)
            if self.when_settings is not None:
                try:
                    self.when_settings(kept)
                except Exception:  # never let applying them cost the roster round
                    log.exception("applying the remote settings failed")

    def set_intervals(self, *, heartbeat_seconds: float, roster_seconds: float) -> None:
        """New heartbeat and roster intervals, in effect from now (a shorter one is not
        held back by a long wait already scheduled)."""
        now = time.monotonic()
        self.heartbeat_seconds = heartbeat_seconds
        self.roster_seconds = roster_seconds
        self._next_heartbeat = min(self._next_heartbeat, now + heartbeat_seconds)
        self._next_roster = min(self._next_roster, now + roster_seconds)

    def excuses_once(self, report: SyncReport) -> None:
        """Send every unsent excuse; each is marked sent once the reply names it."""
        self._send_excuses(report, "excuses", excuses.unsent_excuses, self.client.push_excuses,
                           excuses.mark_excuses_sent, ("accepted", "duplicate"),
                           "POST /excuses")

    def withdrawals_once(self, report: SyncReport) -> None:
        """Send every unsent withdrawal of an excuse; each is marked sent once the reply
        names it (``withdrawn``, or ``duplicate``: it was withdrawn already)."""
        self._send_excuses(report, "withdrawals", excuses.unsent_withdrawals,
                           self.client.push_withdrawals, excuses.mark_withdrawals_sent,
                           ("withdrawn", "duplicate"), "POST /excuses/withdraw")

    def _send_excuses(self, report: SyncReport, what: str,
                      unsent: Callable[..., list[excuses.Excuse]],
                      push: Callable[[list[dict[str, Any]]], dict[str, Any]],
                      mark: Callable[..., int], statuses: tuple[str, ...], call: str) -> None:
        """Batches of ``unsent`` excuses (or withdrawals) through ``push``; those the reply
        names with one of ``statuses`` are marked with ``mark`` and counted in the report's
        ``<what>_sent``."""
        counter = f"{what}_sent"
        while self._offered(what) and not self._stop.is_set():
            batch = self.outbox.call(unsent, self.batch_size)
            if not batch:
                return
            try:
                reply = push([e.payload() for e in batch])
            except Rejected as exc:
                self._note(report, what, exc)
                return
            sent = {e.excuse_id for e in batch}
            results = reply.get("results")
            if not isinstance(results, list):
                raise SyncError(f"reply to {call} has no results list")
            named = [r["excuse_id"] for r in results if isinstance(r, dict)
                     and r.get("excuse_id") in sent and r.get("status") in statuses]
            setattr(report, counter, getattr(report, counter) + self.outbox.call(mark, named))
            self._note_server_time(reply, report)
            if len(set(named)) < len(batch):
                raise SyncError(f"server acknowledged {len(set(named))} of {len(batch)} "
                                f"{what}")

    def card_requests_once(self, report: SyncReport) -> None:
        """Send every unsent card request; each is marked sent with the server's answer."""
        while self._offered("card requests") and not self._stop.is_set():
            batch = self.outbox.call(cards.unsent_requests, self.batch_size)
            if not batch:
                return
            try:
                reply = self.client.push_card_requests([r.payload() for r in batch])
            except Rejected as exc:
                self._note(report, "card requests", exc)
                return
            try:
                done = self.outbox.call(cards.record_results, batch, reply)
            except ValueError as exc:
                raise SyncError(str(exc)) from None
            report.card_requests_sent += len(done)
            for request_id, status in done.items():
                if status == "rejected":
                    log.error("server rejected card request %s", request_id)
            self._note_server_time(reply, report)
            if len(done) < len(batch):
                raise SyncError(f"server answered {len(done)} of {len(batch)} card requests")

    def people_once(self, report: SyncReport) -> None:
        """Refresh the site's people (for "pick a person"); unchanged is one small 304."""
        if not self._offered("people"):
            return
        try:
            body, tag = self.client.people(self.outbox.meta("people_etag"))
        except Rejected as exc:
            self._note(report, "people", exc)
            return
        if body is None:
            report.people = "unchanged"
            return
        try:
            found = people.people_from_reply(body.get("people"))
        except ValueError as exc:
            raise SyncError(f"reply to GET /roster/people: {exc}") from None
        self.outbox.call(people.replace_people, found)
        if tag:
            self.outbox.set_meta("people_etag", tag)
        report.people = f"{len(found)} person(s)"

    def _offered(self, what: str) -> bool:
        """False for a while after the server refused this exchange (see :meth:`_note`)."""
        return time.monotonic() >= self._paused_until.get(what, 0.0)

    def _note(self, report: SyncReport, what: str, exc: Rejected) -> None:
        """A refused side exchange: say so, pause it until the next roster interval, and
        let taps, heartbeats and rosters go on. 404/405 is a server of an older release
        (the items wait for its upgrade); another 4xx needs a person (logged as an error)."""
        first = what not in self._paused_until
        self._paused_until[what] = time.monotonic() + self.roster_seconds
        if exc.status in (404, 405):
            text = f"{what}: the server does not offer this yet"
            if first:
                log.warning("%s (%s); asking again every %.0f s", text, exc, self.roster_seconds)
        else:
            text = f"{what} refused: {exc}"
            log.error("%s; trying again in %.0f s", text, self.roster_seconds)
        report.notes.append(text)

    # -- rounds --------------------------------------------------------------------------------
    def run_round(self, *, force: bool = False) -> SyncReport:
        """Push everything unsent (taps, then excuses, their withdrawals and card requests),
        then heartbeat and roster (with the day plans and the site's people) when due (or
        ``force``)."""
        report = SyncReport()
        with self._round_lock:
            try:
                if self.before_round is not None:
                    self.before_round()
                while self.push_once(report) and not self._stop.is_set():
                    pass
                self.excuses_once(report)
                self.withdrawals_once(report)
                self.card_requests_once(report)
                now = time.monotonic()
                if force or now >= self._next_heartbeat:
                    self.heartbeat_once(report)
                    self._next_heartbeat = now + self.heartbeat_seconds
                if force or now >= self._next_roster:
                    self.roster_once(report)
                    self.people_once(report)
                    self._next_roster = now + self.roster_seconds
            except SyncError as exc:
                report.error = str(exc)
                self._failed(exc)
            else:
                self._succeeded()
        return report

    def _succeeded(self) -> None:
        self.backoff = self.backoff.succeeded()
        self.last_success = time.monotonic()
        self.last_success_at = datetime.now().astimezone().isoformat(timespec="seconds")
        self.last_error = None
        self._set_offline(False)

    def _failed(self, exc: SyncError) -> None:
        self.backoff = self.backoff.failed()
        delay = self.backoff.delay(self.rng, exc.retry_after)
        self.next_attempt_at = time.monotonic() + delay
        self.last_error = str(exc)
        level = logging.ERROR if isinstance(exc, (Unauthorized, Rejected)) else logging.WARNING
        log.log(level, "sync failed (%d in a row, next try in %.0f s): %s",
                self.backoff.failures, delay, exc)
        since = self.last_success if self.last_success is not None else self.started
        if time.monotonic() - since >= self.offline_after:
            self._set_offline(True)

    def _set_offline(self, offline: bool) -> None:
        if offline != self._offline_shown:
            self._offline_shown = offline
            if self.when_offline:
                self.when_offline(offline)

    def describe(self) -> dict[str, Any]:
        wait = max(0.0, self.next_attempt_at - time.monotonic())
        return {"server_url": self.client.base.rsplit("/api/v1", 1)[0],
                "device_id": self.device_id, "last_success_at": self.last_success_at,
                "last_error": self.last_error, "failures": self.backoff.failures,
                "next_attempt_in_s": round(wait, 1), "offline": self._offline_shown}

    # -- background thread ----------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """Push now (a tap was just recorded) instead of at the next interval."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.next_attempt_at - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            try:
                report = self.run_round()
            except Exception as exc:  # a bug or a strange reply must not end syncing for good
                log.exception("sync round failed unexpectedly")
                self._failed(SyncError(f"unexpected: {type(exc).__name__}: {exc}"))
                continue
            if report.pushed or report.error:
                log.info("sync: %s", report.summary())
            if report.error:
                continue
            self._wake.wait(self.push_interval)
            self._wake.clear()


def build_sync_worker(config: Any, outbox: Outbox, clock: Clock, *,
                      health: Callable[[], dict[str, Any]] | None = None,
                      when_offline: Callable[[bool], None] | None = None) -> SyncWorker | None:
    """The worker for this configuration, or None when the device is not enrolled."""
    enrolment = load_enrolment(config.enrolment_path, config.token_path)
    if enrolment is None:
        log.warning("not enrolled with a server: taps stay in the outbox "
                    "(attendance-edge enroll --server URL --code CODE)")
        return None
    url = config.sync.server_url or enrolment.server_url
    client = SyncClient(url, token=enrolment.token, timeout=config.sync.timeout_seconds,
                        ca_file=config.sync.ca_file or None)
    worker = SyncWorker(outbox, client, device_id=enrolment.device_id, clock=clock,
                        batch_size=config.sync.batch_size,
                        push_interval=config.sync.push_interval_seconds,
                        heartbeat_seconds=config.sync.heartbeat_seconds,
                        roster_seconds=config.sync.roster_seconds,
                        offline_after=config.sync.offline_after_seconds,
                        health=health, when_offline=when_offline)
    from edge import tokens

    rotation = tokens.AutoRotation(client, config.token_path, config.sync.token_max_age_days)

    def before_round() -> None:
        tokens.settle(client, config.token_path)
        rotation()

    worker.before_round = before_round
    return worker
