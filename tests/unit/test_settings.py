"""Settings: built once from DIALER_* and a TOML file; a bad value names its variable; secrets stay hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.numbers import VariantKind
from shared.settings import load_settings

FAKE_PASSWORD = "not-a-real-secret-42"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DIALER_"):
            monkeypatch.delenv(name)


def _default_trunk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_SIP_REGISTRAR", "127.0.0.1:5060")
    monkeypatch.setenv("DIALER_SIP_USERNAME", "1001")
    monkeypatch.setenv("DIALER_SIP_PASSWORD", FAKE_PASSWORD)


def test_defaults_need_nothing() -> None:
    settings = load_settings()
    assert settings.database_url is None
    assert settings.default_region == "CN"
    assert settings.all_trunks() == {}


def test_default_trunk_entirely_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _default_trunk_env(monkeypatch)
    monkeypatch.setenv("DIALER_SIP_TRANSPORT", "tcp")
    trunk = load_settings().trunk()
    assert trunk.name == "default"
    assert trunk.registrar_host == "127.0.0.1"
    assert trunk.transport == "tcp"
    assert trunk.variant_order == (VariantKind.NATIONAL, VariantKind.COUNTRY_CODE, VariantKind.E164)
    assert trunk.password.get_secret_value() == FAKE_PASSWORD


def test_password_never_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    _default_trunk_env(monkeypatch)
    settings = load_settings()
    trunk = settings.trunk()
    for text in (repr(settings), str(settings), repr(trunk), str(trunk), str(trunk.model_dump()),
                 settings.model_dump_json()):
        assert FAKE_PASSWORD not in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DIALER_METRICS_PORT", "ninety"), ("DIALER_DEFAULT_REGION", "china"), ("DIALER_SIP_TRANSPORT", "carrier-pigeon")],
)
def test_malformed_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_bad_registrar_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    _default_trunk_env(monkeypatch)
    monkeypatch.setenv("DIALER_SIP_REGISTRAR", "127.0.0.1")
    with pytest.raises(ConfigError, match=r"DIALER_SIP_REGISTRAR: .*host:port"):
        load_settings().trunk()


def test_missing_password_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_SIP_REGISTRAR", "127.0.0.1:5060")
    monkeypatch.setenv("DIALER_SIP_USERNAME", "1001")
    with pytest.raises(ConfigError, match="DIALER_SIP_PASSWORD"):
        load_settings().trunk()


def test_bad_variant_order_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _default_trunk_env(monkeypatch)
    monkeypatch.setenv("DIALER_SIP_VARIANT_ORDER", "national, banana")
    with pytest.raises(ConfigError, match=r"DIALER_SIP_VARIANT_ORDER.*banana"):
        load_settings().trunk()


def test_toml_file_trunks_take_passwords_from_env_or_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "b.secret"
    secret_file.write_text(FAKE_PASSWORD + "\n")
    monkeypatch.setenv("CARRIER_A_PASSWORD", "another-fake-secret")
    config = tmp_path / "dialer.toml"
    config.write_text(
        f"""
metrics_port = 9200
[[trunks]]
name = "carrier-a"
registrar = "127.0.0.1:5080"
username = "a"
password_env = "CARRIER_A_PASSWORD"
variant_order = ["+86", "national"]
max_cps = 3
[[trunks]]
name = "carrier-b"
registrar = "127.0.0.1:5090"
username = "b"
password_file = "{secret_file}"
"""
    )
    monkeypatch.setenv("DIALER_METRICS_PORT", "9300")
    settings = load_settings(config)
    assert settings.metrics_port == 9300, "environment wins over the file"
    trunks = settings.all_trunks()
    assert trunks["carrier-a"].password.get_secret_value() == "another-fake-secret"
    assert trunks["carrier-a"].variant_order == (VariantKind.E164, VariantKind.NATIONAL)
    assert trunks["carrier-b"].password.get_secret_value() == FAKE_PASSWORD
    assert trunks["carrier-a"].queue == "dial.carrier-a"


def test_literal_password_in_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "dialer.toml"
    config.write_text('[[trunks]]\nname="x"\nregistrar="127.0.0.1:5060"\nusername="u"\npassword="oops"\n')
    with pytest.raises(ConfigError, match="literal password"):
        load_settings(config)


def test_unreadable_or_invalid_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("metrics_port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_unknown_trunk_lists_the_configured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _default_trunk_env(monkeypatch)
    with pytest.raises(ConfigError, match="configured: default"):
        load_settings().trunk("nope")


def test_no_trunk_at_all_says_so_and_how_to_add_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing configured is not an "unknown trunk None": the one line says what to set."""
    for name in list(os.environ):
        if name.startswith("DIALER_"):
            monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match=r"^no SIP trunk is configured; set DIALER_SIP_REGISTRAR"):
        load_settings().trunk()
