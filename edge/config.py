"""Edge configuration: defaults, then a TOML file, then ``ATTENDANCE_*`` variables.

Every key is documented in ``provisioning/edge.example.toml``. A bad value or
an unknown key raises :class:`~edge.errors.ConfigError` whose message names
the file (or variable), the section and the key, so a technician can fix it
without reading code.

Environment overrides are ``ATTENDANCE_<SECTION>_<KEY>`` in capitals, e.g.
``ATTENDANCE_RECORDER_DEBOUNCE_SECONDS=30``. ``ATTENDANCE_READER_<KEY>``
overrides the first ``[[readers]]`` entry (creating it if there is none), e.g.
``ATTENDANCE_READER_DRIVER=sim``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edge.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/attendance/edge.toml")
READER_DRIVERS = ("pcsc", "nfc", "sim")
FEEDBACK_KINDS = ("auto", "gpio", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass
class DeviceConfig:
    name: str = "edge"
    """A label for this reader point, shown in status and logs."""
    data_dir: str = "/var/lib/attendance-edge"
    """Where the tap database and the control socket live (a writable partition)."""


@dataclass
class ReaderConfig:
    name: str = "reader"
    driver: str = "sim"
    match: str = ""
    """pcsc: case-insensitive part of the PC/SC reader name ("" = first reader)."""
    path: str = "usb"
    """nfc: nfcpy device path (usb, usb:054c:06c3, tty:AMA0:pn532, udp)."""


@dataclass
class RecorderConfig:
    debounce_seconds: float = 60.0
    retention_days: int = 30
    """Keep taps the server acknowledged for this many days (for the local page)."""


@dataclass
class FeedbackConfig:
    kind: str = "auto"
    green_pin: str = "GPIO17"
    red_pin: str = "GPIO27"
    buzzer_pin: str = "GPIO22"
    active_high: bool = True


@dataclass
class ClockConfig:
    assume_synced: bool = False
    """Treat the wall clock as good even without NTP (e.g. an RTC HAT is fitted)."""


@dataclass
class SyncConfig:
    server_url: str = ""
    """The central server, e.g. https://absensi.pekanbaru.go.id ("" = no sync)."""
    push_interval_seconds: float = 5.0
    heartbeat_seconds: float = 60.0
    roster_seconds: float = 300.0
    batch_size: int = 500
    timeout_seconds: float = 15.0
    ca_file: str = ""
    """A CA bundle for a server certificate from the regency's own CA ("" = system CAs)."""
    offline_after_seconds: float = 3600.0
    """Show the offline signal after this long without reaching the server."""
    token_max_age_days: float = 90.0
    """Rotate the device token by itself once it is this old (0 = only by hand)."""


@dataclass
class WebConfig:
    enabled: bool = True
    """Serve the school operator's page (``attendance-edge run``)."""
    listen: str = "0.0.0.0:8080"
    """Address and port of the page on the school LAN ("127.0.0.1:8080" = this device only)."""
    session_minutes: int = 30
    """Log an operator out after this many minutes without a request."""
    lockout_failures: int = 5
    """Lock an account after this many wrong passwords in a row ..."""
    lockout_minutes: int = 15
    """... for this many minutes (kept in the database: a restart does not unlock)."""
    login_rate_limit: str = "10 per minute"
    """Login attempts allowed per client address (Flask-Limiter notation)."""
    start_time: str = "07:00"
    """School/office start (HH:MM, local time) when the server sent no day plan."""
    grace_minutes: int = 0
    """Minutes after start_time that still count as on time (without a day plan)."""


@dataclass
class LogConfig:
    level: str = "INFO"


@dataclass
class EdgeConfig:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    readers: list[ReaderConfig] = field(default_factory=lambda: [ReaderConfig()])
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    clock: ClockConfig = field(default_factory=ClockConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    source: str = "defaults"

    @property
    def data_path(self) -> Path:
        return Path(self.device.data_dir)

    @property
    def database_path(self) -> Path:
        return self.data_path / "edge.db"

    @property
    def control_socket(self) -> Path:
        return self.data_path / "control.sock"

    @property
    def enrolment_path(self) -> Path:
        return self.data_path / "device.json"

    @property
    def token_path(self) -> Path:
        return self.data_path / "device.token"

    @property
    def web_secret_path(self) -> Path:
        """The operator page's session signing key (made once, mode 0600)."""
        return self.data_path / "web-secret.key"


_SECTIONS: dict[str, type] = {
    "device": DeviceConfig,
    "recorder": RecorderConfig,
    "feedback": FeedbackConfig,
    "clock": ClockConfig,
    "sync": SyncConfig,
    "web": WebConfig,
    "log": LogConfig,
}


def _where(origin: str, section: str, key: str, index: int | None = None) -> str:
    if origin.startswith("ATTENDANCE_"):
        return origin
    sect = f"[[{section}]] #{index + 1}" if index is not None else f"[{section}]"
    return f"{origin}: {sect} {key}"


def _coerce(value: Any, target: type, where: str, from_env: bool) -> Any:
    """Convert ``value`` to ``target`` (str, int, float, bool) or raise ConfigError."""
    if from_env and isinstance(value, str):
        if target is bool:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        if target in (int, float):
            try:
                return target(value)
            except ValueError:
                kind = "a whole number" if target is int else "a number"
                raise ConfigError(f"{where}: expected {kind}, got {value!r}") from None
        return value
    if target is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if target is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if target is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if target is str:
        if isinstance(value, int) and not isinstance(value, bool) and where.endswith("_pin"):
            return f"GPIO{value}"  # a bare BCM number is what people write
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise AssertionError(target)


def _fill(obj: Any, data: Mapping[str, Any], origin: str, section: str,
          index: int | None = None, from_env: bool = False) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: [{section}] must be a table")
    known = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        where = _where(origin, section, key, index)
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key (known keys: {', '.join(sorted(known))})"
            )
        target = type(getattr(obj, key))
        setattr(obj, key, _coerce(value, target, where, from_env))


def _validate(cfg: EdgeConfig) -> None:
    src = cfg.source

    def fail(section: str, key: str, msg: str, index: int | None = None) -> None:
        raise ConfigError(f"{_where(src, section, key, index)}: {msg}")

    if cfg.recorder.debounce_seconds < 0:
        fail("recorder", "debounce_seconds", "must be 0 or more")
    if cfg.recorder.retention_days < 1:
        fail("recorder", "retention_days", "must be at least 1")
    if cfg.feedback.kind not in FEEDBACK_KINDS:
        fail("feedback", "kind", f"must be one of {', '.join(FEEDBACK_KINDS)}, got {cfg.feedback.kind!r}")
    if cfg.log.level.upper() not in LOG_LEVELS:
        fail("log", "level", f"must be one of {', '.join(LOG_LEVELS)}, got {cfg.log.level!r}")
    cfg.log.level = cfg.log.level.upper()
    sync = cfg.sync
    if sync.server_url and not sync.server_url.startswith(("http://", "https://")):
        fail("sync", "server_url", f"must start with https:// (or http://), got {sync.server_url!r}")
    sync.server_url = sync.server_url.rstrip("/")
    if not 1 <= sync.batch_size <= 1000:
        fail("sync", "batch_size", "must be between 1 and 1000")
    for key in ("push_interval_seconds", "heartbeat_seconds", "roster_seconds",
                "timeout_seconds", "offline_after_seconds"):
        if getattr(sync, key) <= 0:
            fail("sync", key, "must be more than 0")
    if sync.token_max_age_days < 0:
        fail("sync", "token_max_age_days", "must be 0 (never) or more")
    _validate_web(cfg.web, fail)
    if not cfg.device.data_dir:
        fail("device", "data_dir", "must not be empty")
    if not cfg.readers:
        raise ConfigError(f"{src}: [[readers]]: at least one reader is needed")
    names: set[str] = set()
    for i, reader in enumerate(cfg.readers):
        if reader.driver not in READER_DRIVERS:
            fail("readers", "driver",
                 f"must be one of {', '.join(READER_DRIVERS)}, got {reader.driver!r}", i)
        if not reader.name:
            fail("readers", "name", "must not be empty", i)
        if reader.name in names:
            fail("readers", "name", f"{reader.name!r} is used by two readers", i)
        names.add(reader.name)


def parse_listen(text: str) -> tuple[str, int]:
    """``"0.0.0.0:8080"`` or ``"[::]:8080"`` -> (host, port); ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT (e.g. 0.0.0.0:8080), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_hhmm(text: str) -> tuple[int, int]:
    """``"07:30"`` -> (7, 30); ValueError when it is not a time of day."""
    hours, sep, minutes = text.partition(":")
    if (not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2
            or int(hours) > 23 or int(minutes) > 59):
        raise ValueError(f"must be a time of day HH:MM (e.g. 07:00), got {text!r}")
    return int(hours), int(minutes)


def _validate_web(web: WebConfig, fail: Any) -> None:
    try:
        parse_listen(web.listen)
    except ValueError as exc:
        fail("web", "listen", str(exc))
    for key in ("session_minutes", "lockout_failures", "lockout_minutes"):
        if getattr(web, key) < 1:
            fail("web", key, "must be at least 1")
    if web.grace_minutes < 0:
        fail("web", "grace_minutes", "must be 0 or more")
    try:
        parse_hhmm(web.start_time)
    except ValueError as exc:
        fail("web", "start_time", str(exc))
    try:
        from limits import parse_many
    except ImportError:  # flask-limiter is not installed: the page cannot run anyway
        return
    try:
        if not parse_many(web.login_rate_limit):
            raise ValueError
    except ValueError:
        fail("web", "login_rate_limit",
             f"must be like \"10 per minute\" or \"10/minute\", got {web.login_rate_limit!r}")


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Build the configuration from defaults, ``path`` (TOML) and ``environ``.

    ``path=None`` reads ``$ATTENDANCE_CONFIG`` or ``/etc/attendance/edge.toml``
    when they exist and uses the defaults otherwise. An explicitly named file
    that does not exist is an error.
    """
    environ = os.environ if environ is None else environ
    cfg = EdgeConfig()
    explicit = path is not None or "ATTENDANCE_CONFIG" in environ
    file = Path(path if path is not None else environ.get("ATTENDANCE_CONFIG", DEFAULT_CONFIG_PATH))
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from None
        cfg.source = str(file)
        for key, value in data.items():
            if key == "readers":
                if not isinstance(value, list):
                    raise ConfigError(f"{file}: readers must be written as [[readers]] tables")
                cfg.readers = []
                for i, entry in enumerate(value):
                    reader = ReaderConfig(name=f"reader{i + 1}" if i else "reader")
                    _fill(reader, entry, str(file), "readers", i)
                    cfg.readers.append(reader)
            elif key in _SECTIONS:
                _fill(getattr(cfg, key), value, str(file), key)
            else:
                known = ", ".join(sorted([*_SECTIONS, "readers"]))
                raise ConfigError(f"{file}: unknown section [{key}] (known: {known})")
    elif explicit:
        raise ConfigError(f"{file}: configuration file not found")

    for var in sorted(environ):
        if not var.startswith("ATTENDANCE_") or var == "ATTENDANCE_CONFIG":
            continue
        rest = var[len("ATTENDANCE_"):].lower()
        if rest.startswith("reader_"):
            if not cfg.readers:
                cfg.readers.append(ReaderConfig())
            _fill(cfg.readers[0], {rest[len("reader_"):]: environ[var]}, var,
                  "readers", 0, from_env=True)
            continue
        for section in _SECTIONS:
            if rest.startswith(section + "_"):
                _fill(getattr(cfg, section), {rest[len(section) + 1:]: environ[var]},
                      var, section, from_env=True)
                break
        # Other ATTENDANCE_* variables belong to other tools (the server, tests).
    _validate(cfg)
    return cfg
