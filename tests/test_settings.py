"""Settings: defaults, environment, .env, and one-line errors for wrong configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from byflyt.errors import ConfigError
from byflyt.settings import Settings, load_settings
from tests.helpers import plain_env, run

BYFLYT = str(Path(sys.executable).parent / "byflyt")


def test_defaults_use_the_local_broker_and_sqlite(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.uses_local_broker
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.data_dir == clean_env / ".byflyt"
    assert settings.database_url == f"sqlite:///{clean_env / '.byflyt' / 'byflyt.sqlite'}"
    assert settings.kafka_libs_dir == clean_env / ".byflyt" / "kafka" / "libs"
    assert settings.topic("bike.counts") == "bike.counts"


def test_environment_and_dotenv(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / ".env").write_text("BYFLYT_TOPIC_PREFIX=dev.\nBYFLYT_WEB_PORT=7000\n")
    monkeypatch.setenv("BYFLYT_KAFKA_BOOTSTRAP", "kafka://k1:9092, k2:9093")
    settings = load_settings()
    assert settings.topic("bike.counts") == "dev.bike.counts"
    assert settings.web_port == 7000
    assert settings.bootstrap_servers == "k1:9092,k2:9093"
    assert not settings.uses_local_broker


def test_settings_are_frozen(clean_env: Path) -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.web_port = 1  # type: ignore[misc]


def test_password_is_secret(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYFLYT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BYFLYT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BYFLYT_KAFKA_SASL_USERNAME", "byflyt")
    monkeypatch.setenv("BYFLYT_KAFKA_SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    ("env", "setting", "hint"),
    [
        ({"BYFLYT_KAFKA_BOOTSTRAP": "no-port"}, "BYFLYT_KAFKA_BOOTSTRAP", "host:port"),
        ({"BYFLYT_WEB_PORT": "eighty"}, "BYFLYT_WEB_PORT", "whole number"),
        ({"BYFLYT_BROKER_PORT": "70000"}, "BYFLYT_BROKER_PORT", "whole number"),
        ({"BYFLYT_STORE_URL": "mysql://x"}, "BYFLYT_STORE_URL", "sqlite:///"),
        ({"BYFLYT_KAFKA_SECURITY_PROTOCOL": "TLS"}, "BYFLYT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ({"BYFLYT_TOPIC_PREFIX": "bad prefix"}, "BYFLYT_TOPIC_PREFIX", "characters"),
        (
            {"BYFLYT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "BYFLYT_*",
            "BYFLYT_KAFKA_SASL_MECHANISM",
        ),
    ],
)
def test_wrong_configuration_is_one_clear_line(
    clean_env: Path, env: dict[str, str], setting: str, hint: str
) -> None:
    full_env = plain_env()
    full_env.update(env)
    done = run([BYFLYT, "topics", "list"], env=full_env, cwd=clean_env, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("byflyt: configuration error: ")
    assert setting in lines[0]
    assert hint in lines[0]


def test_load_settings_raises_config_error(clean_env: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(web_port=0)
    assert info.value.setting == "BYFLYT_WEB_PORT"


def test_missing_ca_file(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="kafka_ssl_cafile"):
        load_settings(kafka_ssl_cafile=clean_env / "missing.pem")


def test_overrides_win(clean_env: Path) -> None:
    assert Settings(web_port=7001).web_port == 7001
