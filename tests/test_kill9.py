"""Nothing acknowledged is ever lost: kill -9 a tap writer at random moments."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

ROUNDS = int(os.environ.get("KILL9_ROUNDS", "30"))


@pytest.mark.slow
def test_kill9_loop(tmp_path):
    db = tmp_path / "edge.db"
    rng = random.Random(int(os.environ.get("KILL9_SEED", time.time_ns())))
    acknowledged: dict[str, int] = {}
    for round_no in range(ROUNDS):
        proc = subprocess.Popen([sys.executable, "-m", "tests.tap_writer", str(db),
                                 str(4 + round_no % 200)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Random moments, some during start-up (integrity check, migrations).
        time.sleep(rng.choice([0.0, 0.05, 0.2]) + rng.random() * 0.5)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err.decode()
        for line in out.decode().splitlines():
            if line.count(" ") == 1:  # a line cut by the kill has no seq part yet
                event_id, seq = line.split()
                if len(event_id) == 36 and seq.isdigit():
                    acknowledged[event_id] = int(seq)
    assert len(acknowledged) > ROUNDS, "the writer hardly ran; the test proves nothing"

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = dict(conn.execute("SELECT event_id, seq FROM taps").fetchall())
        seqs = sorted(stored.values())
    finally:
        conn.close()
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged taps lost"
    assert all(stored[e] == s for e, s in acknowledged.items())
    assert seqs == list(range(1, len(seqs) + 1)), "seq has a gap or a repeat"
    # Rolled-back work from killed transactions never appears as a tap.
    assert len(stored) >= len(acknowledged)


def test_writer_really_writes(tmp_path):
    """Guard: the kill loop only proves something if acknowledged lines match the database."""
    db = tmp_path / "edge.db"
    proc = subprocess.Popen([sys.executable, "-m", "tests.tap_writer", str(db), "4"],
                            stdout=subprocess.PIPE)
    lines = [proc.stdout.readline().decode().split() for _ in range(50)]
    proc.kill()
    proc.communicate()
    conn = sqlite3.connect(db)
    rows = dict(conn.execute("SELECT event_id, seq FROM taps").fetchall())
    conn.close()
    assert [int(seq) for _, seq in lines] == list(range(1, 51))
    assert all(rows[e] == int(s) for e, s in lines)
