import pytest

from edge.config import load_config
from edge.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_defaults_without_file(tmp_path):
    cfg = load_config(None, environ={"ATTENDANCE_CONFIG_UNUSED": "x"})
    assert cfg.recorder.debounce_seconds == 60
    assert cfg.readers[0].driver == "sim"


def test_example_file_is_valid_and_documents_every_key():
    from pathlib import Path
    import dataclasses

    from edge import config as config_module

    example = Path(__file__).parent.parent / "provisioning" / "edge.example.toml"
    cfg = load_config(example, environ={})
    assert cfg.source.endswith("edge.example.toml")
    text = example.read_text()
    for section, cls in [*config_module._SECTIONS.items(), ("readers", config_module.ReaderConfig)]:
        for field in dataclasses.fields(cls):
            assert f"\n{field.name} = " in text, f"{section}.{field.name} is not documented"


def test_file_and_env(tmp_path):
    path = write(tmp_path, """
[device]
name = "sdn-001-gerbang"
data_dir = "/tmp/x"
[recorder]
debounce_seconds = 30
[[readers]]
name = "masuk"
driver = "pcsc"
match = "ACR122"
[[readers]]
name = "keluar"
driver = "nfc"
path = "tty:AMA0:pn532"
[feedback]
green_pin = 5
""")
    cfg = load_config(path, environ={"ATTENDANCE_RECORDER_DEBOUNCE_SECONDS": "15",
                                     "ATTENDANCE_READER_MATCH": "ACR1252",
                                     "ATTENDANCE_DATABASE_URL": "ignored: server's variable"})
    assert cfg.device.name == "sdn-001-gerbang"
    assert cfg.recorder.debounce_seconds == 15.0
    assert [r.name for r in cfg.readers] == ["masuk", "keluar"]
    assert cfg.readers[0].match == "ACR1252"
    assert cfg.readers[1].path == "tty:AMA0:pn532"
    assert cfg.feedback.green_pin == "GPIO5"


@pytest.mark.parametrize("text, env, message", [
    ("[recorder]\ndebounce_seconds = \"abc\"\n", {},
     r"edge.toml: \[recorder\] debounce_seconds: expected a number, got 'abc'"),
    ("[recorder]\ndebounce_secs = 5\n", {}, r"\[recorder\] debounce_secs: unknown key"),
    ("[recorderr]\n", {}, r"unknown section \[recorderr\]"),
    ("[recorder]\nretention_days = 0\n", {}, r"\[recorder\] retention_days: must be at least 1"),
    ("[[readers]]\ndriver = \"acr\"\n", {}, r"\[\[readers\]\] #1 driver: must be one of pcsc, nfc, sim"),
    ("[[readers]]\nname='a'\n[[readers]]\nname='a'\n", {}, r"\[\[readers\]\] #2 name: 'a' is used by two"),
    ("[feedback]\nactive_high = \"yes\"\n", {}, r"\[feedback\] active_high: expected true or false"),
    ("[log]\nlevel = \"LOUD\"\n", {}, r"\[log\] level: must be one of"),
    ("[device\nname=1", {}, r"edge.toml: not valid TOML"),
    ("", {"ATTENDANCE_RECORDER_RETENTION_DAYS": "ten"},
     r"ATTENDANCE_RECORDER_RETENTION_DAYS: expected a whole number, got 'ten'"),
    ("", {"ATTENDANCE_CLOCK_ASSUME_SYNCED": "perhaps"}, r"ATTENDANCE_CLOCK_ASSUME_SYNCED: expected true or false"),
    ("", {"ATTENDANCE_RECORDER_DEBOUNCE": "5"}, r"ATTENDANCE_RECORDER_DEBOUNCE: unknown key"),
    ("[web]\nport = 8080\n", {}, r"\[web\] port: unknown key \(known keys: enabled, "),
    ("[web]\nlisten = \"8080\"\n", {}, r"\[web\] listen: must be HOST:PORT"),
    ("[web]\nlisten = \"0.0.0.0:99999\"\n", {}, r"\[web\] listen: must be HOST:PORT"),
    ("[web]\nsession_minutes = 0\n", {}, r"\[web\] session_minutes: must be at least 1"),
    ("[web]\nlockout_failures = \"5\"\n", {},
     r"\[web\] lockout_failures: expected a whole number"),
    ("[web]\nstart_time = \"7.30\"\n", {}, r"\[web\] start_time: must be a time of day"),
    ("[web]\ngrace_minutes = -1\n", {}, r"\[web\] grace_minutes: must be 0 or more"),
    ("[web]\nlogin_rate_limit = \"lots\"\n", {}, r"\[web\] login_rate_limit: must be like"),
    ("", {"ATTENDANCE_WEB_ENABLED": "kadang"}, r"ATTENDANCE_WEB_ENABLED: expected true or false"),
    ("[sync]\ntoken_max_age_days = -1\n", {},
     r"\[sync\] token_max_age_days: must be 0 \(never\) or more"),
])
def test_bad_config_names_the_key(tmp_path, text, env, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ=env)


def test_web_section(tmp_path):
    cfg = load_config(None, environ={})
    assert (cfg.web.enabled, cfg.web.listen, cfg.web.session_minutes, cfg.web.lockout_failures,
            cfg.web.lockout_minutes, cfg.web.start_time, cfg.web.grace_minutes) == (
        True, "0.0.0.0:8080", 30, 5, 15, "07:00", 0)
    path = write(tmp_path, '[web]\nlisten = "[::]:8443"\nstart_time = "06:30"\n')
    cfg = load_config(path, environ={"ATTENDANCE_WEB_SESSION_MINUTES": "10",
                                     "ATTENDANCE_WEB_ENABLED": "no"})
    assert (cfg.web.listen, cfg.web.start_time, cfg.web.session_minutes, cfg.web.enabled) == (
        "[::]:8443", "06:30", 10, False)
    from edge.config import parse_listen

    assert parse_listen(cfg.web.listen) == ("::", 8443)
    assert cfg.web_secret_path == cfg.data_path / "web-secret.key"


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml", environ={})
