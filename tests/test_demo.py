import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import requests

from tests.edge_process import edge_cmd


def assert_logs_in(url: str, user: str, password: str, expected: str) -> None:
    """Log in through the page's own form (with its CSRF token) and find ``expected``."""
    with requests.Session() as session:
        form = session.get(url, timeout=10)
        assert form.status_code == 200 and 'name="csrf_token"' in form.text, form.text[:500]
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        done = session.post(form.url, data={"csrf_token": token, "username": user,
                                            "password": password}, timeout=10)
        assert done.status_code == 200 and "/login" not in done.url, (done.url, done.text[:500])
        assert expected in done.text, done.text[:2000]


def test_demo_runs_and_accepts_taps(tmp_path):
    demo = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "provisioning.demo", "--dir", str(demo),
                             "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops the demo" in line:
                break
        text = "".join(lines)
        assert "Demo running" in text and "central server: http://127.0.0.1:" in text, text
        config = demo / "edge.toml"
        rows = list(csv.DictReader((demo / "roster.csv").open()))
        assert len(rows) == 44 and rows[-1]["status"] == "lost"
        assert (demo / "registries" / "employees.csv").exists()
        student = rows[0]
        assert f"tap {student['card_uid']}" in text
        assert edge_cmd(config, "tap", student["card_uid"]).stdout.startswith("accepted:")
        assert edge_cmd(config, "tap", rows[-1]["card_uid"]).stdout.startswith("blocked:")
        assert edge_cmd(config, "tap", "04DEADBEEF0001").stdout.startswith("unknown:")
        # The taps reach the central server by themselves.
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{demo / 'server' / 'server.db'}"}
        deadline = time.monotonic() + 30
        stored = []
        while time.monotonic() < deadline and len(stored) < 3:
            out = subprocess.run([sys.executable, "-m", "server.cli", "taps", "--json"],
                                 capture_output=True, text=True, env=env).stdout
            stored = [json.loads(line) for line in out.splitlines() if line.strip()]
            time.sleep(0.3)
        assert sorted(t["card_uid"] for t in stored) == sorted(
            [student["card_uid"], rows[-1]["card_uid"], "04DEADBEEF0001"])
        # The dashboard and the operator page take the printed accounts.
        for label, title in (("dashboard", "Perangkat"), ("operator page", "Hari ini")):
            found = re.search(label + r":\s+(\S+)\s+\(user (\w+), password (\S+)\)", text)
            assert found, text
            page_url, user, password = found.groups()
            assert_logs_in(page_url, user, password, title)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "its data stays in" in out


def test_demo_roster_ids_are_well_formed():
    from provisioning.demo import demo_roster
    from server.ids import nip_problem, nisn_problem

    rows = demo_roster()
    students = [r for r in rows if r["kind"] == "student"]
    staff = [r for r in rows if r["kind"] == "employee"]
    assert len(students) == 40 and len(staff) == 4
    assert not [r for r in students if nisn_problem(r["person_id"])]
    assert not [r for r in staff if nip_problem(r["person_id"])]
    assert len({r["card_uid"] for r in rows}) == len(rows)
    assert demo_roster() == rows  # deterministic


def test_ctrl_c_during_start_up_leaves_nothing_running(tmp_path):
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "provisioning.demo", "--dir",
                             str(tmp_path / "demo"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 20
    children = []
    while time.monotonic() < deadline and not children:  # the server is being started
        children = parent.children(recursive=True)
        time.sleep(0.05)
    assert children, "the demo started no process"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 0, out
    assert "its data stays in" in out
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
