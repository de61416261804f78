"""The tap database across a change of hardware (``docs/OPERATIONS.md``).

When a board takes over an existing device with a replacement code, the
server must never see two different taps under one ``(device, seq)``: it
would keep the second aside as a conflict and never count it. Two things
guarantee it:

* the enrolment tells the server what this database holds
  (:func:`outbox_summary`): a database with taps that are not the device's
  own (a spare board used elsewhere, test taps recorded before enrolment) is
  refused before the code is used;
* the server answers with the highest ``seq`` it holds for the device, and
  the database numbers its next taps above it (:func:`raise_seq_floor`).
  A fresh board (empty database) therefore continues at 5001 where the broken
  one stopped at 5000, and a copy of the old board's data directory made some
  time before it died (its taps already on the server are answered
  ``duplicate``) does not reuse numbers either.

These functions take the outbox's ``sqlite_utils.Database`` (``Outbox.call``).
"""

from __future__ import annotations

from typing import Any

import sqlite_utils


def last_issued_seq(db: sqlite_utils.Database) -> int:
    """The highest ``seq`` this database ever issued (pruned taps included)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'taps'").fetchone()
    issued = int(row[0]) if row else 0
    top = db.execute("SELECT coalesce(max(seq), 0) FROM taps").fetchone()[0]
    return max(issued, int(top))


def outbox_summary(db: sqlite_utils.Database, enrolled_as: str | None) -> dict[str, Any]:
    """What the enrolment request says of this database: whose taps, up to which seq.

    ``enrolled_as`` is the device id of the enrolment saved next to it, if
    any; otherwise the device named by the latest tap that names one.
    """
    device_id = enrolled_as
    if device_id is None:
        row = db.execute("SELECT device_id FROM taps WHERE device_id IS NOT NULL "
                         "ORDER BY seq DESC LIMIT 1").fetchone()
        device_id = row[0] if row else None
    return {"device_id": device_id, "last_seq": last_issued_seq(db)}


def raise_seq_floor(db: sqlite_utils.Database, highest: int) -> int:
    """Make the next tap's ``seq`` at least ``highest + 1``; returns the next seq.

    Never lowers the counter. ``seq`` is AUTOINCREMENT, so SQLite takes the
    next number from ``sqlite_sequence``.
    """
    with db.atomic():
        db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'taps'",
                   [int(highest)])
        db.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'taps', ? "
                   "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'taps')",
                   [int(highest)])
    return last_issued_seq(db) + 1


def foreign_unsent(db: sqlite_utils.Database, device_id: str, highest: int) -> int:
    """Unsent taps at or below ``highest`` that are not ``device_id``'s (would conflict)."""
    return int(db.execute(
        "SELECT count(*) FROM taps WHERE acked_at IS NULL AND seq <= ? "
        "AND (device_id IS NULL OR device_id != ?)", [int(highest), device_id]).fetchone()[0])
