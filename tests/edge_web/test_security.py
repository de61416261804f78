"""The operator's page keeps strangers out: login on every route, CSRF, lockout, limits."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from edge import operators
from edge.outbox import open_database
from edge.web import create_app
from tests.edge_web.conftest import PASSWORD, csrf_token, login, make_config

PUBLIC = {"static", "auth.login", "i18n.switch"}
URL_VALUES = {"code": "en", "filename": "style.css",
              "excuse_id": "00000000-0000-4000-8000-000000000000"}


def routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def url_for_rule(rule) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = path.replace(f"<{arg}>", URL_VALUES[arg]).replace(
            f"<path:{arg}>", URL_VALUES[arg])
    return path


def snapshot(database: Path) -> dict[str, list]:
    conn = sqlite3.connect(database)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}
    finally:
        conn.close()


def test_every_route_but_login_static_and_language_needs_a_login(app, client):
    token = csrf_token(client)  # a valid token, so that POSTs reach the login guard
    checked = []
    for rule, method in routes(app):
        if rule.endpoint in PUBLIC:
            continue
        url = url_for_rule(rule)
        reply = client.open(url, method=method, headers={"X-CSRFToken": token},
                            json={} if rule.rule.startswith("/api/") else None,
                            data=None if rule.rule.startswith("/api/") else {"csrf_token": token})
        if rule.rule.startswith("/api/"):
            assert reply.status_code == 401, (method, url)
            assert reply.is_json and reply.json["error"]["code"] == 401
        else:
            assert reply.status_code == 302, (method, url, reply.status_code)
            assert reply.location.startswith("/login"), (method, url)
        checked.append((method, url))
    # The app's main pages are all among them (a new route cannot slip past this test).
    assert {("GET", "/"), ("GET", "/roster"), ("GET", "/excuses"), ("POST", "/excuses"),
            ("GET", "/cards"), ("POST", "/cards/lost"), ("POST", "/cards/enrol"),
            ("GET", "/export/day"), ("GET", "/export/month"), ("GET", "/api/today"),
            ("POST", "/api/enrolment"), ("POST", "/logout"), ("GET", "/account")} <= set(checked)


def test_public_routes_are_reachable(client):
    assert client.get("/login").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    reply = client.get("/lang/en?next=/roster")
    assert reply.status_code == 302 and reply.location == "/roster"
    assert client.get("/lang/en?next=//evil.example/x").location == "/"


def test_post_without_csrf_token_is_refused_and_changes_nothing(app, logged_in, database):
    before = snapshot(database)
    for rule, method in routes(app):
        if method != "POST":
            continue
        url = url_for_rule(rule)
        if rule.rule.startswith("/api/"):
            reply = logged_in.post(url, json={"person_id": "0051234567"})
        else:
            reply = logged_in.post(url, data={"person_id": "0051234567", "kind": "sakit",
                                              "date_from": "2026-01-05", "date_to": "2026-01-05",
                                              "card_uid": "04A1B2C3D4E5F6", "username": "guru",
                                              "password": PASSWORD,
                                              "old_password": PASSWORD,
                                              "new_password": "another-password",
                                              "new_password_again": "another-password"})
        assert reply.status_code == 400, (url, reply.status_code)
    assert snapshot(database) == before
    assert logged_in.get("/").status_code == 200  # still logged in: /logout was refused too
    assert app.extensions["edge"].enrolment is None


def test_ajax_post_with_token_in_header_passes(logged_in):
    token = csrf_token(logged_in, "/cards")
    reply = logged_in.post("/api/enrolment", json={"person_id": "0051234567"},
                           headers={"X-CSRFToken": token})
    # No enrolment hook in this app: refused for that reason, not for CSRF.
    assert reply.status_code == 400 and "layanan" in reply.json["error"]["message"]


def test_lockout_after_failures_survives_a_restart(config, database, clock):
    app = create_app(config, now=clock)
    client = app.test_client()
    for _ in range(3):
        reply = login(client, password="salah-sekali")
        assert reply.status_code == 401 and "salah" in reply.get_data(as_text=True)
    refused = login(client)  # the right password, but the account is locked now
    assert refused.status_code == 401 and "dikunci" in refused.get_data(as_text=True)

    restarted = create_app(config, now=clock).test_client()
    assert "dikunci" in login(restarted).get_data(as_text=True)
    account = operators.get_operator(open_database(database), "guru")
    assert account.failed_attempts == 3 and account.locked_until

    clock.advance(minutes=16)
    assert login(restarted).status_code == 302
    account = operators.get_operator(open_database(database), "guru")
    assert account.failed_attempts == 0 and account.locked_until is None


def test_unknown_user_and_wrong_password_look_the_same(client):
    wrong_user = login(client, username="tidak-ada")
    wrong_password = login(client, password="bukan-ini")
    assert wrong_user.status_code == wrong_password.status_code == 401
    assert "Nama pengguna atau kata sandi salah" in wrong_user.get_data(as_text=True)
    assert "Nama pengguna atau kata sandi salah" in wrong_password.get_data(as_text=True)


def test_login_rate_limit_answers_429(tmp_path, clock):
    config = make_config(tmp_path, login_rate_limit="3 per minute")
    app = create_app(config, now=clock)
    client = app.test_client()
    codes = [login(client, username=f"nobody{i}", password="x" * 8).status_code
             for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert "Terlalu banyak percobaan" in login(client).get_data(as_text=True)
    assert client.get("/login").status_code == 200  # only the POST is limited


def test_session_expires_after_inactivity(logged_in, clock):
    clock.advance(minutes=29)
    assert logged_in.get("/roster").status_code == 200  # an action: the clock restarts
    clock.advance(minutes=29)
    assert logged_in.get("/").status_code == 200
    clock.advance(minutes=31)
    reply = logged_in.get("/")
    assert reply.status_code == 302 and reply.location.startswith("/login")
    assert "Sesi berakhir" in logged_in.get(reply.location).get_data(as_text=True)
    assert logged_in.get("/api/today").status_code == 401


def test_the_pages_own_polling_does_not_keep_a_session_alive(logged_in, clock):
    for _ in range(4):
        clock.advance(minutes=10)
        reply = logged_in.get("/api/today")
    assert reply.status_code == 401


def test_password_is_stored_hashed(database, tmp_path):
    db = open_database(database)
    stored = db.conn.execute("SELECT password_hash FROM operators").fetchone()[0]
    db.close()
    assert stored.startswith("scrypt:") and PASSWORD not in stored
    for path in database.parent.glob("edge.db*"):
        assert PASSWORD.encode() not in path.read_bytes(), path


def test_secret_key_file_is_0600_and_reused(config, database, clock):
    path = config.web_secret_path
    app = create_app(config, now=clock)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert create_app(config, now=clock).secret_key == app.secret_key
    path.chmod(0o644)
    create_app(config, now=clock)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    repo = Path(__file__).resolve().parents[2]
    assert not path.resolve().is_relative_to(repo)


def test_session_cookie_flags(client):
    reply = login(client)
    cookie = next(h for h in reply.headers.getlist("Set-Cookie")
                  if h.startswith("absensi_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


def test_change_own_password(app, logged_in, database):
    token = csrf_token(logged_in, "/account")
    other = app.test_client()
    assert login(other).status_code == 302

    def change(old, new, again):
        return logged_in.post("/account", data={"csrf_token": token, "old_password": old,
                                                "new_password": new,
                                                "new_password_again": again})

    assert change("wrong-password", "kata-sandi-baru", "kata-sandi-baru").status_code == 400
    assert change(PASSWORD, "kata-sandi-baru", "kata-sandi-lain").status_code == 400
    assert change(PASSWORD, "pendek", "pendek").status_code == 400
    done = change(PASSWORD, "kata-sandi-baru", "kata-sandi-baru")
    assert done.status_code == 302
    assert "Kata sandi sudah diganti" in logged_in.get("/account").get_data(as_text=True)
    # The other session ended; the old password no longer works, the new one does.
    assert other.get("/").status_code == 302
    assert login(other).status_code == 401
    assert login(other, password="kata-sandi-baru").status_code == 302


def test_removed_operator_is_logged_out(logged_in, database):
    db = open_database(database)
    operators.remove_operator(db, "guru")
    db.close()
    assert logged_in.get("/").status_code == 302


@pytest.mark.parametrize("target, expected", [
    ("/roster?group=VII-A", "/roster?group=VII-A"),
    ("//evil.example/", "/"),
    ("https://evil.example/", "/"),
    ("/\\evil.example", "/"),
])
def test_login_redirects_only_within_the_page(client, target, expected):
    reply = client.post("/login", data={"username": "guru", "password": PASSWORD,
                                        "next": target, "csrf_token": csrf_token(client)})
    assert reply.status_code == 302 and reply.location == expected


def test_logout(logged_in):
    token = csrf_token(logged_in, "/")
    assert logged_in.post("/logout", data={"csrf_token": token}).status_code == 302
    assert logged_in.get("/").status_code == 302
