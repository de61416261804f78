"""What the edge knows about time: boot id, monotonic time, wall time, sync state.

A Raspberry Pi has no battery clock, so after an offline boot its wall clock
may be far off. Each tap therefore carries the Linux boot id and the
monotonic clock as well as the wall time, and a ``clock_synced`` flag; the
server corrects the time later from its anchors.

The flag is true when any of these holds:

* the kernel says the clock is NTP-synchronised (``adjtimex`` without
  ``STA_UNSYNC``), which systemd-timesyncd and chrony both set;
* systemd-timesyncd's ``/run/systemd/timesync/synchronized`` exists;
* the configuration says ``[clock] assume_synced = true`` (an RTC HAT);
* the sync worker has confirmed the time with the server during this boot
  (:meth:`Clock.mark_synced`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time
import uuid
from typing import NamedTuple
from datetime import datetime
from pathlib import Path

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised


class Instant(NamedTuple):
    """One reading of every clock at the same moment."""

    wall: datetime  # aware, local offset
    mono_ns: int
    boot_id: str
    synced: bool

    @property
    def iso(self) -> str:
        return self.wall.isoformat(timespec="milliseconds")


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """The Linux boot id, or a random one per process where there is none."""
    try:
        return path.read_text().strip()
    except OSError:
        return _FALLBACK_BOOT_ID


_FALLBACK_BOOT_ID = str(uuid.uuid4())


def kernel_clock_synced() -> bool | None:
    """Ask the kernel (adjtimex, read-only) whether NTP has set the clock.

    Returns None where the call is not available (not Linux).
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    # struct timex is about 208 bytes; modes (the first field) = 0 reads only.
    buf = ctypes.create_string_buffer(512)
    state = adjtimex(buf)
    if state < 0:
        return None
    # TIME_ERROR is returned while STA_UNSYNC is set (see adjtimex(2)).
    return state != _TIME_ERROR


class Clock:
    """The clocks of this device; injectable so tests can fix the time."""

    def __init__(self, *, assume_synced: bool = False,
                 timesyncd_flag: Path = TIMESYNCD_FLAG) -> None:
        self.assume_synced = assume_synced
        self.timesyncd_flag = timesyncd_flag
        self.boot_id = read_boot_id()
        self._server_confirmed = False
        self._cached: tuple[float, bool] | None = None
        self._lock = threading.Lock()

    def mark_synced(self) -> None:
        """The server confirmed our wall clock during this boot."""
        self._server_confirmed = True

    def is_synced(self) -> bool:
        if self.assume_synced or self._server_confirmed:
            return True
        # Checking costs a syscall and a stat; once a second is plenty.
        now = time.monotonic()
        with self._lock:
            if self._cached and now - self._cached[0] < 1.0:
                return self._cached[1]
            synced = self.timesyncd_flag.exists() or bool(kernel_clock_synced())
            self._cached = (now, synced)
            return synced

    def now(self) -> Instant:
        mono = time.monotonic_ns()
        wall = datetime.now().astimezone()
        return Instant(wall=wall, mono_ns=mono, boot_id=self.boot_id, synced=self.is_synced())


class FixedClock(Clock):
    """A clock for tests: wall time and monotonic time advance only by :meth:`advance`."""

    def __init__(self, wall: datetime, *, synced: bool = True, boot_id: str = "test-boot") -> None:
        super().__init__(assume_synced=synced)
        self.boot_id = boot_id
        self._wall = wall
        self._mono = 1_000_000_000
        self._synced = synced

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self._wall += timedelta(seconds=seconds)
        self._mono += int(seconds * 1e9)

    def is_synced(self) -> bool:
        return self._synced

    def now(self) -> Instant:
        return Instant(wall=self._wall, mono_ns=self._mono, boot_id=self.boot_id,
                       synced=self._synced)


def describe_clock(clock: Clock) -> dict[str, object]:
    return {
        "synced": clock.is_synced(),
        "boot_id": clock.boot_id,
        "now": datetime.now().astimezone().isoformat(timespec="seconds"),
        "source": "assumed (config)" if clock.assume_synced else (
            "server" if clock._server_confirmed else
            "ntp" if clock.is_synced() else "not synced"),
    }
