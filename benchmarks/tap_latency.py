"""Tap-to-feedback latency of the edge, against a bare SQLite insert.

Measures, in one process and on the same disk:

* **edge**: ``FakeReader.tap()`` → recorder → outbox commit (WAL,
  ``synchronous=FULL``) → the feedback call; the clock stops inside the
  feedback call, so the durable commit is included.
* **baseline**: a bare ``sqlite3`` single-row ``INSERT`` + ``COMMIT`` into a
  table of the same shape, WAL and ``synchronous=FULL``.

The two alternate tap by tap so that disk and machine noise hit both alike.
Then sustained taps per second for a run of unique cards, and the peak RSS of
a real ``attendance-edge run`` service fed taps over its control socket.

    .venv/bin/python benchmarks/tap_latency.py [--taps 10000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.clock import Clock  # noqa: E402
from edge.outbox import Outbox  # noqa: E402
from edge.recorder import Recorder  # noqa: E402
from hardware.feedback import Feedback  # noqa: E402
from hardware.reader import FakeReader  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class StopwatchFeedback(Feedback):
    """Null feedback that notes when it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.at = 0

    def _tap(self, name: str, verdict: str) -> None:
        self.at = time.perf_counter_ns()


class Bare:
    """The baseline: a bare sqlite3 single-row INSERT + COMMIT, WAL, synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE taps (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT, "
            "card_uid TEXT, tapped_at TEXT, tapped_at_utc TEXT, boot_id TEXT, mono_ns INTEGER, "
            "clock_synced INTEGER, reader TEXT, verdict TEXT)")
        self.i = 0

    def insert(self) -> float:
        self.i += 1
        start = time.perf_counter_ns()
        self.conn.execute("BEGIN")
        self.conn.execute(
            "INSERT INTO taps (event_id, card_uid, tapped_at, tapped_at_utc, boot_id, mono_ns, "
            "clock_synced, reader, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [str(uuid.uuid4()), f"04{self.i:012X}", "2026-11-23T07:00:00.000+07:00",
             "2026-11-23T00:00:00.000+00:00", "boot", self.i, 1, "bench", "accepted"])
        self.conn.execute("COMMIT")
        return (time.perf_counter_ns() - start) / 1e6


def bench_interleaved(directory: Path, n: int) -> tuple[list[float], list[float], float]:
    """Edge taps and bare inserts alternate, so disk and machine noise hit both alike."""
    outbox = Outbox(directory / "edge.db")
    feedback = StopwatchFeedback()
    recorder = Recorder(outbox, feedback=feedback, clock=Clock(), debounce_seconds=60)
    reader = FakeReader("bench", when_tapped=recorder.handle).open()
    bare = Bare(directory / "bare.db")
    for i in range(200):  # warm-up
        bare.insert()
        reader.tap(f"05{i:012X}")
    edge_ms, bare_ms = [], []
    edge_total = 0
    for i in range(n):
        bare_ms.append(bare.insert())
        start = time.perf_counter_ns()
        reader.tap(f"04{i:012X}")
        edge_ms.append((feedback.at - start) / 1e6)
        edge_total += time.perf_counter_ns() - start
    assert sum(1 for t in outbox.taps() if t.card_uid.startswith("04")) == n
    assert feedback.at and len(feedback.history) == 0  # the stopwatch replaced the null log
    outbox.close()
    bare.conn.close()
    return edge_ms, bare_ms, n / (edge_total / 1e9)


def bench_service_rss(directory: Path, n: int) -> dict[str, float]:
    from edge import control

    data = directory / "service"
    config = directory / "edge.toml"
    config.write_text(f'[device]\ndata_dir = "{data}"\n[feedback]\nkind = "none"\n'
                      '[log]\nlevel = "WARNING"\n[[readers]]\nname = "sim"\ndriver = "sim"\n')
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(config), "run"])
    sock = data / "control.sock"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                control.request(sock, {"cmd": "status"})
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        start = time.perf_counter()
        for i in range(n):
            reply = control.request(sock, {"cmd": "tap", "uid": f"05{i:012X}"})
            assert reply["verdict"] == "unknown", reply
        elapsed = time.perf_counter() - start
        status = (Path("/proc") / str(proc.pid) / "status").read_text()
        hwm = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmHWM:"))
    finally:
        proc.terminate()
        proc.wait(15)
    return {"taps": n, "taps_per_s_over_socket": n / elapsed, "peak_rss_mb": hwm / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=10_000)
    parser.add_argument("--service-taps", type=int, default=5_000)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to put the databases (default: a temp dir under the cwd's disk)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tapbench-", dir=args.dir or Path.cwd()))
    try:
        edge, bare, sustained = bench_interleaved(base, args.taps)
        service = bench_service_rss(base, args.service_taps)
    finally:
        subprocess.run(["rm", "-rf", str(base)])
    result = {
        "taps": args.taps,
        "edge_ms": {"p50": pct(edge, 50), "p99": pct(edge, 99), "mean": statistics.fmean(edge)},
        "bare_insert_commit_ms": {"p50": pct(bare, 50), "p99": pct(bare, 99),
                                  "mean": statistics.fmean(bare)},
        "ratio_p50": pct(edge, 50) / pct(bare, 50),
        "ratio_p99": pct(edge, 99) / pct(bare, 99),
        "ratio_mean": statistics.fmean(edge) / statistics.fmean(bare),
        "sustained_taps_per_s": sustained,
        "service": service,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }
    print(json.dumps(result, indent=2))
    print(f"\ntap->feedback p50 {result['edge_ms']['p50']:.3f} ms, p99 "
          f"{result['edge_ms']['p99']:.3f} ms; bare INSERT+COMMIT p50 "
          f"{result['bare_insert_commit_ms']['p50']:.3f} ms, p99 "
          f"{result['bare_insert_commit_ms']['p99']:.3f} ms; ratio p50 "
          f"{result['ratio_p50']:.2f}, p99 {result['ratio_p99']:.2f}; sustained "
          f"{sustained:.0f} taps/s; service peak RSS {service['peak_rss_mb']:.1f} MB")


if __name__ == "__main__":
    main()
