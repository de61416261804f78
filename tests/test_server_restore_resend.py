"""The server's database restored from a backup older than its last acknowledgements: the
edge sends the acknowledged taps it still keeps again, and the server holds each once.

Real processes on loopback: ``attendance-server`` on a SQLite file, backed up with SQLite's
online backup while it ran, and ``attendance-edge run`` with a simulated reader.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.outbox import Outbox
from tests.edge_process import EdgeProcess, backlog, edge_cmd, edge_taps, sync_config
from tests.sync_env import CentralServer, assert_exactly_once, enrol, fill_outbox, wait_for


def backup(database: Path, copy: Path) -> None:
    source, target = sqlite3.connect(database), sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()


def restore(copy: Path, database: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    database.write_bytes(copy.read_bytes())


def test_taps_acknowledged_after_the_backup_are_sent_again_after_a_restore(tmp_path):
    server = CentralServer(tmp_path / "server")
    server.setup_site()
    server.start()
    config = sync_config(tmp_path, server.url)
    enrol(config, server)
    first = fill_outbox(tmp_path / "data" / "edge.db", 50)
    edge = EdgeProcess(config)
    try:
        edge.wait_ready()
        wait_for(lambda: backlog(config) == 0, 60, "first taps acknowledged")
        database = tmp_path / "server" / "server.db"
        backup(database, tmp_path / "backup.db")  # the nightly backup, taken while serving

        for i in range(5):  # taps acknowledged after the backup
            assert edge_cmd(config, "tap", f"04AB{i:010X}").stdout.startswith("unknown:")
        wait_for(lambda: backlog(config) == 0, 30, "later taps acknowledged")
        later = [t["event_id"] for t in edge_taps(config)][-5:]
        assert len(server.stored_taps()) == 55

        server.stop()  # the server's disk dies; the backup is restored
        restore(tmp_path / "backup.db", database)
        assert len(server.stored_taps()) == 50  # read before the edge can send anything
        server.start()

        # Nothing new is tapped: the heartbeat's reply tells the edge what the server holds.
        wait_for(lambda: len(server.stored_taps()) == 55, 60, "the lost taps sent again")
        wait_for(lambda: backlog(config) == 0, 30, "sent-again taps acknowledged")
        assert edge_cmd(config, "tap", "04CDEF01234567").stdout.startswith("unknown:")
        wait_for(lambda: backlog(config) == 0, 30, "a new tap after the restore")
    finally:
        assert edge.terminate() == 0
        server.stop()
    assert "sending them again" in edge.output()
    everything = [t["event_id"] for t in edge_taps(config)]
    assert len(everything) == 56 and set(first + later) <= set(everything)
    assert_exactly_once(server, everything)
    assert len(server.stored_taps()) == 56


def test_take_back_acks_makes_exactly_the_unheld_taps_unsent(tmp_path):
    db = tmp_path / "edge.db"
    fill_outbox(db, 10)
    with Outbox(db) as outbox:
        outbox.mark_acked(list(range(1, 11)))
        assert outbox.backlog()[0] == 0
        # The server holds 1-7 but not 3-4: 3, 4 and 8-10 are sent again, 9 was already.
        again = outbox.take_back_acks(7, [(3, 4)], skip={9})
        assert again == [3, 4, 8, 10]
        assert outbox.backlog()[0] == 4
        assert [t.seq for t in outbox.taps(unacked_only=True)] == [3, 4, 8, 10]
        # Taps made unsent are kept until acknowledged again, whatever their age.
        assert outbox.prune(0) == 6
        assert sorted(t.seq for t in outbox.taps()) == [3, 4, 8, 10]
        # Asked again with the same answer: nothing more to take back.
        assert outbox.take_back_acks(7, [(3, 4)]) == []
        outbox.mark_acked([3, 4, 8, 10])
        assert outbox.backlog()[0] == 0
        # A server that holds everything: nothing changes.
        assert outbox.take_back_acks(10, []) == []
