"""Server configuration: defaults, then a TOML file, then the environment.

Every key is documented in ``provisioning/server.example.toml``. The file is
``$ATTENDANCE_SERVER_CONFIG`` or ``/etc/attendance/server.toml`` (when it
exists). Any key can be overridden as ``ATTENDANCE_<SECTION>_<KEY>``, e.g.
``ATTENDANCE_HTTP_PORT=8081``; ``DATABASE_URL`` overrides ``[database] url``
and wins over everything, as hosting platforms expect.

A bad value or an unknown key raises :class:`~server.errors.ConfigError`
naming the file (or variable), the section and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from server.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/attendance/server.toml")
CONFIG_ENV = "ATTENDANCE_SERVER_CONFIG"
DEFAULT_DATABASE_URL = "sqlite:////var/lib/attendance-server/server.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: The contract's fixed ceiling on taps (and excuses) per request.
MAX_BATCH_CEILING = 1000


@dataclass
class DatabaseSettings:
    url: str = DEFAULT_DATABASE_URL
    migrate_on_start: bool = False


@dataclass
class ApiSettings:
    max_content_length: int = 4 * 1024 * 1024
    max_batch: int = MAX_BATCH_CEILING
    heartbeat_seconds: int = 60
    anchor_interval_seconds: float = 300.0


@dataclass
class EnrolmentSettings:
    claim_code_hours: float = 72.0


@dataclass
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    public_url: str = ""


@dataclass
class LogSettings:
    level: str = "INFO"


@dataclass
class AttendanceSettings:
    """Reconciliation: how often it runs and the rules (see server.attendance_rules.RulesConfig)."""

    reconcile_interval_seconds: float = 60.0
    late_brackets: list[int] = field(default_factory=lambda: [30, 60, 90])
    late_names: list[str] = field(default_factory=lambda: ["TL1", "TL2", "TL3", "TL4"])
    early_brackets: list[int] = field(default_factory=lambda: [30, 60, 90])
    early_names: list[str] = field(default_factory=lambda: ["PSW1", "PSW2", "PSW3", "PSW4"])
    many_taps: int = 6
    travel_minutes: int = 30
    deduction_weights: dict[str, float] = field(default_factory=lambda: _default_weights())

    def rules(self) -> dict[str, Any]:
        """The keys of ``RulesConfig.from_dict``.

        Untouched default weights are left out, so that renamed late or early
        codes do not meet weights for the old names.
        """
        rules = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                 if f.name != "reconcile_interval_seconds"}
        if rules["deduction_weights"] == _default_weights():
            del rules["deduction_weights"]
        return rules


@dataclass
class WebSettings:
    """The dashboard (server.web): sessions, login protection, the fleet page."""

    #: File holding the key that signs session cookies and CSRF tokens; made (mode 0600)
    #: when missing. "" = ``secret_key`` next to the SQLite database, else
    #: :data:`DEFAULT_SECRET_DIR`. ``ATTENDANCE_SECRET_KEY`` (the key itself) wins.
    secret_key_file: str = ""
    session_timeout_minutes: float = 30.0
    login_max_failures: int = 5
    login_lockout_minutes: float = 15.0
    login_rate_limit: str = "10 per minute"
    offline_after_minutes: float = 15.0
    cookie_secure: bool = False
    proxy_count: int = 0


@dataclass
class AlertsSettings:
    """Fleet alerts (server.alerts.Thresholds): minutes or seconds above which a device
    raises a warning or a critical alert; 0 turns a level off."""

    silent_warning_minutes: float = 120.0
    silent_critical_minutes: float = 4320.0
    backlog_warning_minutes: float = 60.0
    backlog_critical_minutes: float = 2880.0
    clock_offset_warning_seconds: float = 120.0
    clock_offset_critical_seconds: float = 600.0


#: Where the dashboard's secret key file goes when the database is not a SQLite file.
DEFAULT_SECRET_DIR = "/var/lib/attendance-server"
SECRET_KEY_ENV = "ATTENDANCE_SECRET_KEY"


def _default_weights() -> dict[str, float]:
    from server.attendance_rules import DEFAULT_DEDUCTION_WEIGHTS

    return dict(DEFAULT_DEDUCTION_WEIGHTS)


@dataclass
class ServerSettings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    enrolment: EnrolmentSettings = field(default_factory=EnrolmentSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    attendance: AttendanceSettings = field(default_factory=AttendanceSettings)
    web: WebSettings = field(default_factory=WebSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    source: str = "defaults"
    #: ``$ATTENDANCE_SECRET_KEY``, never read from the file (and never printed).
    secret_key: str = field(default="", repr=False)

    def flask_config(self) -> dict[str, Any]:
        """The Flask config keys that :func:`server.app.create_app` reads."""
        return {
            "DATABASE_URL": self.database.url,
            "MIGRATE_ON_START": self.database.migrate_on_start,
            "MAX_CONTENT_LENGTH": self.api.max_content_length,
            "MAX_BATCH": self.api.max_batch,
            "HEARTBEAT_SECONDS": self.api.heartbeat_seconds,
            "ANCHOR_INTERVAL_SECONDS": self.api.anchor_interval_seconds,
            "LOG_LEVEL": self.log.level,
            "RECONCILE_INTERVAL_SECONDS": self.attendance.reconcile_interval_seconds,
            "ATTENDANCE_RULES": self.attendance.rules(),
            "SECRET_KEY": self.secret_key or None,
            "SECRET_KEY_FILE": self.web.secret_key_file,
            "SESSION_TIMEOUT_MINUTES": self.web.session_timeout_minutes,
            "LOGIN_MAX_FAILURES": self.web.login_max_failures,
            "LOGIN_LOCKOUT_MINUTES": self.web.login_lockout_minutes,
            "LOGIN_RATE_LIMIT": self.web.login_rate_limit,
            "OFFLINE_AFTER_MINUTES": self.web.offline_after_minutes,
            "SESSION_COOKIE_SECURE": self.web.cookie_secure,
            "PROXY_COUNT": self.web.proxy_count,
            "ALERT_THRESHOLDS": dataclasses.asdict(self.alerts),
        }


_SECTIONS: dict[str, type] = {
    "database": DatabaseSettings,
    "api": ApiSettings,
    "enrolment": EnrolmentSettings,
    "http": HttpSettings,
    "log": LogSettings,
    "attendance": AttendanceSettings,
    "web": WebSettings,
    "alerts": AlertsSettings,
}


def _where(origin: str, section: str, key: str) -> str:
    if origin.startswith("ATTENDANCE_") or origin == "DATABASE_URL":
        return origin
    return f"{origin}: [{section}] {key}"


def _coerce(value: Any, target: type, where: str, from_env: bool) -> Any:
    if target in (list, dict):
        return _coerce_collection(value, target, where, from_env)
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
    if target is bool and isinstance(value, bool):
        return value
    if target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if target is str and isinstance(value, str):
        return value
    kind = {bool: "true or false", int: "a whole number", float: "a number",
            str: "a string"}[target]
    raise ConfigError(f"{where}: expected {kind}, got {value!r}")


def _coerce_collection(value: Any, target: type, where: str, from_env: bool) -> Any:
    """A list (TOML array) or a table; from the environment, JSON or ``a,b`` / ``K=V,K=V``."""
    if from_env and isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON: {exc}") from None
        elif target is list:
            value = [_scalar(item) for item in text.split(",") if item.strip()]
        else:
            pairs = [item.partition("=") for item in text.split(",") if item.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ConfigError(f"{where}: expected CODE=NUMBER pairs separated by commas")
            value = {key.strip(): _scalar(number) for key, _, number in pairs}
    if not isinstance(value, target):
        raise ConfigError(f"{where}: expected {'a list' if target is list else 'a table'}, "
                          f"got {value!r}")
    return value


def _scalar(text: str) -> Any:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fill(obj: Any, data: Any, origin: str, section: str, from_env: bool = False) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: [{section}] must be a table")
    known = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        where = _where(origin, section, key)
        if key not in known:
            raise ConfigError(f"{where}: unknown key (known keys: {', '.join(sorted(known))})")
        setattr(obj, key, _coerce(value, type(getattr(obj, key)), where, from_env))


def _validate(s: ServerSettings, origins: dict[tuple[str, str], str]) -> None:
    def fail(section: str, key: str, msg: str) -> None:
        origin = origins.get((section, key), s.source)
        raise ConfigError(f"{_where(origin, section, key)}: {msg}")

    if not s.database.url:
        fail("database", "url", "must not be empty")
    if not s.database.url.startswith(("sqlite:", "postgresql:", "postgres:",
                                      "postgresql+psycopg:")):
        fail("database", "url", "must start with sqlite:/// or postgresql:// "
                                f"(got {s.database.url.split(':', 1)[0]}:…)")
    if not 1024 <= s.api.max_content_length <= 1024 ** 3:
        fail("api", "max_content_length", "must be between 1024 and 1073741824 bytes")
    if not 1 <= s.api.max_batch <= MAX_BATCH_CEILING:
        fail("api", "max_batch", f"must be between 1 and {MAX_BATCH_CEILING}")
    if s.api.heartbeat_seconds < 5:
        fail("api", "heartbeat_seconds", "must be at least 5")
    if s.api.anchor_interval_seconds < 0:
        fail("api", "anchor_interval_seconds", "must be 0 or more")
    if s.enrolment.claim_code_hours <= 0:
        fail("enrolment", "claim_code_hours", "must be more than 0")
    if not 0 < s.http.port < 65536:
        fail("http", "port", "must be between 1 and 65535")
    if not 1 <= s.http.threads <= 256:
        fail("http", "threads", "must be between 1 and 256")
    if s.http.public_url and not s.http.public_url.startswith(("http://", "https://")):
        fail("http", "public_url", "must start with https:// (or http://)")
    s.http.public_url = s.http.public_url.rstrip("/")
    if s.attendance.reconcile_interval_seconds < 0:
        fail("attendance", "reconcile_interval_seconds", "must be 0 (off) or more")
    from server.attendance_rules import RulesConfig

    try:
        RulesConfig.from_dict(s.attendance.rules())
    except ValueError as exc:
        message = str(exc)
        key = message.split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]
        if key not in {f.name for f in dataclasses.fields(s.attendance)}:
            key = "late_brackets"
        fail("attendance", key, message.removeprefix(f"{key}: "))
    if not 1 <= s.web.session_timeout_minutes <= 24 * 60:
        fail("web", "session_timeout_minutes", "must be between 1 and 1440")
    if not 1 <= s.web.login_max_failures <= 100:
        fail("web", "login_max_failures", "must be between 1 and 100")
    if not 0 < s.web.login_lockout_minutes <= 7 * 24 * 60:
        fail("web", "login_lockout_minutes", "must be more than 0 and at most 10080")
    if not _is_rate_limit(s.web.login_rate_limit):
        fail("web", "login_rate_limit", f"expected e.g. \"10 per minute\" or \"30/hour\", "
                                        f"got {s.web.login_rate_limit!r}")
    if s.web.offline_after_minutes <= 0:
        fail("web", "offline_after_minutes", "must be more than 0")
    if not 0 <= s.web.proxy_count <= 5:
        fail("web", "proxy_count", "must be between 0 and 5 (reverse proxies in front)")
    from server.alerts import Thresholds

    try:
        Thresholds.from_dict(dataclasses.asdict(s.alerts))
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        fail("alerts", key, message)
    if s.log.level.upper() not in LOG_LEVELS:
        fail("log", "level", f"must be one of {', '.join(LOG_LEVELS)}, got {s.log.level!r}")
    s.log.level = s.log.level.upper()


def _is_rate_limit(text: str) -> bool:
    """Whether ``text`` is a rate limit Flask-Limiter reads, e.g. ``10 per minute``."""
    from limits import parse_many

    try:
        return bool(parse_many(text))
    except ValueError:
        return False


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Build the settings from defaults, ``path`` (TOML) and ``environ``.

    ``path=None`` reads ``$ATTENDANCE_SERVER_CONFIG`` or
    ``/etc/attendance/server.toml`` when present; an explicitly named file
    that does not exist is an error.
    """
    environ = os.environ if environ is None else environ
    settings = ServerSettings()
    origins: dict[tuple[str, str], str] = {}
    named = path if path is not None else (environ.get(CONFIG_ENV) or None)
    explicit = named is not None
    file = Path(named if named is not None else DEFAULT_CONFIG_PATH)
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: cannot be read: {exc}") from None
        settings.source = str(file)
        for section, values in data.items():
            if section not in _SECTIONS:
                raise ConfigError(f"{file}: unknown section [{section}] "
                                  f"(known: {', '.join(sorted(_SECTIONS))})")
            _fill(getattr(settings, section), values, str(file), section)
            if isinstance(values, Mapping):
                origins.update({(section, k): str(file) for k in values})
    elif explicit:
        raise ConfigError(f"{file}: configuration file not found")

    for var in sorted(environ):
        if not var.startswith("ATTENDANCE_") or var == CONFIG_ENV:
            continue
        rest = var[len("ATTENDANCE_"):].lower()
        for section in _SECTIONS:
            if rest.startswith(section + "_"):
                key = rest[len(section) + 1:]
                _fill(getattr(settings, section), {key: environ[var]}, var, section,
                      from_env=True)
                origins[(section, key)] = var
                break
        # Other ATTENDANCE_* variables belong to the edge or the tests.
    if environ.get("DATABASE_URL"):
        settings.database.url = environ["DATABASE_URL"]
        origins[("database", "url")] = "DATABASE_URL"
    if environ.get(SECRET_KEY_ENV):
        settings.secret_key = environ[SECRET_KEY_ENV]
        if len(settings.secret_key) < 32:
            raise ConfigError(f"{SECRET_KEY_ENV}: must be at least 32 characters (a random "
                              f"key, e.g. from: python3 -c 'import secrets; "
                              f"print(secrets.token_hex(32))')")
    _validate(settings, origins)
    return settings
