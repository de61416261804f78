"""The central server's Flask application factory.

Run it with ``attendance-server run`` (waitress), or under gunicorn::

    gunicorn -w 4 -b 127.0.0.1:8080 'server.app:create_app()'

Configuration: defaults, then the TOML file (``$ATTENDANCE_SERVER_CONFIG`` or
``/etc/attendance/server.toml``), then ``ATTENDANCE_*`` variables and
``DATABASE_URL`` (see :mod:`server.config`). ``create_app(test_config)`` uses
the defaults and ``test_config`` only, so tests do not depend on the machine.

Flask config keys: ``DATABASE_URL``, ``MIGRATE_ON_START``,
``MAX_CONTENT_LENGTH``, ``MAX_BATCH``, ``HEARTBEAT_SECONDS``,
``ANCHOR_INTERVAL_SECONDS``, ``LOG_LEVEL``, ``RECONCILE_INTERVAL_SECONDS``,
``ATTENDANCE_RULES``; for the dashboard (:mod:`server.web`) ``SECRET_KEY``,
``SECRET_KEY_FILE``, ``SESSION_TIMEOUT_MINUTES``, ``LOGIN_MAX_FAILURES``,
``LOGIN_LOCKOUT_MINUTES``, ``LOGIN_RATE_LIMIT``, ``OFFLINE_AFTER_MINUTES``,
``SESSION_COOKIE_SECURE``, ``PROXY_COUNT``; fleet alerts (:mod:`server.alerts`)
``ALERT_THRESHOLDS``.

Background reconciliation: when ``RECONCILE_INTERVAL_SECONDS`` > 0 the app
starts a :class:`server.reconcile.Reconciler` thread, kept in
``app.extensions["attendance_reconciler"]`` (``.stop()`` ends it). A
``test_config`` that does not name ``RECONCILE_INTERVAL_SECONDS`` starts none,
so tests get a thread only when they ask for one.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask

from server.config import ServerSettings, load_settings
from server.db import create_db_engine, current_revision, describe_url, head_revision, migrate
from server.openapi import API_PREFIX, RequestValidator
from server.web import init_app as init_dashboard

log = logging.getLogger(__name__)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, database engine, request validator, blueprints, error handlers."""
    from server.api import ApiState, devices, excuses, meta, register_error_handlers, roster, taps
    from server.api import cards, diskominfo, registry
    from server.api import settings as settings_api

    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(ServerSettings().flask_config())
    if test_config is None:
        app.config.update(load_settings().flask_config())
    else:
        app.config.update(test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logging.getLogger("server").setLevel(app.config["LOG_LEVEL"])

    engine = create_db_engine(app.config["DATABASE_URL"])
    app.extensions["attendance"] = ApiState(engine=engine, validator=RequestValidator())
    if app.config["MIGRATE_ON_START"]:
        before, after = migrate(engine)
        if before != after:
            log.info("database %s migrated from %s to %s",
                     describe_url(app.config["DATABASE_URL"]), before, after)
    else:
        _warn_if_not_migrated(app)

    # Start with an empty pool: under gunicorn --preload the app is built before the
    # fork, and a connection must never be shared by two processes.
    engine.dispose()

    _start_reconciler(app, explicit=test_config is None
                      or "RECONCILE_INTERVAL_SECONDS" in test_config)

    register_error_handlers(app)
    for module in (devices, taps, roster, excuses, cards, meta, diskominfo, registry,
                   settings_api):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
    init_dashboard(app)
    return app


def _start_reconciler(app: Flask, *, explicit: bool) -> None:
    """Validate the attendance rules and start the background reconciler when configured."""
    from server.attendance_rules import RulesConfig
    from server.reconcile import Reconciler

    rules = app.config.get("ATTENDANCE_RULES") or {}
    config = rules if isinstance(rules, RulesConfig) else RulesConfig.from_dict(rules)
    app.extensions["attendance_rules"] = config
    interval = float(app.config.get("RECONCILE_INTERVAL_SECONDS") or 0)
    if explicit and interval > 0:
        app.extensions["attendance_reconciler"] = Reconciler(
            app.extensions["attendance"].engine, interval=interval, config=config).start()


def _warn_if_not_migrated(app: Flask) -> None:
    engine = app.extensions["attendance"].engine
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except Exception as exc:  # the database may be down at start; /health will say so
        log.warning("database %s not reachable at start: %s",
                    describe_url(app.config["DATABASE_URL"]), exc)
        return
    if revision != head_revision():
        log.error("database %s is at schema %s, this server needs %s: run "
                  "'attendance-server migrate' (or set [database] migrate_on_start)",
                  describe_url(app.config["DATABASE_URL"]), revision, head_revision())
