"""Giving a new card to a person at the reader: "tap the new card now".

The operator picks a person on the page and arms the enrolment; the next tap
of a card this device does not know (within the time limit) is bound to that
person. The recorder has already stored the tap durably (as "unknown", which
it was at that moment); :meth:`CardEnrolment.claim` is called right after,
before the feedback, and binds the card: the roster cache gets the card at
once and a card request is queued for the server.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable

from edge.errors import EdgeError
from edge.outbox import TapRecord
from edge.rules import DUPLICATE, UNKNOWN

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 60

#: bind(card_uid, person_id, operator) -> anything; raises EdgeError when it cannot.
Binder = Callable[[str, str, str], Any]


@dataclass
class EnrolmentState:
    ticket: str
    person_id: str
    name: str
    operator: str
    seconds: int
    outcome: str = "armed"
    """armed, bound, expired, cancelled."""
    card_uid: str | None = None
    message: str | None = None
    """Why the last tapped card was not taken (already in the roster, ...)."""


class CardEnrolment:
    """The armed enrolment of one device (one at a time; arming again replaces it)."""

    def __init__(self, bind: Binder, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._bind = bind
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._state: EnrolmentState | None = None
        self._until = 0.0

    def arm(self, person_id: str, name: str, operator: str,
            seconds: int = DEFAULT_SECONDS) -> dict[str, Any]:
        with self._lock:
            self._state = EnrolmentState(uuid.uuid4().hex, person_id, name, operator, seconds)
            self._until = self._monotonic() + seconds
            log.info("operator %s: next unknown card will be bound to %s (%d s)", operator,
                     person_id, seconds)
            return self._describe()

    def cancel(self, ticket: str | None = None) -> dict[str, Any]:
        with self._lock:
            state = self._state
            if state is not None and state.outcome == "armed" and ticket in (None, state.ticket):
                state.outcome = "cancelled"
            return self._describe()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._describe()

    def _describe(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            return {"outcome": None}
        left = self._until - self._monotonic()
        if state.outcome == "armed" and left <= 0:
            state.outcome = "expired"
        return {**asdict(state), "seconds_left": max(0, round(left)) if state.outcome == "armed"
                else 0}

    def claim(self, record: TapRecord) -> bool:
        """Offered each recorded tap; binds it when armed and the card is unknown here.

        Returns True when the card was bound (the person should then be told
        "accepted"). Never raises: a failed binding leaves the tap as recorded.
        """
        with self._lock:
            state = self._state
            if state is None or state.outcome != "armed":
                return False
            if self._until - self._monotonic() <= 0:
                state.outcome = "expired"
                return False
            if record.person_id is not None or record.verdict not in (UNKNOWN, DUPLICATE):
                state.message = f"card {record.card_uid} is already in the roster"
                return False
            try:
                self._bind(record.card_uid, state.person_id, state.operator)
            except EdgeError as exc:
                state.message = str(exc)
                log.warning("enrolment of card %s refused: %s", record.card_uid, exc)
                return False
            except Exception:
                log.exception("binding card %s failed", record.card_uid)
                state.message = "internal error"
                return False
            state.outcome = "bound"
            state.card_uid = record.card_uid
            state.message = None
            log.info("card %s bound to %s by operator %s", record.card_uid, state.person_id,
                     state.operator)
            return True
