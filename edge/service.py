"""The edge service: wires readers, recorder, feedback and the control socket.

``attendance-edge run`` builds one :class:`EdgeService` and calls
:meth:`EdgeService.run`, which returns on SIGTERM or SIGINT after closing
everything cleanly. Collaborators can be passed in (``readers=``,
``feedback=``, ``clock=``) for tests; otherwise they are built from the
configuration here, and only here.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from datetime import datetime, timezone
from typing import Any

from edge import __version__, cards
from edge import settings as remote_settings
from edge.clock import Clock, describe_clock
from edge.config import EdgeConfig, parse_listen
from edge.control import ControlServer
from edge.enrolment import CardEnrolment
from edge.notify import Notifier
from edge.outbox import Outbox
from edge.recorder import Recorder
from edge.sync import SyncWorker, build_sync_worker
from hardware.errors import HardwareError, InvalidUID
from hardware.feedback import Feedback, open_feedback
from hardware.reader import CardReader, open_reader

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0


def local_day_start_utc(now: datetime | None = None) -> str:
    """Midnight of the current local day, as an ISO UTC string (for 'taps today')."""
    local = (now or datetime.now().astimezone())
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(timezone.utc).isoformat(timespec="milliseconds")


class EdgeService:
    def __init__(self, config: EdgeConfig, *, readers: list[CardReader] | None = None,
                 feedback: Feedback | None = None, clock: Clock | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config = config
        self.clock = clock or Clock(assume_synced=config.clock.assume_synced)
        self.notifier = notifier or Notifier()
        self.feedback = feedback or open_feedback(
            config.feedback.kind,
            green_pin=config.feedback.green_pin,
            red_pin=config.feedback.red_pin,
            buzzer_pin=config.feedback.buzzer_pin,
            active_high=config.feedback.active_high,
        )
        self._readers_given = readers
        self.readers: list[CardReader] = []
        self.outbox: Outbox | None = None
        self.recorder: Recorder | None = None
        self.control = ControlServer(config.control_socket, self.handle_control)
        self.sync: SyncWorker | None = None
        self.enrolment = CardEnrolment(bind=self._bind_card)
        self.web: Any = None
        self.web_error: str | None = None
        self.started_at: datetime | None = None
        self._stopping = threading.Event()
        self._reader_down_shown = False
        #: Each setting's value and source (the server's, else this edge's configuration).
        self.settings = remote_settings.effective_settings(config, {})

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        cfg = self.config
        cfg.data_path.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(cfg.database_path)
        self.recorder = Recorder(
            self.outbox, feedback=self.feedback, clock=self.clock,
            debounce_seconds=cfg.recorder.debounce_seconds,
            enrolment=self.enrolment.claim,
        )
        if self._readers_given is not None:
            self.readers = list(self._readers_given)
        else:
            self.readers = [
                open_reader(r.driver, r.name, **self._reader_options(r.driver, r))
                for r in cfg.readers
            ]
        for reader in self.readers:
            reader.when_tapped = self.recorder.handle
            reader.when_state_changed = self._reader_state_changed
        self.sync = build_sync_worker(cfg, self.outbox, self.clock, health=self._health,
                                      when_offline=self._offline_changed)
        if self.sync is not None:
            self.outbox.device_id = self.sync.device_id
            self.recorder.when_recorded = lambda record: self.sync.wake()  # type: ignore[union-attr]
            self.sync.when_settings = self.apply_settings
        # The settings last received hold until the server says otherwise, also after a
        # restart while it cannot be reached.
        self.apply_settings(self.outbox.call(remote_settings.load_server_settings))
        self.control.start()
        for reader in self.readers:
            reader.open()
        self.started_at = datetime.now().astimezone()
        self._update_reader_feedback()
        if self.sync is not None:
            self.sync.start()
        if cfg.web.enabled:
            self._start_web()
        log.info("edge %s started (version %s, database %s, readers: %s)", cfg.device.name,
                 __version__, cfg.database_path,
                 ", ".join(f"{r.name}={r.driver}" for r in self.readers))

    def apply_settings(self, server: dict[str, Any]) -> None:
        """Put the remote settings (checked by the caller) into effect, without a restart:
        the recorder's duplicate window at its next tap, the sync intervals at once."""
        old = self.settings
        new = remote_settings.effective_settings(self.config, server)
        self.settings = new
        if self.recorder is not None:
            window = float(new["debounce_seconds"].value)
            if window > self.recorder.debounce_seconds and self.outbox is not None:
                self.outbox.reload_debounce_index()
            self.recorder.debounce_seconds = window
        if self.sync is not None:
            self.sync.set_intervals(heartbeat_seconds=float(new["heartbeat_seconds"].value),
                                    roster_seconds=float(new["roster_seconds"].value))
        for key, item in new.items():
            if item != old.get(key):
                log.info("setting %s = %r (%s)", key, item.value, item.source)

    @staticmethod
    def _reader_options(driver: str, reader_cfg: Any) -> dict[str, Any]:
        if driver == "pcsc":
            return {"match": reader_cfg.match or None}
        if driver == "nfc":
            return {"path": reader_cfg.path}
        return {}

    def _start_web(self) -> None:
        """Serve the operator's page; without it taps are still recorded, so a failure
        here (port taken, Flask missing) is logged loudly and the service goes on."""
        host, port = parse_listen(self.config.web.listen)
        try:
            from edge.web import create_app
            from edge.web.server import WebServer

            app = create_app(self.config, status=self.status, enrolment=self.enrolment,
                             wake_sync=self.sync.wake if self.sync is not None else None)
            web = WebServer(app, host, port)
            web.start()
        except (OSError, ImportError, ValueError) as exc:
            self.web_error = f"cannot serve the operator page on {self.config.web.listen}: {exc}"
            log.error("%s", self.web_error)
            return
        self.web = web

    def _bind_card(self, card_uid: str, person_id: str, operator: str) -> Any:
        """Bind an unknown card to a person (an armed enrolment): roster row + card request."""
        assert self.outbox is not None
        request = self.outbox.call(cards.bind_card, card_uid, person_id, operator)
        if self.sync is not None:
            self.sync.wake()
        return request

    def stop(self) -> None:
        self._stopping.set()
        if self.web is not None:
            try:
                self.web.stop()
            except Exception:
                log.exception("stopping the operator page failed")
            self.web = None
        if self.sync is not None:
            self.sync.stop()
            self.sync.client.close()
        for reader in self.readers:
            try:
                reader.close()
            except Exception:
                log.exception("closing reader %s failed", reader.name)
        self.control.stop()
        try:
            self.feedback.close()
        except Exception:
            log.exception("closing feedback failed")
        if self.outbox is not None:
            self.outbox.close()
        log.info("edge %s stopped", self.config.device.name)

    def request_stop(self, *_: Any) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, stop. Tells systemd when ready and pings its watchdog."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.start()
        try:
            self.notifier.ready(self._status_line())
            interval = min(self.notifier.watchdog_interval or 5.0, 5.0)
            next_prune = time.monotonic() + 60.0
            while not self._stopping.wait(interval):
                self.notifier.watchdog()
                self.notifier.status(self._status_line())
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_INTERVAL
                    self._prune()
        finally:
            self.notifier.stopping()
            self.stop()

    def _prune(self) -> None:
        assert self.outbox is not None
        try:
            removed = self.outbox.prune(self.config.recorder.retention_days)
            if removed:
                log.info("retention: removed %d acknowledged tap(s) older than %d days",
                         removed, self.config.recorder.retention_days)
        except Exception as exc:
            log.error("retention pruning failed: %s", exc)

    # -- readers -----------------------------------------------------------------------
    def _reader_state_changed(self, reader: CardReader, connected: bool) -> None:
        self._update_reader_feedback()

    def _update_reader_feedback(self) -> None:
        down = any(not r.is_connected for r in self.readers)
        if down and not self._reader_down_shown:
            self.feedback.reader_down()
        elif not down and self._reader_down_shown:
            self.feedback.reader_up()
        self._reader_down_shown = down

    def _health(self) -> dict[str, Any]:
        return {"readers": [r.describe() for r in self.readers]}

    def _offline_changed(self, offline: bool) -> None:
        if offline:
            self.feedback.offline()
        else:
            self.feedback.online()

    # -- status and control ---------------------------------------------------------------
    def _status_line(self) -> str:
        up = sum(r.is_connected for r in self.readers)
        return f"{up}/{len(self.readers)} readers up"

    def status(self) -> dict[str, Any]:
        assert self.outbox is not None and self.recorder is not None
        figures = self.outbox.counts(day_start_utc=local_day_start_utc())
        return {
            "device": self.config.device.name,
            "version": __version__,
            "running": True,
            "started_at": self.started_at.isoformat(timespec="seconds") if self.started_at else None,
            "readers": [r.describe() for r in self.readers],
            "clock": describe_clock(self.clock),
            "database": str(self.config.database_path),
            "storage_error": self.recorder.last_error,
            "refused_random_uids": self.recorder.counters.get("random", 0),
            "sync": self.sync.describe() if self.sync else None,
            "settings": remote_settings.describe(self.settings),
            "web": {"url": self.web.url if self.web else None, "error": self.web_error}
            if self.config.web.enabled else None,
            **figures,
        }

    def handle_control(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return {"ok": True, "status": self.status()}
        if cmd == "tap":
            return self._inject(req)
        if cmd == "sync":
            if self.sync is None:
                return {"ok": False, "error": "sync is not set up: enrol this device first "
                                              "(attendance-edge enroll --server URL --code CODE)"}
            report = self.sync.run_round(force=True)
            return {"ok": report.error is None, "report": dataclasses.asdict(report),
                    "summary": report.summary(),
                    **({"error": report.error} if report.error else {})}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def _inject(self, req: dict[str, Any]) -> dict[str, Any]:
        from hardware.sim import SimReader

        sims = [r for r in self.readers if isinstance(r, SimReader)]
        wanted = req.get("reader")
        if wanted:
            sims = [r for r in sims if r.name == wanted]
        if not sims:
            names = ", ".join(f"{r.name} ({r.driver})" for r in self.readers)
            which = f"named {wanted!r} " if wanted else ""
            return {"ok": False, "error": f"no simulated reader {which}on this edge "
                                          f"(readers: {names}); set driver = \"sim\""}
        uid = req.get("uid")
        if not isinstance(uid, str):
            return {"ok": False, "error": "uid must be a string of hex digits"}
        try:
            result = sims[0].inject(uid)
        except (InvalidUID, HardwareError) as exc:
            return {"ok": False, "error": str(exc)}
        reply: dict[str, Any] = {"ok": True, "verdict": result.verdict,
                                 "tap": result.record.to_json() if result.record else None}
        if result.enrolled:
            reply["enrolled"] = True
        if result.verdict == "error":
            reply["detail"] = self.recorder.last_error if self.recorder else None
        elif result.verdict == "random":
            reply["detail"] = "random (per-session) UID refused, not recorded"
        return reply
