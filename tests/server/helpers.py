"""Small builders shared by the server tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from server import devices

WALL = "2026-11-23T07:00:00.000+07:00"


@dataclass
class Device:
    device_id: str
    token: str
    site: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_site(engine: Any, code: str, name: str = "Sekolah", tz: str = "Asia/Jakarta") -> str:
    with engine.begin() as conn:
        devices.add_site(conn, code, name, tz)
    return code


def claim_code(engine: Any, site: str, hours: float = 72) -> str:
    with engine.begin() as conn:
        return devices.create_claim_code(conn, site, hours=hours).code


def enroll_device(client: Any, engine: Any, site: str, hardware: str = "pi-test") -> Device:
    reply = client.post("/api/v1/devices/enroll",
                        json={"claim_code": claim_code(engine, site), "hardware_id": hardware})
    assert reply.status_code == 200, reply.json
    return Device(reply.json["device_id"], reply.json["token"], site)


def make_tap(seq: int, device_id: str | None = None, **fields: Any) -> dict[str, Any]:
    tap = {
        "event_id": str(uuid.uuid4()),
        "device_id": device_id,
        "seq": seq,
        "card_uid": "04A1B2C3D4E5F6",
        "tapped_at": WALL,
        "boot_id": "boot-1",
        "mono_ns": 5_000_000_000 + seq * 1_000_000_000,
        "clock_synced": True,
        "reader": "gerbang",
        "verdict": "accepted",
    }
    tap.update(fields)
    return tap


def count(engine: Any, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one()


def rows(engine: Any, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).mappings())
