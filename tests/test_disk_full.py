"""A really full disk: the edge signals an error, keeps running, and recovers."""

import json
import os
import subprocess
import uuid

import pytest

from tests.edge_process import EdgeProcess, edge_cmd, write_config
from tests.syspart import need


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    need(os.geteuid() == 0, "mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=768k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    need(done.returncode == 0, f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_then_space_again(tmp_path, small_disk):
    config = write_config(tmp_path)
    text = config.read_text().replace(f'data_dir = "{tmp_path / "data"}"',
                                      f'data_dir = "{small_disk / "data"}"')
    config.write_text(text)
    edge = EdgeProcess(config)
    edge.socket = small_disk / "data" / "control.sock"
    try:
        edge.wait_ready()
        filler = small_disk / "filler"
        # Leave only a little room, then tap until the disk is full.
        stat = os.statvfs(small_disk)
        filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - 96 * 1024))
        acknowledged = {}
        verdict = None
        for i in range(3000):
            out = edge_cmd(config, "tap", f"04{i:012X}", check=False)
            verdict = out.stdout.split(":")[0]
            if verdict == "error":
                assert out.returncode == 1
                break
            parts = out.stdout.split()
            acknowledged[parts[6]] = int(parts[4])
        assert verdict == "error", "the disk never filled up"
        status = json.loads(edge_cmd(config, "status", "--json").stdout)
        assert status["running"] and "full" in status["storage_error"]
        assert "NOT stored" in edge.output()
        filler.unlink()
        out = edge_cmd(config, "tap", "05" + uuid.uuid4().hex[:12].upper())
        assert out.stdout.startswith("unknown:")
        acknowledged[out.stdout.split()[6]] = int(out.stdout.split()[4])
        status = json.loads(edge_cmd(config, "status", "--json").stdout)
        assert status["storage_error"] is None
    finally:
        assert edge.terminate() == 0
    taps = [json.loads(line) for line in edge_cmd(config, "taps", "--json").stdout.splitlines()]
    stored = {t["event_id"]: t["seq"] for t in taps}
    assert all(stored.get(e) == s for e, s in acknowledged.items())
    assert sorted(stored.values()) == list(range(1, len(stored) + 1))
