"""Backlog drain: a week offline (100,000 taps) pushed edge → server over loopback.

Starts ``attendance-server run`` (waitress) on a SQLite file or
``--database-url``, fills an edge outbox, and drains it with the real
``SyncWorker`` in batches. The baseline, in the same run, pushes taps one per
request (as common sync tools do) for ``--single`` taps; the ratio compares
taps per second.

    .venv/bin/python benchmarks/sync_drain.py [--taps 100000] [--batch 500] [--single 2000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.clock import Clock  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from edge.sync import SyncReport, build_sync_worker  # noqa: E402
from tests.edge_process import edge_cmd, write_config  # noqa: E402
from tests.sync_env import CentralServer  # noqa: E402
from tests.test_sync_e2e import fill_outbox  # noqa: E402


def edge_for(base: Path, server: CentralServer, name: str, taps: int, batch: int,
             first_card: int = 0):
    home = base / name
    home.mkdir()
    config = write_config(home, extra=f'[sync]\nserver_url = "{server.url}"\n'
                                      f'batch_size = {batch}\ntimeout_seconds = 60\n')
    edge_cmd(config, "enroll", "--server", server.url, "--code", server.claim_code())
    fill_outbox(home / "data" / "edge.db", taps, start=first_card)
    return load_config(config, environ={})


def drain(cfg, batch: int) -> tuple[float, int]:
    with Outbox(cfg.database_path) as outbox:
        worker = build_sync_worker(cfg, outbox, Clock())
        assert worker is not None
        worker.batch_size = batch
        report = SyncReport()
        start = time.perf_counter()
        while worker.push_once(report):
            pass
        elapsed = time.perf_counter() - start
        left = outbox.backlog()[0]
        worker.client.close()
    assert left == 0, f"{left} taps left"
    assert report.accepted == report.pushed, report
    return elapsed, report.pushed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="drainbench-"))
    server = CentralServer(base / "server", args.database_url)
    try:
        server.setup_site()
        server.start()
        batched_cfg = edge_for(base, server, "batched", args.taps, args.batch)
        single_cfg = edge_for(base, server, "single", args.single, 1, first_card=10**9)
        single_s, single_n = drain(single_cfg, 1)
        batch_s, batch_n = drain(batched_cfg, args.batch)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    batched_rate = batch_n / batch_s
    single_rate = single_n / single_s
    result = {
        "database": "postgresql" if args.database_url else "sqlite",
        "taps": batch_n, "batch": args.batch, "seconds": round(batch_s, 2),
        "taps_per_s": round(batched_rate), "single_taps": single_n,
        "single_taps_per_s": round(single_rate, 1),
        "ratio_vs_one_per_request": round(batched_rate / single_rate, 1),
    }
    print(json.dumps(result, indent=2))
    print(f"\ndrained {batch_n} taps in {batch_s:.1f} s ({batched_rate:.0f} taps/s, batches of "
          f"{args.batch}); one tap per request: {single_rate:.0f} taps/s; ratio "
          f"{batched_rate / single_rate:.1f}x")


if __name__ == "__main__":
    main()
