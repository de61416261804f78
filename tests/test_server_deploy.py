"""The shipped production files of the central server (provisioning/server/) are valid and do
what docs/SERVER.md says: gunicorn's settings load, the systemd units and the logrotate file pass
their tools' checks, and nginx + gunicorn with the shipped settings serve the real app over TLS
(health not logged, no query strings in the logs, HTTP redirected, the body limit, rotation).
"""

from __future__ import annotations

import os
import pwd
import grp
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.sync_env import CentralServer, free_port
from tests.syspart import need

ROOT = Path(__file__).resolve().parent.parent
PROV = ROOT / "provisioning" / "server"
VENV_BIN = Path(sys.executable).parent
GUNICORN_CONF = PROV / "gunicorn.conf.py"
UNITS = ["attendance-server.service", "attendance-backup.service", "attendance-backup.timer"]


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    need(found is not None, f"{name} (apt install {'systemd' if 'systemd' in name else name})")
    assert found
    return found


def gunicorn_exe() -> str:
    return shutil.which("gunicorn", path=str(VENV_BIN)) or "gunicorn"


# -- gunicorn ------------------------------------------------------------------------------
def test_gunicorn_config_checks_with_the_app(tmp_path: Path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/server.db",
           "ATTENDANCE_GUNICORN_ACCESS_LOG": str(tmp_path / "access.log")}
    CentralServer(tmp_path, env["DATABASE_URL"]).cli("init-db")
    check = subprocess.run([gunicorn_exe(), "--check-config", "-c", str(GUNICORN_CONF),
                            "server.app:create_app()"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr
    printed = subprocess.run([gunicorn_exe(), "--print-config", "-c", str(GUNICORN_CONF)],
                             env=env, capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    settings = dict(re.findall(r"^(\w+)\s+= (.*)$", printed.stdout, re.M))
    assert settings["bind"] == "['127.0.0.1:8080']"
    assert settings["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert settings["wsgi_app"] == "server.app:create_app()"
    assert settings["timeout"] == "120"
    assert settings["errorlog"] == "-"
    assert "%(U)s" in settings["access_log_format"]
    # Neither the query string nor the whole request line (which has it) nor the referrer.
    for atom in ("%(q)s", "%(r)s", "%(f)s", "%({referer}i)s"):
        assert atom not in settings["access_log_format"]


def _conf(**env: str) -> dict:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return runpy.run_path(str(GUNICORN_CONF))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("cpus, workers", [(None, 3), (1, 3), (2, 5), (4, 9), (16, 9)])
def test_workers_follow_the_cpus(cpus, workers):
    assert _conf()["default_workers"](cpus) == workers


def test_settings_from_the_environment():
    conf = _conf(ATTENDANCE_GUNICORN_WORKERS="2", ATTENDANCE_GUNICORN_BIND="127.0.0.1:9090",
                 ATTENDANCE_GUNICORN_TIMEOUT="300", ATTENDANCE_GUNICORN_ACCESS_LOG="-")
    assert (conf["workers"], conf["bind"], conf["timeout"], conf["accesslog"]) == (
        2, ["127.0.0.1:9090"], 300, "-")
    assert _conf(ATTENDANCE_GUNICORN_WORKERS="")["workers"] == min(2 * (os.cpu_count() or 1) + 1, 9)


@pytest.mark.parametrize("name, value", [("ATTENDANCE_GUNICORN_WORKERS", "four"),
                                         ("ATTENDANCE_GUNICORN_WORKERS", "0"),
                                         ("ATTENDANCE_GUNICORN_TIMEOUT", "5")])
def test_bad_settings_name_the_variable(name, value):
    with pytest.raises(SystemExit) as exc:
        _conf(**{name: value})
    assert name in str(exc.value) and repr(value) in str(exc.value)


# -- systemd -------------------------------------------------------------------------------
def render_unit(name: str, target: Path, env_file: Path) -> Path:
    """The shipped unit with this checkout's paths (the venv instead of /opt/…)."""
    text = (PROV / name).read_text()
    text = (text.replace("/opt/attendance-server/venv/bin/", f"{VENV_BIN}/")
            .replace("/etc/attendance/gunicorn.conf.py", str(GUNICORN_CONF))
            .replace("/usr/local/sbin/attendance-backup", str(PROV / "attendance-backup"))
            .replace("/etc/attendance/server.env", str(env_file)))
    out = target / name
    out.write_text(text)
    return out


def test_units_verify_without_warnings(tmp_path: Path):
    analyze = tool("systemd-analyze")
    env_file = tmp_path / "server.env"
    env_file.write_text(f"DATABASE_URL=sqlite:///{tmp_path}/server.db\n")
    env_file.chmod(0o600)
    paths = [render_unit(name, tmp_path, env_file) for name in UNITS]
    for unit in paths:  # every command is a real file here, which verify checks
        assert not re.search(r"^Exec\w*=/(opt|usr/local)/", unit.read_text(), re.M)
    result = subprocess.run([analyze, "verify", *map(str, paths)], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    ours = [line for line in result.stderr.splitlines()
            if any(name in line for name in UNITS) or str(tmp_path) in line]
    assert result.returncode == 0 and ours == [], result.stderr


def test_verify_would_catch_a_bad_directive(tmp_path: Path):
    """The check above can fail: an unknown key is reported (as a warning, exit status 0)."""
    analyze = tool("systemd-analyze")
    env_file = tmp_path / "server.env"
    env_file.write_text("")
    unit = render_unit("attendance-server.service", tmp_path, env_file)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_units_say_what_the_guide_says():
    server = (PROV / "attendance-server.service").read_text()
    lines = set(server.splitlines())
    for line in ("User=attendance-server", "EnvironmentFile=/etc/attendance/server.env",
                 "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ExecStartPre=/opt/attendance-server/venv/bin/attendance-server migrate",
                 "Type=notify"):
        assert line in lines, line
    assert re.search(r"^ExecStart=\S+/gunicorn --config /etc/attendance/gunicorn.conf.py ",
                     server, re.M)
    timer = (PROV / "attendance-backup.timer").read_text().splitlines()
    assert "OnCalendar=*-*-* 01:30:00" in timer and "Persistent=true" in timer
    backup = (PROV / "attendance-backup.service").read_text().splitlines()
    assert "Type=oneshot" in backup and "ExecStart=/usr/local/sbin/attendance-backup" in backup


# -- TLS and nginx -------------------------------------------------------------------------
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 (openssl; the venv has no cryptography)."""
    openssl = tool("openssl")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key_path), "-out", str(cert_path)],
                   check=True, capture_output=True, timeout=60)
    return cert_path, key_path


def render_nginx(tmp_path: Path, *, http_port: int, https_port: int, upstream_port: int) -> Path:
    """A whole nginx.conf around the shipped site, with test ports, certificate and paths."""
    cert, key = self_signed(tmp_path)
    logs = tmp_path / "nginx-logs"
    logs.mkdir(exist_ok=True)
    site = (PROV / "nginx-attendance-server.conf").read_text()
    site = (site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
            .replace("listen [::]:80;", "")
            .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
            .replace("listen [::]:443 ssl http2;", "")
            .replace("server 127.0.0.1:8080", f"server 127.0.0.1:{upstream_port}")
            .replace("/etc/letsencrypt/live/absensi.example.go.id/fullchain.pem", str(cert))
            .replace("/etc/letsencrypt/live/absensi.example.go.id/privkey.pem", str(key))
            .replace("/var/log/nginx/", f"{logs}/")
            .replace("/var/www/html", str(tmp_path)))
    directives = "\n".join(line.split("#", 1)[0] for line in site.splitlines())
    assert "/etc/" not in directives and "/var/" not in directives
    (tmp_path / "site.conf").write_text(site)
    user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};" \
        if os.geteuid() == 0 else ""
    temp = tmp_path / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
{user}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {logs}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    return conf


def test_nginx_accepts_the_site(tmp_path: Path):
    nginx = tool("nginx")
    conf = render_nginx(tmp_path, http_port=free_port(), https_port=free_port(),
                        upstream_port=free_port())
    result = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path),
                             "-e", str(tmp_path / "nginx-logs" / "error.log")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def largest_batch() -> bytes:
    """1000 taps (the contract's most) with every field at its longest, as JSON."""
    import json

    taps = [{"event_id": "e" * 64, "seq": 2**53 - 1000 + i, "card_uid": "F" * 20,
             "tapped_at": "2026-11-23T07:00:00.000+07:00", "boot_id": "b" * 64,
             "mono_ns": 2**62, "clock_synced": False, "reader": "r" * 64,
             "verdict": "duplicate"} for i in range(1000)]
    clock = {"boot_id": "b" * 64, "mono_ns": 2**62, "wall_time": "2026-11-23T07:00:00.000+07:00",
             "clock_synced": False}
    return json.dumps({"clock": clock, "taps": taps}).encode()


def test_site_body_limit_fits_the_largest_batch():
    from server.config import ServerSettings

    site = (PROV / "nginx-attendance-server.conf").read_text()
    limit = int(re.search(r"client_max_body_size (\d+)m;", site).group(1)) * 2**20
    settings = ServerSettings()
    assert settings.api.max_batch == 1000
    assert limit == settings.api.max_content_length
    assert len(largest_batch()) < limit
    assert "access_log off;" in site.split("location = /api/v1/health", 1)[1].split("}", 1)[0]


# -- the whole stack -----------------------------------------------------------------------
def wait_for(url: str, proc: subprocess.Popen, what: str, log: Path, **kwargs) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=2, **kwargs)
            return
        except requests.RequestException:
            pass
        assert proc.poll() is None, f"{what} exited ({proc.returncode}): {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} did not come up"
        time.sleep(0.1)


def wait_log(path: Path, needle: str) -> None:
    deadline = time.monotonic() + 15
    while needle not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{needle!r} not in {path}"
        time.sleep(0.05)


def render_logrotate(tmp_path: Path, log_dir: Path, pid_file: Path) -> Path:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    text = (PROV / "attendance-server.logrotate").read_text()
    assert "attendance-server attendance-server" in text
    text = (text.replace("/var/log/attendance-server/", f"{log_dir}/")
            .replace("attendance-server attendance-server", f"{user} {group}")
            .replace("systemctl kill --kill-whom=main --signal=USR1 attendance-server.service",
                     f"kill -USR1 $(cat {pid_file})"))
    conf = tmp_path / "logrotate.conf"
    conf.write_text(text)
    conf.chmod(0o644)
    return conf


def test_logrotate_config_parses(tmp_path: Path):
    logrotate = tool("logrotate")
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "access.log").write_text("line\n")
    conf = render_logrotate(tmp_path, log_dir, tmp_path / "gunicorn.pid")
    result = subprocess.run([logrotate, "-d", "-s", str(tmp_path / "state"), str(conf)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    assert f"considering log {log_dir}/*.log" in result.stderr or \
        f"considering log {log_dir}/access.log" in result.stderr, result.stderr


@pytest.mark.system
def test_nginx_gunicorn_stack(tmp_path: Path):
    """nginx (shipped site) -> gunicorn (shipped settings) -> the app, over real TLS."""
    nginx = tool("nginx")
    logrotate = tool("logrotate")
    central = CentralServer(tmp_path / "central")  # not "server": cwd is on sys.path
    central.setup_site()
    upstream, http_port, https_port = free_port(), free_port(), free_port()
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    access = log_dir / "access.log"
    pid_file = tmp_path / "gunicorn.pid"
    env = {**central.env, "ATTENDANCE_GUNICORN_BIND": f"127.0.0.1:{upstream}",
           "ATTENDANCE_GUNICORN_WORKERS": "2", "ATTENDANCE_GUNICORN_ACCESS_LOG": str(access),
           "ATTENDANCE_WEB_PROXY_COUNT": "1"}
    errors = (tmp_path / "gunicorn.err").open("wb")
    gunicorn = subprocess.Popen([gunicorn_exe(), "-c", str(GUNICORN_CONF), "--pid",
                                 str(pid_file)], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=errors)
    errors.close()
    conf = render_nginx(tmp_path, http_port=http_port, https_port=https_port,
                        upstream_port=upstream)
    web = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path), "-e",
                            str(tmp_path / "nginx-logs" / "error.log"), "-g", "daemon off;"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{https_port}"
    cert = str(tmp_path / "cert.pem")
    try:
        wait_for(f"http://127.0.0.1:{upstream}/api/v1/health", gunicorn, "gunicorn",
                 tmp_path / "gunicorn.err")
        wait_for(base + "/api/v1/health", web, "nginx", tmp_path / "nginx-logs" / "error.log",
                 verify=cert)

        health = requests.get(base + "/api/v1/health", verify=cert, timeout=10)
        assert health.status_code == 200
        assert (health.json()["status"], health.json()["database"]) == ("ok", "ok")
        assert health.headers["Strict-Transport-Security"].startswith("max-age=")

        plain = requests.get(f"http://127.0.0.1:{http_port}/dashboard/?next=x",
                             allow_redirects=False, timeout=10)
        assert plain.status_code == 301
        assert plain.headers["Location"] == f"https://127.0.0.1/dashboard/?next=x"

        secret = "s3cr3t-in-the-query"
        doc = requests.get(base + f"/api/v1/openapi.json?key={secret}", verify=cert, timeout=10)
        assert doc.status_code == 200

        # An edge enrols through the proxy; a body over the server's limit but within
        # nginx's reaches the app, which answers its JSON 413.
        enrolled = requests.post(base + "/api/v1/devices/enroll", verify=cert, timeout=10,
                                 json={"claim_code": central.claim_code(),
                                       "hardware_id": "pi-behind-nginx"})
        assert enrolled.status_code in (200, 201), enrolled.text
        headers = {"Content-Type": "application/json",
                   "Authorization": f"Bearer {enrolled.json()['token']}"}
        # The largest batch the contract allows passes the proxy (and is refused by the
        # app only for its made-up content); one over the limit gets nginx's JSON 413.
        largest = requests.post(base + "/api/v1/taps", data=largest_batch(), verify=cert,
                                timeout=60, headers=headers)
        assert largest.status_code in (200, 400), largest.text
        assert largest.headers["Content-Type"].startswith("application/json")
        over = requests.post(base + "/api/v1/taps", data=b" " * (4 * 2**20 + 1), verify=cert,
                             timeout=30, headers=headers)
        assert over.status_code == 413, over.text
        assert over.json()["error"]["code"] == "too_large"

        # The dashboard sees the HTTPS scheme through the proxy: its cookie is Secure.
        login = requests.get(base + "/dashboard/login", verify=cert, timeout=10)
        assert login.status_code == 200 and "Secure" in login.headers["Set-Cookie"]
        direct = requests.get(f"http://127.0.0.1:{upstream}/dashboard/login", timeout=10)
        assert direct.status_code == 200 and "Secure" not in direct.headers["Set-Cookie"]

        # Both logs are written after the response: wait for the last request's lines.
        wait_log(access, "/dashboard/login")
        wait_log(tmp_path / "nginx-logs" / "attendance-server.access.log", "/dashboard/login")
        nginx_log = (tmp_path / "nginx-logs" / "attendance-server.access.log").read_text()
        gunicorn_log = access.read_text()
        for log in (nginx_log, gunicorn_log):
            assert "/api/v1/openapi.json" in log and "/api/v1/taps" in log
            assert "/api/v1/devices/enroll" in log
            assert secret not in log and "?" not in log
            assert "/api/v1/health" not in log
        assert re.search(r'^127\.0\.0\.1 127\.0\.0\.1 \[.*\] "GET /api/v1/openapi.json HTTP/1\.[01]" '
                         r'200 \d+ \d+ms "python-requests', gunicorn_log, re.M), gunicorn_log

        # A failing health probe IS logged (gunicorn side): a schema behind the code.
        import sqlite3

        db = sqlite3.connect(central.database_url.removeprefix("sqlite:///"))
        with db:
            (head,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
            db.execute("UPDATE alembic_version SET version_num = '0001'")
        bad = requests.get(base + "/api/v1/health", verify=cert, timeout=10)
        with db:
            db.execute("UPDATE alembic_version SET version_num = ?", (head,))
        db.close()
        assert bad.status_code == 503 and bad.json()["status"] == "unavailable"
        wait_log(access, '"GET /api/v1/health HTTP/1.1" 503')  # nginx speaks 1.1 upstream

        # Rotation: logrotate renames the file, gunicorn reopens on USR1, no line lost.
        rotate_conf = render_logrotate(tmp_path, log_dir, pid_file)
        before = access.read_text()
        result = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "state"),
                                 str(rotate_conf)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        rotated = [p for p in log_dir.iterdir() if p.name.startswith("access.log-")]
        assert len(rotated) == 1 and rotated[0].read_text() == before
        assert oct(access.stat().st_mode & 0o777) == "0o640"
        deadline = time.monotonic() + 10
        while True:
            requests.get(base + "/api/v1/openapi.json", verify=cert, timeout=10)
            if "/api/v1/openapi.json" in access.read_text():
                break
            assert time.monotonic() < deadline, "gunicorn did not reopen its access log"
            time.sleep(0.2)

        # gunicorn down: the API's JSON 503 from nginx, with Retry-After.
        gunicorn.terminate()
        gunicorn.wait(30)
        down = requests.get(base + "/api/v1/health", verify=cert, timeout=10)
        assert down.status_code == 503 and down.headers["Retry-After"] == "30"
        assert down.json()["error"]["code"] == "unavailable"
    finally:
        for proc in (web, gunicorn):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (web, gunicorn):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_guide_names_every_shipped_file_and_script():
    guide = (ROOT / "docs" / "SERVER.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for path in sorted(PROV.iterdir()):
        if path.name != "__pycache__":
            assert f"`{path.name}" in guide, f"docs/SERVER.md does not name {path.name}"
    for script in ("attendance-backup", "attendance-restore"):
        assert os.access(PROV / script, os.X_OK), f"{script} is not executable"
        assert f"`{script} " in readme, f"README.md's command table lacks {script}"
