"""Fixtures for the operator's page: the app on a real SQLite file, a settable clock."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edge import operators
from edge.config import EdgeConfig, load_config
from edge.outbox import Outbox, open_database
from edge.rules import RosterEntry

PASSWORD = "Rahasia-Sekolah-2026"


class SetClock:
    """``now()`` for the app: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


def make_config(tmp_path: Path, **web: Any) -> EdgeConfig:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in web.items())
    path = tmp_path / "edge.toml"
    path.write_text(f'[device]\nname = "sdn-001"\ndata_dir = "{tmp_path / "data"}"\n'
                    f'[feedback]\nkind = "none"\n[web]\n{lines}')
    return load_config(path, environ={})


def fill_roster(database: Path, entries: list[RosterEntry]) -> None:
    from edge.outbox import Outbox

    with Outbox(database) as outbox:
        outbox.replace_roster(entries)


ROSTER = [
    RosterEntry("04A1B2C3D4E5F6", "0051234567", "Siti Aminah", "student", "VII-A"),
    RosterEntry("04A1B2C3D4E5F7", "0051234568", "Budi Santoso", "student", "VII-A"),
    RosterEntry("04A1B2C3D4E5F8", "0051234569", "Citra Lestari", "student", "VII-B"),
    RosterEntry("8C3F2A11", "198703152010012003", "Dewi Kartika", "employee", "Guru"),
]


@pytest.fixture
def clock() -> SetClock:
    return SetClock()


@pytest.fixture
def config(tmp_path: Path) -> EdgeConfig:
    return make_config(tmp_path, lockout_failures=3, lockout_minutes=15, session_minutes=30,
                       login_rate_limit="50 per minute")


@pytest.fixture
def database(config: EdgeConfig) -> Path:
    db = open_database(config.database_path)
    operators.add_operator(db, "guru", PASSWORD)
    db.close()
    fill_roster(config.database_path, ROSTER)
    return config.database_path


@pytest.fixture
def app(config: EdgeConfig, database: Path, clock: SetClock) -> Any:
    from edge.web import create_app

    return create_app(config, now=clock)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def csrf_token(client: Any, path: str = "/login") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)[:500]
    return found.group(1)


def login(client: Any, username: str = "guru", password: str = PASSWORD) -> Any:
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_token(client)})


@pytest.fixture
def logged_in(client: Any) -> Any:
    reply = login(client)
    assert reply.status_code == 302, reply.get_data(as_text=True)
    return client


@pytest.fixture
def outbox(tmp_path: Path) -> Any:
    """An edge database with the roster above (the stores' tests)."""
    box = Outbox(tmp_path / "edge.db")
    box.replace_roster(ROSTER)
    yield box
    box.close()
