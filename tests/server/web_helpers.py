"""Helpers of the dashboard tests: accounts, logging in with the form's CSRF token, and the
real app served over loopback HTTP for the browser."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from server import accounts

PASSWORD = "kata-sandi-uji-123"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(engine: Any, username: str, role: str = "diskominfo", site: str | None = None,
              password: str = PASSWORD) -> accounts.WebUser:
    with engine.begin() as conn:
        return accounts.create_user(conn, username, password, role, site)


def csrf_token(client: Any, path: str = "/dashboard/login") -> str:
    """The CSRF token of the form on ``path`` (for the client's session)."""
    page = client.get(path)
    found = _TOKEN.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {path} ({page.status_code})"
    return found.group(1)


def login(client: Any, username: str, password: str = PASSWORD, **extra: str) -> Any:
    """Post the login form as a browser would; returns the reply (302 when it worked)."""
    token = csrf_token(client)
    return client.post("/dashboard/login", data={"username": username, "password": password,
                                                 "csrf_token": token, **extra})


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-test-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
