"""Server configuration: defaults, TOML file, ATTENDANCE_* variables, DATABASE_URL."""

from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from server.db import describe_url, engine_url

EXAMPLE = Path(__file__).parents[2] / "provisioning" / "server.example.toml"


def test_defaults():
    s = load_settings(environ={})
    assert s.database.url.startswith("sqlite:////var/lib/")
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert s.api.max_content_length == 4 * 1024 * 1024 and s.api.max_batch == 1000


def test_example_file_documents_every_key_with_the_defaults():
    import dataclasses
    import tomllib

    data = tomllib.loads(EXAMPLE.read_text())
    defaults = load_settings(environ={})
    for section in ("database", "api", "enrolment", "http", "log", "web"):
        keys = {f.name for f in dataclasses.fields(getattr(defaults, section))}
        assert set(data[section]) == keys, section
        for key in keys:
            assert data[section][key] == getattr(getattr(defaults, section), key), (section, key)
    assert load_settings(EXAMPLE, environ={}).source == str(EXAMPLE)


def test_file_then_environment_then_database_url(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('[database]\nurl = "sqlite:///from-file.db"\n[http]\nport = 9000\n')
    s = load_settings(environ={"ATTENDANCE_SERVER_CONFIG": str(config)})
    assert (s.database.url, s.http.port) == ("sqlite:///from-file.db", 9000)
    s = load_settings(environ={"ATTENDANCE_SERVER_CONFIG": str(config),
                               "ATTENDANCE_HTTP_PORT": "9001",
                               "ATTENDANCE_DATABASE_URL": "sqlite:///from-env.db",
                               "ATTENDANCE_DEVICE_NAME": "the edge's, ignored"})
    assert (s.database.url, s.http.port) == ("sqlite:///from-env.db", 9001)
    s = load_settings(environ={"ATTENDANCE_SERVER_CONFIG": str(config),
                               "ATTENDANCE_DATABASE_URL": "sqlite:///from-env.db",
                               "DATABASE_URL": "postgresql://db.example/absensi"})
    assert s.database.url == "postgresql://db.example/absensi"


@pytest.mark.parametrize("text, env, message", [
    ("[http]\nport = 'x'\n", {}, "[http] port: expected a whole number"),
    ("[http]\nprot = 1\n", {}, "[http] prot: unknown key"),
    ("[nope]\n", {}, "unknown section [nope]"),
    ("[api]\nmax_batch = 5000\n", {}, "[api] max_batch: must be between 1 and 1000"),
    ("", {"ATTENDANCE_API_MAX_BATCH": "lots"}, "ATTENDANCE_API_MAX_BATCH: expected a whole number"),
    ("", {"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must start with"),
    ("[log]\nlevel = 'LOUD'\n", {}, "[log] level: must be one of"),
    ("not toml [", {}, "not valid TOML"),
    ("[web]\nsession_timeout_minutes = 0\n", {}, "[web] session_timeout_minutes: must be"),
    ("[web]\nlogin_max_failures = 0\n", {}, "[web] login_max_failures: must be"),
    ("[web]\nlogin_lockout_minutes = -1\n", {}, "[web] login_lockout_minutes: must be"),
    ("[web]\nlogin_rate_limit = 'often'\n", {}, "[web] login_rate_limit: expected e.g."),
    ("", {"ATTENDANCE_WEB_OFFLINE_AFTER_MINUTES": "0"},
     "ATTENDANCE_WEB_OFFLINE_AFTER_MINUTES: must be more than 0"),
    ("", {"ATTENDANCE_WEB_COOKIE_SECURE": "maybe"},
     "ATTENDANCE_WEB_COOKIE_SECURE: expected true or false"),
    ("[web]\nproxy_count = 9\n", {}, "[web] proxy_count: must be between 0 and 5"),
    ("[web]\nsecret_key = 'x'\n", {}, "[web] secret_key: unknown key"),
])
def test_bad_configuration_names_the_key(tmp_path, text, env, message):
    config = tmp_path / "server.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, environ=env)
    assert message in str(info.value)


def test_named_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(environ={"ATTENDANCE_SERVER_CONFIG": str(tmp_path / "none.toml")})


def test_postgresql_urls_use_psycopg3_and_hide_passwords():
    assert engine_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert engine_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"
    assert "secret" not in describe_url("postgresql://u:secret@h/db")
