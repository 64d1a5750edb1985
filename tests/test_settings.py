"""Settings: precedence, validation, and the shipped config file documenting every key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from checker.errors import ConfigError
from checker.settings import Settings, load_settings, parse_connect_to, parse_duration

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "linkhealth.toml"
SECTIONS = ("notes", "check", "health", "archive", "report", "daemon")


def test_shipped_config_has_every_key_with_its_default():
    data = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    defaults = Settings()
    for section in SECTIONS:
        names = {f.name for f in dataclasses.fields(getattr(defaults, section))}
        assert set(data[section]) == names, section
    assert load_settings(CONFIG, environ={}) == dataclasses.replace(defaults, config_file=str(CONFIG))


def test_every_shipped_key_has_a_comment_above_it():
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith(("#", " ", "[")):
            block = lines[max(0, i - 6):i]
            assert any(l.startswith("#") for l in block), f"line {i + 1} ({line}) has no comment"


def test_precedence_defaults_file_env_flags(tmp_path):
    cfg = tmp_path / "lh.toml"
    cfg.write_text('[check]\nper_host = 3\ntimeout = 7\nconcurrency = 10\n', encoding="utf-8")
    env = {"LINKHEALTH_CHECK_TIMEOUT": "9", "LINKHEALTH_CHECK_CONCURRENCY": "11"}
    s = load_settings(cfg, environ=env, overrides={"check.concurrency": 12})
    assert s.check.per_host == 3          # file over default
    assert s.check.timeout == 9.0         # env over file
    assert s.check.concurrency == 12      # flag over env
    assert s.check.retries == 2           # default


def test_env_secrets_and_test_hooks_are_not_settings():
    s = load_settings(None, environ={"LINKHEALTH_IA_ACCESS_KEY": "k", "LINKHEALTH_TEST_POSTGRES_URL": "x",
                                     "LINKHEALTH_DB": "sqlite:///t.db"})
    assert s.db_url == "sqlite:///t.db"


@pytest.mark.parametrize("text, key", [
    ("[check]\nperhost = 2\n", "check.perhost"),
    ("[chekc]\nper_host = 2\n", "chekc.per_host"),
    ("[check]\nper_host = \"two\"\n", "check.per_host"),
    ("[check]\nper_host = 0\n", "check.per_host"),
    ("[health]\nrecheck_alive = \"soon\"\n", "health.recheck_alive"),
    ("[check]\nconnect_to = [\"nonsense\"]\n", "check.connect_to"),
    ("[check]\nexclude = [\"(\"]\n", "check.exclude"),
    ("verbose = true\n", "verbose"),
])
def test_bad_key_or_value_names_key_and_file(tmp_path, text, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert info.value.key == key
    assert str(cfg) in str(info.value)


def test_syntax_error_names_file_and_line(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[check]\nper_host = 2\ntimeout = = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert info.value.line == 3
    assert str(info.value).startswith(f"{cfg}:3:")


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="LINKHEALTH_CHECK_RETRIES"):
        load_settings(None, environ={"LINKHEALTH_CHECK_RETRIES": "many"})


def test_missing_named_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize("text, seconds", [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("12h", 43200.0),
                                           ("7d", 604800.0), ("2w", 1209600.0), ("1.5h", 5400.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "-1", "3 parsecs", True])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_parse_connect_to():
    rule = parse_connect_to("::127.0.0.1:8443")
    assert (rule.host, rule.port, rule.addr, rule.to_port) == ("", None, "127.0.0.1", 8443)
    rule = parse_connect_to("Example.COM:443:[::1]:8443")
    assert (rule.host, rule.port, rule.addr, rule.to_port) == ("example.com", 443, "::1", 8443)
    with pytest.raises(ValueError):
        parse_connect_to("example.com:443")
