"""The recorder: turns a card tap into a durable tap record, then tells the person.

The order is the promise of the whole system: **commit first, then say
"accepted"**. If the commit fails (disk full, I/O error), the person hears
the error pattern and should tap again; nothing half-written is left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from edge.clock import Clock
from edge.errors import StorageError
from edge.outbox import Outbox, TapRecord
from edge.rules import ACCEPTED
from hardware.feedback import Feedback
from hardware.reader import CardTap
from hardware.uid import is_random_uid

log = logging.getLogger(__name__)

RANDOM = "random"
ERROR = "error"


@dataclass(frozen=True)
class TapResult:
    """What happened to one tap."""

    verdict: str
    """accepted, unknown, blocked, duplicate, or random / error (not recorded)."""
    record: TapRecord | None = None
    enrolled: bool = False
    """The card was unknown and has just been bound to a person (see edge.enrolment);
    the verdict stays the recorded one, the person was shown "accepted"."""


class Recorder:
    """Records taps from any number of readers; one tap at a time."""

    def __init__(self, outbox: Outbox, *, feedback: Feedback, clock: Clock,
                 debounce_seconds: float = 60.0, storage_retries: int = 1,
                 when_recorded: Callable[[TapRecord], None] | None = None,
                 enrolment: Callable[[TapRecord], bool] | None = None) -> None:
        self.outbox = outbox
        self.feedback = feedback
        self.clock = clock
        self.debounce_seconds = debounce_seconds
        self.storage_retries = storage_retries
        self.when_recorded = when_recorded
        #: Offered each recorded tap before the feedback; True when it bound the card
        #: to a person (an armed enrolment on the operator's page).
        self.enrolment = enrolment
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def handle(self, tap: CardTap) -> TapResult:
        """Record ``tap`` and signal the verdict. Safe to call from reader threads."""
        with self._lock:
            if is_random_uid(tap.uid):
                self.counters[RANDOM] += 1
                log.info("reader %s: random UID %s refused (a phone or privacy card)",
                         tap.reader, tap.uid)
                self.feedback.random_uid()
                return TapResult(RANDOM)
            record = self._store(tap)
            if record is None:
                self.counters[ERROR] += 1
                self.feedback.error()
                return TapResult(ERROR)
            self.counters[record.verdict] += 1
            enrolled = self._offer_for_enrolment(record)
            # The commit has returned: only now may the person be told.
            self.feedback.signal(ACCEPTED if enrolled else record.verdict)
        log.info("tap seq=%d card=%s reader=%s verdict=%s%s", record.seq, record.card_uid,
                 record.reader, record.verdict, " (enrolled)" if enrolled else "")
        if self.when_recorded is not None:
            try:
                self.when_recorded(record)
            except Exception:
                log.exception("when_recorded callback failed")
        return TapResult(record.verdict, record, enrolled)

    def _offer_for_enrolment(self, record: TapRecord) -> bool:
        if self.enrolment is None:
            return False
        try:
            return bool(self.enrolment(record))
        except Exception:  # the tap is stored; a failing hook must not cost its feedback
            log.exception("enrolment hook failed")
            return False

    def _store(self, tap: CardTap) -> TapRecord | None:
        for attempt in range(self.storage_retries + 1):
            try:
                record = self.outbox.record_tap(
                    tap.uid, tap.reader, self.clock.now(), self.debounce_seconds
                )
                if self.last_error:
                    log.warning("tap database writable again")
                self.last_error = None
                return record
            except StorageError as exc:
                self.last_error = str(exc)
                log.error("tap from card %s NOT stored (attempt %d): %s",
                          tap.uid, attempt + 1, exc)
                if attempt < self.storage_retries:
                    time.sleep(0.05)
                    try:
                        self.outbox.reopen()
                    except Exception as reopen_exc:  # keep serving; the next tap retries
                        log.error("could not reopen the tap database: %s", reopen_exc)
        return None
