"""Server ingest throughput through the HTTP API, against a bare executemany.

For SQLite (default) and PostgreSQL (``--database-url postgresql://…``, a
database the script may fill; use a scratch one):

* **api**: ``attendance-server run`` (waitress) receives ``POST /api/v1/taps``
  batches of ``--batch`` taps from one client over loopback; taps per second.
* **bare**: in this process, the same rows are inserted into the same
  ``taps`` table (same indexes and constraints, a second device) with the
  driver's ``executemany``, one transaction per batch; taps per second.

    .venv/bin/python benchmarks/server_ingest.py [--taps 50000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sync_env import CentralServer  # noqa: E402


def make_taps(n: int, device_id: str, prefix: str) -> list[dict]:
    return [{"event_id": str(uuid.uuid4()), "device_id": device_id, "seq": i + 1,
             "card_uid": f"{prefix}{i:012X}", "tapped_at": "2026-11-16T07:00:00.000+07:00",
             "boot_id": "bench-boot", "mono_ns": i * 1000, "clock_synced": False,
             "reader": "gerbang", "verdict": "unknown"} for i in range(n)]


def api_rate(server: CentralServer, taps: list[dict], batch: int, token: str) -> float:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    for i in range(0, len(taps), batch):
        reply = session.post(server.url + "/api/v1/taps", json={"taps": taps[i:i + batch]},
                             headers=headers, timeout=120)
        assert reply.status_code == 200, reply.text
        assert all(r["status"] == "accepted" for r in reply.json()["results"])
    return len(taps) / (time.perf_counter() - start)


def bare_rate(database_url: str, taps: list[dict], batch: int, device_id: str) -> float:
    now = datetime.now(timezone.utc)
    utc = datetime(2026, 11, 16, 0, 0, tzinfo=timezone.utc)
    if database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(database_url.split("sqlite:///", 1)[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        mark, stamp = "?", (lambda d: d.isoformat(sep=" "))
    else:
        import psycopg

        conn = psycopg.connect(database_url, autocommit=True)
        mark, stamp = "%s", (lambda d: d)
    cols = ("event_id, device_id, seq, card_uid, tapped_at, tapped_at_utc, boot_id, mono_ns, "
            "clock_synced, reader, verdict, received_at, corrected_at, clock_status")
    sql = f"INSERT INTO taps ({cols}) VALUES ({', '.join([mark] * 14)})"
    rows = [(t["event_id"], device_id, t["seq"], t["card_uid"], t["tapped_at"], stamp(utc),
             t["boot_id"], t["mono_ns"], False, t["reader"], t["verdict"], stamp(now),
             stamp(utc), "unverified") for t in taps]
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        if mark == "?":
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[i:i + batch])
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                conn.cursor().executemany(sql, rows[i:i + batch])
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def enrol(server: CentralServer) -> tuple[str, str]:
    code = server.claim_code()
    reply = requests.post(server.url + "/api/v1/devices/enroll",
                          json={"claim_code": code, "hardware_id": f"bench-{uuid.uuid4()}"},
                          timeout=30).json()
    return reply["device_id"], reply["token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ingestbench-"))
    server = CentralServer(base / "server", args.database_url)
    try:
        server.setup_site()
        server.start()
        api_device, token = enrol(server)
        bare_device, _ = enrol(server)
        api = api_rate(server, make_taps(args.taps, api_device, "04"), args.batch, token)
        server.stop()
        bare = bare_rate(server.database_url, make_taps(args.taps, bare_device, "05"),
                         args.batch, bare_device)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    result = {"database": "postgresql" if args.database_url else "sqlite", "taps": args.taps,
              "batch": args.batch, "api_taps_per_s": round(api), "bare_executemany_taps_per_s":
              round(bare), "ratio": round(api / bare, 2)}
    print(json.dumps(result, indent=2))
    print(f"\n{result['database']}: HTTP ingest {api:.0f} taps/s, bare executemany {bare:.0f} "
          f"taps/s, ratio {api / bare:.2f}")


if __name__ == "__main__":
    main()
