"""Settings: one frozen object built once, at start, from ``DIALER_*`` and an optional TOML file.

Why one object: every process (dispatcher, worker, API, CLI) must agree on the
same trunks and limits, and a typo must stop the process at start with one line
that names the variable, not fail later in the middle of a campaign.

Precedence: explicit overrides > environment (``DIALER_*``) > TOML file
(``DIALER_CONFIG`` or ``--config``) > defaults. Trunk passwords never come from
the file itself: a trunk there names an environment variable or a secret file
that holds its password, so the file can be committed and shared.
"""

from __future__ import annotations

import contextvars
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigError
from shared.numbers import DEFAULT_VARIANT_ORDER, VariantKind, parse_variant_order

Transport = Literal["udp", "tcp", "tls"]
DEFAULT_TRUNK = "default"

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("dialer_config_file", default=None)


def _variant_order(value: Any) -> tuple[VariantKind, ...]:
    if isinstance(value, str):
        return parse_variant_order(value)
    if isinstance(value, list | tuple):
        return parse_variant_order(",".join(str(v) for v in value))
    raise ValueError("expected a list such as 'national, 86, +86'")


class Trunk(BaseModel):
    """A SIP trunk: where to REGISTER, as whom, and how hard it may be driven."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    registrar: str
    transport: Transport = "udp"
    username: str
    password: SecretStr = Field(repr=False)
    realm: str | None = None
    domain: str | None = None
    variant_order: tuple[VariantKind, ...] = DEFAULT_VARIANT_ORDER
    max_concurrent: int = Field(default=8, ge=1)
    max_cps: float = Field(default=10.0, gt=0)

    @field_validator("variant_order", mode="before")
    @classmethod
    def _parse_order(cls, value: Any) -> tuple[VariantKind, ...]:
        return _variant_order(value)

    @field_validator("registrar")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not host or not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @property
    def registrar_host(self) -> str:
        return self.registrar.rpartition(":")[0]

    @property
    def sip_domain(self) -> str:
        return self.domain or self.registrar_host

    @property
    def queue(self) -> str:
        """The broker queue that carries this trunk's dial messages."""
        return f"dial.{self.name}"


class TrunkFileEntry(BaseModel):
    """A trunk as written in the TOML file: the password is named, never written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    registrar: str
    transport: Transport = "udp"
    username: str
    password_env: str | None = None
    password_file: Path | None = None
    realm: str | None = None
    domain: str | None = None
    variant_order: Any = None
    max_concurrent: int = 8
    max_cps: float = 10.0

    @model_validator(mode="after")
    def _one_password_source(self) -> TrunkFileEntry:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError(f"trunk {self.name!r}: give exactly one of password_env or password_file")
        return self

    def resolve(self) -> Trunk:
        if self.password_env is not None:
            secret = os.environ.get(self.password_env)
            if secret is None:
                raise ValueError(f"trunk {self.name!r}: environment variable {self.password_env} is not set")
        else:
            assert self.password_file is not None
            try:
                secret = self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"trunk {self.name!r}: cannot read password_file: {exc.strerror}") from None
        fields = self.model_dump(exclude={"password_env", "password_file"}, exclude_none=True)
        return Trunk(password=SecretStr(secret), **fields)


class Settings(BaseSettings):
    """Everything a dialer process needs to know; built by :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="DIALER_", frozen=True, extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".dialer-data")
    default_region: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9100, ge=0, lt=65536)
    api_token: SecretStr | None = Field(default=None, repr=False)

    # The default trunk, given entirely by environment.
    sip_registrar: str | None = None
    sip_username: str | None = None
    sip_password: SecretStr | None = Field(default=None, repr=False)
    sip_transport: Transport = "udp"
    sip_realm: str | None = None
    sip_domain: str | None = None
    sip_variant_order: str = "national, 86, +86"
    sip_max_concurrent: int = Field(default=8, ge=1)
    sip_max_cps: float = Field(default=10.0, gt=0)

    trunks: tuple[TrunkFileEntry, ...] = ()

    # Worker process model: unset means "from the pjsua2 engine the worker loads" (worker/sip/capacity.py):
    # 4 calls and 40 starts/s with the PyPI wheel, more with the built engine; the worker checks a
    # value given here against the engine and refuses one it cannot hold.
    worker_processes: int | None = Field(default=None, ge=1)
    calls_per_process: int | None = Field(default=None, ge=1)
    call_starts_per_s: float | None = Field(default=None, gt=0)
    sip_local_port: int = Field(default=0, ge=0, lt=65536)
    lease_grace_s: float = Field(default=60.0, gt=0)

    # Fleet-wide toll-fraud caps.
    fleet_max_cps: float = Field(default=200.0, gt=0)
    max_calls_per_number_per_day: int = Field(default=3, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get()
        if path is not None:
            sources.append(_TomlSource(settings_cls, path))
        return tuple(sources)

    def all_trunks(self) -> dict[str, Trunk]:
        """Trunks by name: the file's, plus the default one when ``DIALER_SIP_REGISTRAR`` is set."""
        found: dict[str, Trunk] = {}
        for entry in self.trunks:
            try:
                found[entry.name] = entry.resolve()
            except ValidationError as exc:
                raise ConfigError(_first_error(exc, prefix=f"trunks.{entry.name}.")) from None
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.sip_registrar:
            found.setdefault(DEFAULT_TRUNK, self._env_trunk())
        return found

    def trunk(self, name: str | None = None) -> Trunk:
        trunks = self.all_trunks()
        wanted = name or (DEFAULT_TRUNK if DEFAULT_TRUNK in trunks else next(iter(trunks), None))
        if wanted is None or wanted not in trunks:
            known = ", ".join(sorted(trunks)) or "none"
            raise ConfigError(
                f"unknown trunk {name!r} (configured: {known}); set DIALER_SIP_REGISTRAR, "
                "DIALER_SIP_USERNAME and DIALER_SIP_PASSWORD, or add [[trunks]] to the config file"
            )
        return trunks[wanted]

    def _env_trunk(self) -> Trunk:
        missing = [var for var, val in (("DIALER_SIP_USERNAME", self.sip_username),
                                        ("DIALER_SIP_PASSWORD", self.sip_password)) if not val]
        if missing:
            raise ConfigError(f"{missing[0]}: required when DIALER_SIP_REGISTRAR is set")
        try:
            return Trunk(
                name=DEFAULT_TRUNK,
                registrar=self.sip_registrar or "",
                transport=self.sip_transport,
                username=self.sip_username or "",
                password=self.sip_password or SecretStr(""),
                realm=self.sip_realm,
                domain=self.sip_domain,
                variant_order=self.sip_variant_order,  # type: ignore[arg-type]  # validated by Trunk
                max_concurrent=self.sip_max_concurrent,
                max_cps=self.sip_max_cps,
            )
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, prefix="DIALER_SIP_", env=True)) from None


class _TomlSource(PydanticBaseSettingsSource):
    """Values from the TOML config file, below the environment in precedence."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        try:
            self._data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"DIALER_CONFIG: cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"DIALER_CONFIG: {path} is not valid TOML: {exc}") from None
        for trunk in self._data.get("trunks", []):
            if isinstance(trunk, Mapping) and "password" in trunk:
                raise ConfigError(
                    f"{path}: trunk {trunk.get('name')!r} has a literal password; "
                    "use password_env or password_file"
                )

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _first_error(exc: ValidationError, prefix: str = "DIALER_", env: bool = True) -> str:
    err = exc.errors()[0]
    name = ".".join(str(p) for p in err["loc"]) or "settings"
    variable = f"{prefix}{name.upper()}" if env else f"{prefix}{name}"
    value = err.get("input")
    shown = "" if "password" in name or "token" in name or isinstance(value, dict) else f" (got {value!r})"
    return f"{variable}: {err['msg']}{shown}"


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings once; a bad value raises ConfigError naming the variable."""
    path = config_file or os.environ.get("DIALER_CONFIG")
    token = _config_file.set(Path(path) if path else None)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    finally:
        _config_file.reset(token)
