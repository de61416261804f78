"""Retry timing for the sync worker: an immutable value, as urllib3's ``Retry``.

Exponential backoff with full jitter, capped, and a server's ``Retry-After``
honoured (but never waited on for longer than the cap).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    """Seconds before the first retry (before jitter)."""
    factor: float = 2.0
    cap: float = 300.0
    """Never wait longer than this, whatever happened."""
    failures: int = 0
    """Consecutive failures so far."""

    def failed(self) -> "Backoff":
        return replace(self, failures=self.failures + 1)

    def succeeded(self) -> "Backoff":
        return replace(self, failures=0)

    def delay(self, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before the next attempt.

        Full jitter (a uniform draw below the exponential ceiling) spreads
        hundreds of edges that lost the network together, so they do not all
        return at the same second. A server's Retry-After is a floor.
        """
        if self.failures == 0:
            return 0.0
        ceiling = min(self.cap, self.base * self.factor ** (self.failures - 1))
        wait = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime
    from datetime import datetime, timezone

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
