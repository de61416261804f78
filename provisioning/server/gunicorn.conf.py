"""gunicorn settings of the central server in production (behind nginx on the same host).

Installed as /etc/attendance/gunicorn.conf.py and used by attendance-server.service:

    gunicorn -c /etc/attendance/gunicorn.conf.py 'server.app:create_app()'

Each value can be changed without editing this file, from the unit's environment
(``systemctl edit attendance-server``, ``[Service] Environment=...``):

    ATTENDANCE_GUNICORN_BIND        127.0.0.1:8080 (keep it on loopback: nginx is the door)
    ATTENDANCE_GUNICORN_WORKERS     2 x CPUs + 1, at most 9
    ATTENDANCE_GUNICORN_TIMEOUT     120 seconds for one request (a month's XLSX recap of a
                                    large site takes a while; nginx waits a little longer)
    ATTENDANCE_GUNICORN_ACCESS_LOG  /var/log/attendance-server/access.log ("-" = journald)
    ATTENDANCE_GUNICORN_ERROR_LOG   "-" (stderr, i.e. the journal)

Access log lines carry the path without its query string (a query string could carry a
secret someone put there) and no Referer; a successful ``GET /api/v1/health`` (the
monitoring probe, every few seconds) is not logged, a failing one is.
"""

from __future__ import annotations

import logging
import os
import sys

from gunicorn.glogging import Logger

HEALTH_PATH = "/api/v1/health"
DEFAULT_ACCESS_LOG = "/var/log/attendance-server/access.log"


def _env_int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"gunicorn.conf.py: {name}={raw!r}: must be a whole number") from None
    if not low <= value <= high:
        raise SystemExit(f"gunicorn.conf.py: {name}={raw!r}: must be between {low} and {high}")
    return value


def default_workers(cpus: int | None) -> int:
    """2 x CPUs + 1 sync workers (gunicorn's rule of thumb), at most 9.

    More would only add database connections and memory: a worker holds a
    connection pool, and taps are written in short transactions.
    """
    return min(2 * max(cpus or 1, 1) + 1, 9)


class AccessLogger(Logger):
    """gunicorn's logger, without the successful health probes in the access log."""

    def access(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        if environ.get("PATH_INFO") == HEALTH_PATH and str(resp.status).startswith("200"):
            return
        super().access(resp, req, environ, request_time)


wsgi_app = "server.app:create_app()"
bind = [os.environ.get("ATTENDANCE_GUNICORN_BIND", "127.0.0.1:8080")]
workers = _env_int("ATTENDANCE_GUNICORN_WORKERS", default_workers(os.cpu_count()), 1, 64)
worker_class = "sync"
timeout = _env_int("ATTENDANCE_GUNICORN_TIMEOUT", 120, 10, 3600)
# On SIGTERM (systemctl stop) a worker finishes the request in hand: a batch of taps
# is committed and acknowledged, or not started.
graceful_timeout = 30
keepalive = 5
# A worker is replaced after this many requests (with jitter, so not all at once):
# memory fragmentation of long-lived processes stays bounded.
max_requests = 5000
max_requests_jitter = 500
# Not preloaded: each worker builds its own app and its own database pool.
preload_app = False

# nginx on this host sets X-Forwarded-Proto; trust it only from loopback. The app's
# own X-Forwarded-For handling is [web] proxy_count = 1 (ATTENDANCE_WEB_PROXY_COUNT).
forwarded_allow_ips = "127.0.0.1,::1"

accesslog = os.environ.get("ATTENDANCE_GUNICORN_ACCESS_LOG", DEFAULT_ACCESS_LOG)
errorlog = os.environ.get("ATTENDANCE_GUNICORN_ERROR_LOG", "-")
loglevel = "info"
# nginx's address, the client's address as nginx saw it, time, method, path WITHOUT the
# query string, status, bytes, milliseconds, user agent (the edge's version is in it).
access_log_format = ('%(h)s %({x-forwarded-for}i)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s '
                     '%(M)sms "%(a)s"')
logger_class = AccessLogger
capture_output = False
proc_name = "attendance-server"


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    """The app's own log lines (``server.*``, level from ``[log] level``) go to stderr,
    i.e. the journal, next to gunicorn's."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
