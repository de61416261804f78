"""The dashboard's protections, with Flask's test client on both backends: no page without
an account, operators kept to their site, CSRF on every form, lockout and rate limit of
logins, session expiry and revocation, hashed passwords, the secret key file, headers, and
the JSON API untouched by all of it."""

from __future__ import annotations

import re
import stat
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.security import check_password_hash

from server import apikeys
from server.app import create_app
from server.schema import web_users
from server.web import PREFIX
from tests.server.helpers import enroll_device, make_site, make_tap
from tests.server.report_data import add_person, day_row, put_rows
from tests.server.web_helpers import PASSWORD, csrf_token, login, make_user

DAY = "2026-11-03"


@pytest.fixture
def two_sites(engine):
    """Two offices with one person each and a day of attendance; an operator of OPD1 and a
    diskominfo user."""
    make_site(engine, "OPD1", "Dinas Satu")
    make_site(engine, "OPD2", "Dinas Dua")
    add_person(engine, "P-OPD1", "Orang Satu", "employee", "OPD1", "Umum")
    add_person(engine, "P-OPD2", "Rahasia Dua", "employee", "OPD2", "Umum")
    put_rows(engine, [day_row("P-OPD1", datetime.fromisoformat(DAY).date(), "OPD1", "H"),
                      day_row("P-OPD2", datetime.fromisoformat(DAY).date(), "OPD2", "A")])
    make_user(engine, "op1", "operator", "OPD1")
    make_user(engine, "admin", "diskominfo")


def logged_in(client, username):
    reply = login(client, username)
    assert reply.status_code == 302, reply.get_data(as_text=True)
    return client


def web_rules(app):
    return [rule for rule in app.url_map.iter_rules()
            if not rule.rule.startswith("/api/v1/") and rule.endpoint != "web.static"]


def url_for_rule(rule):
    values = {"site": "OPD1", "day": DAY, "excuse_id": "ex-1"}
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule.rule)


# -- no page without an account ---------------------------------------------------------------
def test_every_page_needs_a_login(app, client, two_sites):
    rules = web_rules(app)
    assert {r.endpoint for r in rules} >= {"web.attendance", "web.fleet_page", "web.recap",
                                           "web.recap_download", "web.anomaly_list",
                                           "web.chart_page", "web.site_day", "web.logout",
                                           "web.excuse_list", "web.excuse_add",
                                           "web.excuse_withdraw"}
    token = csrf_token(client)  # a valid token of an anonymous session
    for rule in rules:
        url = url_for_rule(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "GET":
                reply = client.get(url, follow_redirects=True)
            else:
                reply = client.post(url, data={"csrf_token": token}, follow_redirects=True)
            page = reply.get_data(as_text=True)
            assert reply.request.path == f"{PREFIX}/login", (method, url)
            assert 'name="password"' in page and "Rahasia Dua" not in page, (method, url)


def test_static_files_are_public_and_local(client):
    for name in ("style.css", "app.js", "icon.svg"):
        assert client.get(f"{PREFIX}/static/{name}").status_code == 200


def test_no_asset_comes_from_elsewhere():
    root = Path(__file__).parent.parent.parent / "server" / "web"
    for path in [*root.glob("templates/*.html"), *root.glob("static/*")]:
        text = path.read_text(encoding="utf-8")
        for url in re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"')]*", text):
            assert url == "http://www.w3.org/2000/svg", (path.name, url)
        assert "@import" not in text and "@font-face" not in text, path.name


# -- operators see their own site only --------------------------------------------------------
OTHER_SITE = [f"/attendance/OPD2/{DAY}", f"/attendance/OPD2/{DAY}/download?format=csv",
              f"/attendance/OPD2/{DAY}/download?format=xlsx", "/recap?month=2026-11&site=OPD2",
              "/recap/download?month=2026-11&site=OPD2&format=csv",
              "/recap/download?month=2026-11&site=OPD2&format=xlsx",
              "/charts?month=2026-11&site=OPD2", "/anomalies?site=OPD2", "/fleet?site=OPD2",
              f"/attendance/NOPE/{DAY}", "/recap?site=NOPE"]


@pytest.mark.parametrize("path", OTHER_SITE)
def test_an_operator_cannot_open_another_site(client, two_sites, path):
    logged_in(client, "op1")
    reply = client.get(PREFIX + path)
    assert reply.status_code == 404
    assert "Rahasia Dua" not in reply.get_data(as_text=True)


def test_an_operators_lists_and_downloads_hold_only_the_own_site(client, engine, two_sites):
    enroll_device(client, engine, "OPD1", "pi-1")
    other = enroll_device(client, engine, "OPD2", "pi-2")
    logged_in(client, "op1")
    for path in ("/attendance?date=" + DAY, "/recap?month=2026-11", "/charts?month=2026-11",
                 "/anomalies", "/fleet"):
        page = client.get(PREFIX + path).get_data(as_text=True)
        assert "OPD2" not in page and "Rahasia Dua" not in page, path
    assert other.device_id not in client.get(PREFIX + "/fleet").get_data(as_text=True)
    recap = client.get(PREFIX + "/recap/download?month=2026-11&format=csv")
    assert recap.status_code == 200
    text = recap.get_data().decode("utf-8-sig")
    assert "P-OPD1" in text and "P-OPD2" not in text
    assert client.get(f"{PREFIX}/attendance/OPD1/{DAY}").status_code == 200


def test_diskominfo_sees_every_site(client, two_sites):
    logged_in(client, "admin")
    page = client.get(f"{PREFIX}/attendance?date={DAY}").get_data(as_text=True)
    assert "OPD1" in page and "OPD2" in page
    assert "Rahasia Dua" in client.get(f"{PREFIX}/attendance/OPD2/{DAY}").get_data(as_text=True)
    assert client.get(f"{PREFIX}/attendance/NOPE/{DAY}").status_code == 404


# -- CSRF -------------------------------------------------------------------------------------
def post_routes(app):
    return [url_for_rule(r) for r in web_rules(app) if "POST" in r.methods]


def test_every_form_post_needs_the_csrf_token(app, client, engine, two_sites):
    assert sorted(post_routes(app)) == [f"{PREFIX}/account", f"{PREFIX}/excuses",
                                        f"{PREFIX}/excuses/ex-1/withdraw", f"{PREFIX}/login",
                                        f"{PREFIX}/logout"]
    logged_in(client, "op1")
    before = engine.connect().execute(sa.select(web_users).order_by(web_users.c.id)).all()
    for url in post_routes(app):
        for token in (None, "forged", csrf_token(client, PREFIX + "/account") + "x"):
            data = {"username": "op1", "password": PASSWORD, "current": PASSWORD,
                    "new": "another-password-1", "repeat": "another-password-1",
                    "site": "OPD1", "person_id": "P1", "kind": "sakit",
                    "date_from": DAY, "date_to": DAY}
            if token is not None:
                data["csrf_token"] = token
            reply = client.post(url, data=data)
            assert reply.status_code == 400, (url, token)
            assert "Formulir sudah kedaluwarsa" in reply.get_data(as_text=True)
    with engine.connect() as conn:
        assert conn.execute(sa.select(web_users).order_by(web_users.c.id)).all() == before
        assert conn.execute(sa.text("SELECT count(*) FROM excuses")).scalar() == 0
    # Still logged in (the logout without a token did nothing); the password is the old one.
    assert client.get(PREFIX + "/fleet").status_code == 200


def test_a_token_from_another_session_is_refused(app, client, two_sites):
    stranger = app.test_client()
    token = csrf_token(stranger)
    reply = client.post(PREFIX + "/login", data={"username": "op1", "password": PASSWORD,
                                                 "csrf_token": token})
    assert reply.status_code == 400


# -- lockout and rate limit -------------------------------------------------------------------
def test_lockout_after_repeated_failures_is_kept_in_the_database(app, client, engine,
                                                                  two_sites, database_url):
    for attempt in range(4):
        page = login(client, "op1", "wrong password").get_data(as_text=True)
        assert "Nama pengguna atau kata sandi salah" in page
    page = login(client, "op1", "wrong password").get_data(as_text=True)
    assert "dikunci sementara" in page and "15 menit" in page
    # Now even the right password is refused.
    reply = login(client, "op1")
    assert reply.status_code == 200 and "dikunci sementara" in reply.get_data(as_text=True)
    with engine.connect() as conn:
        row = conn.execute(sa.select(web_users).where(web_users.c.username == "op1")).one()
    assert row.locked_until > datetime.now(timezone.utc) + timedelta(minutes=14)
    # A restarted server (a new app) remembers the lock.
    again = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40})
    try:
        assert "dikunci sementara" in login(again.test_client(), "op1").get_data(as_text=True)
    finally:
        again.extensions["attendance"].engine.dispose()
    # Once the lock has run out, the right password works and the count starts again.
    with engine.begin() as conn:
        conn.execute(web_users.update().where(web_users.c.username == "op1").values(
            locked_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    assert login(client, "op1").status_code == 302
    with engine.connect() as conn:
        row = conn.execute(sa.select(web_users).where(web_users.c.username == "op1")).one()
    assert (row.failed_logins, row.locked_until) == (0, None)


def test_unknown_and_disabled_accounts_get_the_same_answer(client, engine, two_sites):
    from server.accounts import set_disabled

    with engine.begin() as conn:
        set_disabled(conn, "admin", True)
    texts = {login(client, name, password).get_data(as_text=True).count("kata sandi salah")
             for name, password in (("nobody", PASSWORD), ("admin", PASSWORD),
                                    ("op1", "wrong password"))}
    assert texts == {1}


def test_login_rate_limit_per_address_answers_429(database_url, two_sites):
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40,
                      "LOGIN_RATE_LIMIT": "3 per minute", "LOGIN_MAX_FAILURES": 100})
    try:
        client = app.test_client()
        for _ in range(3):
            assert login(client, "admin", "wrong password").status_code == 200
        reply = login(client, "admin")  # even the right password, from this address
        assert reply.status_code == 429
        assert "Terlalu banyak percobaan" in reply.get_data(as_text=True)
        assert int(reply.headers["Retry-After"]) > 0
        # Another address is not limited.
        other = app.test_client()
        token = csrf_token(other)
        assert other.post(PREFIX + "/login", data={
            "username": "admin", "password": PASSWORD, "csrf_token": token},
            environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 302
    finally:
        app.extensions["attendance"].engine.dispose()


def test_successful_logins_do_not_count_against_the_address(database_url, two_sites):
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40,
                      "LOGIN_RATE_LIMIT": "2 per minute"})
    try:
        for _ in range(4):  # an office behind one address, everyone logging in at 07:30
            assert login(app.test_client(), "admin").status_code == 302
    finally:
        app.extensions["attendance"].engine.dispose()


# -- sessions ---------------------------------------------------------------------------------
def test_session_expires_after_inactivity(client, two_sites):
    logged_in(client, "admin")
    assert client.get(PREFIX + "/fleet").status_code == 200
    with client.session_transaction(PREFIX + "/") as session:
        seen = session["seen"]
        assert time.time() - seen < 5  # each request keeps the session alive
        session["seen"] = seen - 31 * 60
    reply = client.get(PREFIX + "/fleet", follow_redirects=True)
    assert reply.request.path == PREFIX + "/login"
    assert "Sesi Anda berakhir" in reply.get_data(as_text=True)
    assert client.get(PREFIX + "/fleet").status_code == 302


def test_session_timeout_is_configurable(database_url, two_sites):
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40,
                      "SESSION_TIMEOUT_MINUTES": 5})
    try:
        client = app.test_client()
        logged_in(client, "admin")
        with client.session_transaction(PREFIX + "/") as session:
            session["seen"] -= 4 * 60
        assert client.get(PREFIX + "/fleet").status_code == 200
        with client.session_transaction(PREFIX + "/") as session:
            session["seen"] -= 6 * 60
        assert client.get(PREFIX + "/fleet").status_code == 302
        assert app.permanent_session_lifetime == timedelta(minutes=5)
    finally:
        app.extensions["attendance"].engine.dispose()


def test_logout_ends_the_session_even_for_a_copied_cookie(app, client, two_sites):
    logged_in(client, "admin")
    copy = app.test_client()
    cookie = client.get_cookie("absensi_session", path=PREFIX)
    copy.set_cookie("absensi_session", cookie.value, path=PREFIX)
    assert copy.get(PREFIX + "/fleet").status_code == 200
    token = csrf_token(client, PREFIX + "/fleet")
    assert client.post(PREFIX + "/logout", data={"csrf_token": token}).status_code == 302
    assert client.get(PREFIX + "/fleet").status_code == 302
    assert copy.get(PREFIX + "/fleet").status_code == 302


def test_disabling_or_a_new_password_ends_sessions(client, engine, two_sites):
    from server.accounts import set_disabled, set_password

    logged_in(client, "admin")
    with engine.begin() as conn:
        set_password(conn, "admin", "a-brand-new-password")
    assert client.get(PREFIX + "/fleet").status_code == 302
    reply = login(client, "admin", "a-brand-new-password")
    assert reply.status_code == 302
    with engine.begin() as conn:
        set_disabled(conn, "admin", True)
    assert client.get(PREFIX + "/fleet").status_code == 302


def test_changing_the_own_password(client, engine, two_sites):
    logged_in(client, "op1")
    token = csrf_token(client, PREFIX + "/account")
    wrong = client.post(PREFIX + "/account", data={"csrf_token": token, "current": "nope",
                                                   "new": "x" * 12, "repeat": "x" * 12})
    assert wrong.status_code == 400 and "salah" in wrong.get_data(as_text=True)
    short = client.post(PREFIX + "/account", data={"csrf_token": token, "current": PASSWORD,
                                                   "new": "short", "repeat": "short"})
    assert short.status_code == 400
    done = client.post(PREFIX + "/account", data={"csrf_token": token, "current": PASSWORD,
                                                  "new": "operator-baru-2026",
                                                  "repeat": "operator-baru-2026"},
                       follow_redirects=True)
    assert done.status_code == 200 and "sudah diganti" in done.get_data(as_text=True)
    assert client.get(PREFIX + "/fleet").status_code == 200  # this session goes on
    assert login(client.application.test_client(), "op1").status_code == 200  # old: refused
    assert login(client.application.test_client(), "op1",
                 "operator-baru-2026").status_code == 302


def test_login_redirects_only_within_the_dashboard(app, two_sites):
    for target, expected in [("https://evil.example/x", f"{PREFIX}/"),
                             ("//evil.example/x", f"{PREFIX}/"),
                             ("/api/v1/sites", f"{PREFIX}/"),
                             (f"{PREFIX}/fleet?site=OPD1", f"{PREFIX}/fleet?site=OPD1")]:
        reply = login(app.test_client(), "admin", next=target)
        assert reply.headers["Location"] == expected, target


def test_passwords_are_stored_hashed(engine, two_sites):
    with engine.connect() as conn:
        stored = conn.execute(sa.select(web_users.c.password_hash)).scalars().all()
    assert len(stored) == 2
    for value in stored:
        assert PASSWORD not in value and value.startswith("scrypt:")
        assert check_password_hash(value, PASSWORD)
    assert len(set(stored)) == 2  # salted: the same password, two different hashes


# -- the secret key ---------------------------------------------------------------------------
def test_secret_key_file_is_made_once_with_mode_0600(tmp_path, caplog):
    url = f"sqlite:///{tmp_path}/db/server.db"
    app = create_app({"DATABASE_URL": url, "MIGRATE_ON_START": True})
    try:
        assert app.test_client().get(PREFIX + "/login").status_code == 200
        key_file = tmp_path / "db" / "secret_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert len(key) == 64 and app.secret_key == key
        assert key not in caplog.text
    finally:
        app.extensions["attendance"].engine.dispose()
    second = create_app({"DATABASE_URL": url})
    try:
        second.test_client().get(PREFIX + "/login")
        assert second.secret_key == key  # sessions survive a restart
    finally:
        second.extensions["attendance"].engine.dispose()


def test_secret_key_from_the_environment_or_a_named_file(tmp_path):
    from server.config import load_settings
    from server.errors import ConfigError

    settings = load_settings(None, environ={
        "ATTENDANCE_SECRET_KEY": "e" * 40, "ATTENDANCE_WEB_SECRET_KEY_FILE": str(tmp_path / "k"),
        "ATTENDANCE_SERVER_CONFIG": "", "DATABASE_URL": f"sqlite:///{tmp_path}/s.db"})
    config = settings.flask_config()
    assert config["SECRET_KEY"] == "e" * 40 and config["SECRET_KEY_FILE"] == str(tmp_path / "k")
    assert "e" * 40 not in repr(settings)
    with pytest.raises(ConfigError, match="ATTENDANCE_SECRET_KEY"):
        load_settings(None, environ={"ATTENDANCE_SECRET_KEY": "short",
                                     "ATTENDANCE_SERVER_CONFIG": ""})
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "MIGRATE_ON_START": True,
                      "SECRET_KEY_FILE": str(tmp_path / "keys" / "dashboard.key")})
    try:
        app.test_client().get(PREFIX + "/login")
        assert (tmp_path / "keys" / "dashboard.key").exists()
        assert not (tmp_path / "secret_key").exists()
    finally:
        app.extensions["attendance"].engine.dispose()


def test_api_only_servers_never_need_the_key(tmp_path):
    """The key is made at the first dashboard request, not for the API."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "MIGRATE_ON_START": True})
    try:
        assert app.test_client().get("/api/v1/health").status_code == 200
        assert not (tmp_path / "secret_key").exists()
    finally:
        app.extensions["attendance"].engine.dispose()


# -- headers and errors -----------------------------------------------------------------------
def test_pages_carry_security_headers(client, two_sites):
    logged_in(client, "admin")
    for path in ("/login", "/fleet", "/nothing-here"):
        reply = client.get(PREFIX + path)
        csp = reply.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(PREFIX + "/fleet").headers["Cache-Control"] == "no-store"
    cookie = client.get_cookie("absensi_session", path=PREFIX)
    assert cookie.http_only and cookie.same_site == "Lax" and cookie.path == PREFIX


def test_dashboard_errors_are_pages_and_api_errors_stay_json(client, two_sites):
    page = client.get(PREFIX + "/nothing-here")
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert client.get("/api/v1/nothing-here").is_json
    assert client.get("/elsewhere").is_json
    logged_in(client, "admin")
    bad = client.get(PREFIX + "/attendance?date=2026-02-30")
    assert bad.status_code == 400 and "2026-02-30" in bad.get_data(as_text=True)
    assert client.get(PREFIX + "/recap?month=2026-13").status_code == 400
    assert client.get(PREFIX + "/anomalies?kind=<script>").status_code == 400


def test_secure_cookie_when_configured_or_over_https(database_url, two_sites):
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40})
    try:
        reply = app.test_client().get(PREFIX + "/login", base_url="https://absensi.example")
        assert "Secure" in reply.headers["Set-Cookie"]
        reply = app.test_client().get(PREFIX + "/login")
        assert "Secure" not in reply.headers["Set-Cookie"]
    finally:
        app.extensions["attendance"].engine.dispose()
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "k" * 40,
                      "SESSION_COOKIE_SECURE": True, "PROXY_COUNT": 1})
    try:
        assert "Secure" in app.test_client().get(PREFIX + "/login").headers["Set-Cookie"]
    finally:
        app.extensions["attendance"].engine.dispose()


# -- the JSON API keeps working with bearer tokens and no CSRF token --------------------------
def test_the_api_needs_no_csrf_token_and_sets_no_cookie(client, engine, two_sites):
    device = enroll_device(client, engine, "OPD1")
    reply = client.post("/api/v1/taps", json={"taps": [make_tap(1)]}, headers=device.headers)
    assert reply.status_code == 200 and reply.json["results"][0]["status"] == "accepted"
    assert "Set-Cookie" not in reply.headers
    beat = {"boot_id": "b", "mono_ns": 1, "wall_time": "2026-11-23T07:00:00+07:00"}
    assert client.post("/api/v1/heartbeat", json=beat, headers=device.headers).status_code == 200
    with engine.begin() as conn:
        key = apikeys.create_key(conn, "SIMPEG", "diskominfo").token
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/sites", headers=headers).status_code == 200
    excuse = {"excuses": [{"excuse_id": "e-1", "person_id": "P-OPD1", "kind": "izin",
                           "date_from": DAY, "date_to": DAY}]}
    reply = client.post("/api/v1/excuses", json=excuse, headers=headers)
    assert reply.status_code == 200 and "Set-Cookie" not in reply.headers
    # A dashboard session cookie opens nothing in the API.
    logged_in(client, "admin")
    assert client.get("/api/v1/sites").status_code == 401


def test_without_a_usable_key_the_pages_answer_503_and_the_api_goes_on(tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "MIGRATE_ON_START": True,
                      "SECRET_KEY_FILE": str(blocker / "secret_key")})
    try:
        client = app.test_client()
        reply = client.get(PREFIX + "/login")
        assert reply.status_code == 503 and reply.mimetype == "text/html"
        assert "Set-Cookie" not in reply.headers
        assert "dashboard unavailable" in caplog.text and "secret_key_file" in caplog.text
        assert client.get("/api/v1/health").status_code == 200
    finally:
        app.extensions["attendance"].engine.dispose()
