"""The edge's tap database: the outbox of taps waiting for the server, the
roster cache, and a little metadata, all in one SQLite file.

Durability rules (see ``docs/DESIGN.md``):

* WAL journal, ``synchronous=FULL`` on every connection: a committed tap
  survives a crash *and* a power cut.
* One tap is one ``BEGIN IMMEDIATE … COMMIT``; the feedback only says
  "accepted" after the commit returned.
* ``seq`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``: SQLite never reuses a
  number, even after old rows are pruned, and a rolled-back insert does not
  consume one, so the sequence stays gapless.
* Triggers refuse to edit a tap or delete one the server has not
  acknowledged, whoever holds the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, TypeVar

import sqlite_utils
from sqlite_utils.migrations import Migrations

from edge import rules
from edge.clock import Instant
from edge.errors import StorageError
from edge.lifecycle import raise_seq_floor

log = logging.getLogger(__name__)
_T = TypeVar("_T")

migrations = Migrations("attendance-edge")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE taps (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            device_id TEXT,
            card_uid TEXT NOT NULL,
            tapped_at TEXT NOT NULL,
            tapped_at_utc TEXT NOT NULL,
            boot_id TEXT NOT NULL,
            mono_ns INTEGER NOT NULL,
            clock_synced INTEGER NOT NULL CHECK (clock_synced IN (0, 1)),
            reader TEXT NOT NULL,
            verdict TEXT NOT NULL
                CHECK (verdict IN ('accepted', 'unknown', 'blocked', 'duplicate')),
            person_id TEXT,
            acked_at TEXT
        );
        -- No secondary index on taps: each one costs a page write per tap
        -- (docs/PERFORMANCE.md). Debounce uses an in-memory index, unsent
        -- taps are found from meta.acked_through, other reads scan a table
        -- that retention keeps small.

        CREATE TRIGGER taps_never_edited
        BEFORE UPDATE OF seq, event_id, device_id, card_uid, tapped_at, tapped_at_utc,
            boot_id, mono_ns, clock_synced, reader, verdict, person_id ON taps
        BEGIN
            SELECT RAISE(ABORT, 'a tap record is never edited');
        END;

        CREATE TRIGGER taps_kept_until_acked
        BEFORE DELETE ON taps WHEN OLD.acked_at IS NULL
        BEGIN
            SELECT RAISE(ABORT, 'a tap is kept until the server acknowledged it');
        END;

        CREATE TABLE roster (
            card_uid TEXT PRIMARY KEY,
            person_id TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL DEFAULT '',
            group_name TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'blocked', 'lost', 'replaced')),
            updated_at TEXT NOT NULL
        );
        CREATE INDEX roster_person ON roster (person_id);

        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """
    )
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('outbox_id', ?), ('created_at', ?), "
        "('acked_through', '0')",
        [str(uuid.uuid4()), datetime.now(timezone.utc).isoformat(timespec="seconds")],
    )


@migrations()
def m002_operator_page(db: sqlite_utils.Database) -> None:
    """Tables of the operator's page: accounts, excuses, card requests, the site's people.

    Written compactly on purpose: SQLite keeps this text in the schema table, and
    while the whole schema fits on the file's first page, damage elsewhere in the
    file cannot make the taps unreadable (see salvage_rows).
    """
    for statement in (
        # Operator accounts: a werkzeug hash, never the password; failures count towards a lock.
        "CREATE TABLE operators (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
        "created_at TEXT NOT NULL, changed_at TEXT NOT NULL, "
        "failed_attempts INTEGER NOT NULL DEFAULT 0, locked_until TEXT)",
        # Sakit / izin / dinas luar / cuti marked on the page, kept until the server has them.
        "CREATE TABLE excuses (excuse_id TEXT PRIMARY KEY, person_id TEXT NOT NULL, "
        "kind TEXT NOT NULL CHECK (kind IN ('sakit','izin','dinas_luar','cuti')), "
        "date_from TEXT NOT NULL, date_to TEXT NOT NULL CHECK (date_from <= date_to), "
        "note TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, created_by TEXT NOT NULL, "
        "sent_at TEXT)",
        # A new card bound or a card reported lost: applied to the roster cache at once,
        # sent to the server as a request; result/error are the server's answer.
        "CREATE TABLE card_requests (request_id TEXT PRIMARY KEY, "
        "kind TEXT NOT NULL CHECK (kind IN ('bind','lost')), card_uid TEXT NOT NULL, "
        "person_id TEXT, requested_at TEXT NOT NULL, created_by TEXT NOT NULL, sent_at TEXT, "
        "result TEXT, error TEXT)",
        # Everyone of the site, with or without a card (for "choose the person").
        "CREATE TABLE people (person_id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', "
        "kind TEXT NOT NULL DEFAULT '', group_name TEXT NOT NULL DEFAULT '', "
        "updated_at TEXT NOT NULL)",
    ):
        db.execute(statement)


@migrations()
def m003_excuse_withdrawals(db: sqlite_utils.Database) -> None:
    """An excuse withdrawn on the page ("Batalkan") is kept, marked, and its withdrawal sent.

    The row stays: an excuse pushed whose reply was lost may be on the server, so the
    withdrawal (which carries the whole excuse) must still go. Compact, as m002.
    """
    for column in ("withdrawn_at", "withdrawn_by", "withdrawal_sent_at"):
        db.execute(f"ALTER TABLE excuses ADD COLUMN {column} TEXT")


class TapRecord(NamedTuple):
    """One row of the outbox: the tap record of ARCHITECTURE.md."""

    seq: int
    event_id: str
    device_id: str | None
    card_uid: str
    tapped_at: str
    boot_id: str
    mono_ns: int
    clock_synced: bool
    reader: str
    verdict: str
    person_id: str | None = None
    acked_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self._asdict()


_TAP_COLUMNS = (
    "seq, event_id, device_id, card_uid, tapped_at, boot_id, mono_ns, clock_synced, "
    "reader, verdict, person_id, acked_at"
)


def _row_to_tap(row: tuple[Any, ...]) -> TapRecord:
    values = list(row)
    values[7] = bool(values[7])
    return TapRecord(*values)


def connect(path: str | os.PathLike[str], *, timeout: float = 10.0) -> sqlite_utils.Database:
    """Open the database with the durability settings every connection needs."""
    conn = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return db


@contextlib.contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (``BEGIN IMMEDIATE``), committed on success.

    Taking the write lock at the start means a read-then-write cannot fail
    half-way because another connection wrote in between.
    """
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_database(path: str | os.PathLike[str]) -> sqlite_utils.Database:
    """A connection in WAL mode with every migration applied (creates the file)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    with db.ensure_autocommit_on():
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode=WAL")
    migrations.apply(db)
    return db


def check_integrity(path: Path) -> str | None:
    """None when the file is a healthy SQLite database (or absent), else why not."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if rows != [("ok",)]:
        lines = [line for r in rows for line in str(r[0]).splitlines() if line.strip()]
        return "; ".join(lines[:4]) + (f" (+{len(lines) - 4} more)" if len(lines) > 4 else "")
    return None


def salvage_rows(path: Path, table: str, *, top_at_least: int = 0
                 ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The readable rows of ``table`` in a damaged database, in ``rowid`` order, with its
    column names (nothing when the table cannot be read at all). Never raises.

    Read in slices of ``rowid`` so that one bad page costs a slice, not the table;
    ``top_at_least`` is how far to look when the table's last page cannot be read
    (for ``taps``, whose ``seq`` is the ``rowid``: the highest number ever issued).
    """
    rows: list[tuple[Any, ...]] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.DatabaseError:
        return [], rows
    try:
        try:
            columns = [d[0] for d in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
        except sqlite3.DatabaseError:
            return [], rows
        try:
            top = max(conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0,
                      top_at_least)
        except sqlite3.DatabaseError:
            top = top_at_least
        start, step = 0, 200
        while start <= top:
            try:
                rows.extend(conn.execute(f"SELECT * FROM {table} WHERE rowid > ? AND rowid <= ? "
                                         f"ORDER BY rowid", [start, start + step]).fetchall())
            except sqlite3.DatabaseError:
                pass
            start += step
        return columns, rows
    finally:
        conn.close()


def issued_seq(path: Path) -> int:
    """The highest tap ``seq`` a (possibly damaged) database ever issued, as far as its
    ``sqlite_sequence`` can be read (0 when it cannot). Never raises."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.DatabaseError:
        return 0
    try:
        found = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='taps'").fetchone()
        return int(found[0]) if found else 0
    except sqlite3.DatabaseError:
        return 0
    finally:
        conn.close()


def _insert_salvaged(conn: sqlite3.Connection, table: str, columns: list[str],
                     rows: list[tuple[Any, ...]]) -> None:
    """Put rows read by :func:`salvage_rows` into the same table of a new database."""
    if rows:
        conn.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
                         f"VALUES ({', '.join('?' * len(columns))})", rows)


#: Tables besides ``taps`` whose rows exist only on this device and are salvaged too:
#: operator accounts, and excuses and card requests the server may not have yet. The
#: roster, the site's people, plans and settings come from the server again.
SALVAGED_TABLES = ("operators", "excuses", "card_requests")


class Outbox:
    """The tap database of one edge device.

    Thread-safe: every public method takes the instance lock, so reader
    threads, the control socket and the sync worker can share one Outbox.
    """

    def __init__(self, path: str | os.PathLike[str], *, device_id: str | None = None) -> None:
        self.path = Path(path)
        self.device_id = device_id
        self._lock = threading.RLock()
        self.recovered_from: Path | None = None
        # card -> last counted tap, oldest first; see _recent_counted().
        self._last_seen: OrderedDict[str, rules.SeenTap] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = check_integrity(self.path)
        if problem:
            self._move_aside_and_salvage(problem)
        else:
            self.db = self._open()

    # -- opening -------------------------------------------------------------
    def _open(self) -> sqlite_utils.Database:
        return open_database(self.path)

    def _move_aside_and_salvage(self, problem: str) -> None:
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, str(aside) + suffix)
        log.critical(
            "tap database %s is damaged (%s): moved aside to %s and opened a new one; "
            "salvaging readable taps",
            self.path, problem, aside,
        )
        self.recovered_from = aside
        self.db = self._open()
        highest = issued_seq(aside)
        columns, rows = salvage_rows(aside, "taps", top_at_least=highest)
        if rows:
            seq_at = columns.index("seq")
            highest = max(highest, max(row[seq_at] for row in rows))
        with self._lock, self.db.atomic():
            _insert_salvaged(self.db.conn, "taps", columns, rows)
            if highest:  # keep seq moving forward from the highest number ever issued
                raise_seq_floor(self.db, highest)
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('recovered_from', ?)",
                [str(aside)],
            )
        self.mark_acked([])  # recompute acked_through for the salvaged rows
        log.critical("salvaged %d tap(s) from %s; highest seq %d", len(rows), aside, highest)
        for table in SALVAGED_TABLES:
            columns, found = salvage_rows(aside, table)
            try:
                with self._lock, self.db.atomic():
                    _insert_salvaged(self.db.conn, table, columns, found)
            except sqlite3.DatabaseError as exc:  # another shape (an older release)
                log.critical("could not salvage %s from %s: %s", table, aside, exc)
                continue
            if found:
                log.critical("salvaged %d row(s) of %s from %s", len(found), table, aside)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def reopen(self) -> None:
        """Drop the connection and open a new one (after an I/O error)."""
        with self._lock:
            try:
                self.db.close()
            except sqlite3.Error:
                pass
            self.db = self._open()

    def call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run ``fn(db, *args, **kwargs)`` on this outbox's connection, under its lock.

        The stores of the operator's page (``edge.excuses``, ``edge.cards``, ...)
        take a database as their first argument; this lets the service's threads
        use them on the shared connection.
        """
        with self._lock:
            return fn(self.db, *args, **kwargs)

    # -- the hot path ---------------------------------------------------------
    def _recent_counted(self, window_seconds: float, now: Instant) -> "OrderedDict[str, rules.SeenTap]":
        """The debounce index: each card's last counted tap, loaded once from the tail."""
        if self._last_seen is None:
            since = (now.wall - timedelta(seconds=window_seconds + 300)).astimezone(timezone.utc)
            rows = self.db.conn.execute(
                "SELECT card_uid, boot_id, mono_ns, tapped_at FROM taps "
                "WHERE seq > (SELECT coalesce(max(seq), 0) - 20000 FROM taps) "
                "AND tapped_at_utc >= ? AND verdict != 'duplicate' ORDER BY seq",
                [since.isoformat(timespec="milliseconds")],
            ).fetchall()
            self._last_seen = OrderedDict()
            for uid, boot, mono, at in rows:
                self._last_seen[uid] = rules.SeenTap(boot, mono, datetime.fromisoformat(at))
                self._last_seen.move_to_end(uid)
        return self._last_seen

    def reload_debounce_index(self) -> None:
        """Build the debounce index again at the next tap (the window grew: taps it had
        already forgotten may count again)."""
        with self._lock:
            self._last_seen = None

    def _remember(self, card_uid: str, current: rules.SeenTap, window_seconds: float) -> None:
        """Note a counted tap; forget the oldest entries once out of the window."""
        recent = self._last_seen
        assert recent is not None
        recent[card_uid] = current
        recent.move_to_end(card_uid)
        while recent:
            oldest = next(iter(recent.values()))
            if rules.is_duplicate(oldest, current, window_seconds):
                break
            recent.popitem(last=False)

    def record_tap(self, card_uid: str, reader: str, instant: Instant,
                   debounce_seconds: float) -> TapRecord:
        """Decide the verdict and store the tap in one durable transaction.

        Raises :class:`~edge.errors.StorageError` when the tap could not be
        committed; then nothing was stored.
        """
        current = rules.SeenTap(instant.boot_id, instant.mono_ns, instant.wall)
        event_id = str(uuid.uuid4())
        tapped_at = instant.iso
        tapped_at_utc = instant.wall.astimezone(timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            conn = self.db.conn
            try:
                recent = self._recent_counted(debounce_seconds, instant)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    entry = self._lookup(conn, card_uid)
                    verdict = rules.decide_verdict(entry, recent.get(card_uid), current,
                                                   debounce_seconds)
                    person_id = entry.person_id if entry else None
                    cur = conn.execute(
                        "INSERT INTO taps (event_id, device_id, card_uid, tapped_at, "
                        "tapped_at_utc, boot_id, mono_ns, clock_synced, reader, verdict, "
                        "person_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [event_id, self.device_id, card_uid, tapped_at, tapped_at_utc,
                         instant.boot_id, instant.mono_ns, int(instant.synced), reader,
                         verdict, person_id],
                    )
                    seq = cur.lastrowid
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"tap not stored: {exc}") from exc
            if verdict != rules.DUPLICATE:
                self._remember(card_uid, current, debounce_seconds)
        assert seq is not None
        return TapRecord(seq, event_id, self.device_id, card_uid, tapped_at,
                         instant.boot_id, instant.mono_ns, instant.synced, reader,
                         verdict, person_id)

    @staticmethod
    def _lookup(conn: sqlite3.Connection, card_uid: str) -> rules.RosterEntry | None:
        row = conn.execute(
            "SELECT card_uid, person_id, name, kind, group_name, status FROM roster "
            "WHERE card_uid = ?",
            [card_uid],
        ).fetchone()
        return rules.RosterEntry(*row) if row else None

    # -- reading ---------------------------------------------------------------
    def lookup(self, card_uid: str) -> rules.RosterEntry | None:
        with self._lock:
            return self._lookup(self.db.conn, card_uid)

    def taps(self, *, since_utc: str | None = None, after_seq: int = 0,
             limit: int | None = None, unacked_only: bool = False) -> Iterator[TapRecord]:
        """Taps in ``seq`` order; ``since_utc`` is an ISO time in UTC."""
        with self._lock:
            if unacked_only:
                after_seq = max(after_seq, self._acked_through())
            sql = f"SELECT {_TAP_COLUMNS} FROM taps WHERE seq > ?"
            params: list[Any] = [after_seq]
            if since_utc:
                sql += " AND tapped_at_utc >= ?"
                params.append(since_utc)
            if unacked_only:
                sql += " AND acked_at IS NULL"
            sql += " ORDER BY seq"
            if limit:
                sql += " LIMIT ?"
                params.append(limit)
            rows = self.db.conn.execute(sql, params).fetchall()
        return (_row_to_tap(r) for r in rows)

    def counts(self, *, day_start_utc: str) -> dict[str, Any]:
        """Figures for ``status``: taps since ``day_start_utc`` by verdict, backlog, last tap."""
        with self._lock:
            conn = self.db.conn
            by_verdict = dict(conn.execute(
                "SELECT verdict, count(*) FROM taps WHERE tapped_at_utc >= ? GROUP BY verdict",
                [day_start_utc],
            ).fetchall())
            backlog, oldest = self.backlog()
            last = conn.execute(
                f"SELECT {_TAP_COLUMNS} FROM taps ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            roster = conn.execute("SELECT count(*) FROM roster").fetchone()[0]
        return {
            "taps_today": sum(by_verdict.values()),
            "taps_today_by_verdict": {v: by_verdict.get(v, 0) for v in rules.VERDICTS},
            "backlog": backlog,
            "oldest_unsent_at": oldest,
            "last_tap": _row_to_tap(last).to_json() if last else None,
            "roster_cards": roster,
        }

    def backlog(self) -> tuple[int, str | None]:
        """How many taps wait for the server, and when the oldest of them was tapped."""
        with self._lock:
            count, oldest = self.db.conn.execute(
                "SELECT count(*), min(tapped_at) FROM taps WHERE seq > ? AND acked_at IS NULL",
                [self._acked_through()],
            ).fetchone()
        return count, oldest

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.conn.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    # -- acknowledgement and retention -------------------------------------------
    def _acked_through(self) -> int:
        """Every tap with seq at or below this number is acknowledged."""
        row = self.db.conn.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()
        return int(row[0]) if row else 0

    def mark_acked(self, seqs: list[int], when: datetime | None = None) -> int:
        """Record the server's acknowledgement of the taps with these ``seq``; returns
        how many were newly acknowledged (acknowledging twice changes nothing)."""
        stamp = (when or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        with self._lock, self.db.atomic():
            conn = self.db.conn
            changed = 0
            for chunk in range(0, len(seqs), 500):
                part = [int(s) for s in seqs[chunk:chunk + 500]]
                marks = ", ".join("?" * len(part))
                cur = conn.execute(
                    f"UPDATE taps SET acked_at = ? WHERE acked_at IS NULL AND seq IN ({marks})",
                    [stamp, *part],
                )
                changed += cur.rowcount
            through = self._acked_through()
            first_unacked = conn.execute(
                "SELECT min(seq) FROM taps WHERE seq > ? AND acked_at IS NULL", [through]
            ).fetchone()[0]
            if first_unacked is None:
                issued = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'taps'").fetchone()
                first_unacked = (issued[0] if issued else 0) + 1
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('acked_through', ?)",
                         [str(first_unacked - 1)])
        return changed

    def take_back_acks(self, highest_seq: int, missing: list[tuple[int, int]],
                       *, skip: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """Make acknowledged taps unsent again when the server says it does not hold them:
        ``seq`` above ``highest_seq`` or in one of the ``missing`` ranges (both from the
        server's replies). Returns their ``seq``; ``skip`` are left as they are.

        This happens after the server's database was restored from a backup older than
        its last acknowledgements: the taps still kept here (``retention_days``) are
        pushed again, and the server stores them once (``event_id``).
        """
        ranges = [(int(lo), int(hi)) for lo, hi in missing][:1000]
        where = " OR ".join(["seq > ?"] + ["seq BETWEEN ? AND ?"] * len(ranges))
        params = [int(highest_seq)] + [v for r in ranges for v in r]
        with self._lock, self.db.atomic():
            conn = self.db.conn
            seqs = [row[0] for row in conn.execute(
                f"SELECT seq FROM taps WHERE acked_at IS NOT NULL AND ({where}) ORDER BY seq",
                params) if row[0] not in skip]
            for chunk in range(0, len(seqs), 500):
                part = seqs[chunk:chunk + 500]
                conn.execute(f"UPDATE taps SET acked_at = NULL WHERE seq IN "
                             f"({', '.join('?' * len(part))})", part)
            if seqs and seqs[0] <= self._acked_through():
                conn.execute("INSERT OR REPLACE INTO meta (key, value) "
                             "VALUES ('acked_through', ?)", [str(seqs[0] - 1)])
        return seqs

    def prune(self, retention_days: int, now: datetime | None = None) -> int:
        """Delete acknowledged taps older than ``retention_days``; never unacknowledged ones."""
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
        with self._lock, self.db.atomic():
            cur = self.db.conn.execute(
                "DELETE FROM taps WHERE acked_at IS NOT NULL AND tapped_at_utc < ?",
                [cutoff.astimezone(timezone.utc).isoformat(timespec="milliseconds")],
            )
        return cur.rowcount

    # -- roster ------------------------------------------------------------------
    def replace_roster(self, entries: list[rules.RosterEntry]) -> None:
        """Replace the roster cache in one transaction."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock, self.db.atomic():
            self.db.execute("DELETE FROM roster")
            # A hand-loaded roster is not the server's: the next sync pulls it whole.
            self.db.execute("DELETE FROM meta WHERE key = 'roster_cursor'")
            self.db.conn.executemany(
                "INSERT INTO roster (card_uid, person_id, name, kind, group_name, status, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.card_uid, e.person_id, e.name, e.kind, e.group_name, e.status, stamp)
                 for e in entries],
            )
            _reapply_card_requests(self.db.conn)

    def apply_roster(self, entries: list[rules.RosterEntry], removed: list[str], *,
                     full: bool, cursor: str) -> None:
        """Apply a roster reply from the server and remember its cursor, in one transaction.

        ``full`` replaces the cache; otherwise ``entries`` are upserted and the
        ``removed`` card UIDs deleted.
        """
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock, self.db.atomic():
            conn = self.db.conn
            if full:
                conn.execute("DELETE FROM roster")
            conn.executemany(
                "INSERT INTO roster (card_uid, person_id, name, kind, group_name, status, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (card_uid) DO UPDATE SET "
                "person_id = excluded.person_id, name = excluded.name, kind = excluded.kind, "
                "group_name = excluded.group_name, status = excluded.status, "
                "updated_at = excluded.updated_at",
                [(e.card_uid, e.person_id, e.name, e.kind, e.group_name, e.status, stamp)
                 for e in entries],
            )
            conn.executemany("DELETE FROM roster WHERE card_uid = ?", [(u,) for u in removed])
            if full:
                _reapply_card_requests(conn)
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('roster_cursor', ?)",
                         [cursor])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self.db.atomic():
            self.db.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                 [key, value])


def _reapply_card_requests(conn: sqlite3.Connection) -> None:
    """Card requests the server has not received yet still hold on this device.

    A roster replaced as a whole (a full pull, or a CSV) knows nothing of a card
    bound or reported lost here a minute ago; without this the new card would be
    refused again, or the lost one accepted, until the request reaches the server.
    """
    from edge.cards import apply_to_roster

    for kind, card_uid, person_id in conn.execute(
            "SELECT kind, card_uid, person_id FROM card_requests WHERE sent_at IS NULL "
            "ORDER BY requested_at, rowid").fetchall():
        apply_to_roster(conn, kind, card_uid, person_id)
