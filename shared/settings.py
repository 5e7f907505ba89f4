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
import difflib
import ipaddress
import logging
import os
import re
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
log = logging.getLogger(__name__)

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")

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
    # Transport and trust (see README "TLS and proxies"). ``register`` in the file; the attribute
    # is ``registers`` because pydantic's BaseModel already has a ``register``.
    registers: bool = Field(default=True, alias="register")
    outbound_proxy: str | None = None
    sips: bool = False
    tls_ca_file: Path | None = None
    tls_verify: bool = True
    rfc5626_outbound: bool = True

    @model_validator(mode="after")
    def _transport_rules(self) -> Trunk:
        if self.sips and self.transport != "tls":
            raise ValueError(f"trunk {self.name!r}: sips = true needs transport = \"tls\"")
        if self.registers and not self.password.get_secret_value():
            raise ValueError(f"trunk {self.name!r}: a password is required unless register = false")
        if self.tls_ca_file is not None and not self.tls_ca_file.is_file():
            raise ValueError(f"trunk {self.name!r}: tls_ca_file {str(self.tls_ca_file)!r} is not a readable file")
        return self

    @field_validator("variant_order", mode="before")
    @classmethod
    def _parse_order(cls, value: Any) -> tuple[VariantKind, ...]:
        return _variant_order(value)

    @field_validator("registrar", "outbound_proxy")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
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
    registers: bool = Field(default=True, alias="register")
    outbound_proxy: str | None = None
    sips: bool = False
    tls_ca_file: Path | None = None
    tls_verify: bool = True
    rfc5626_outbound: bool = True

    @model_validator(mode="after")
    def _one_password_source(self) -> TrunkFileEntry:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError(f"trunk {self.name!r}: give only one of password_env or password_file")
        if self.password_env is None and self.password_file is None and self.registers:
            raise ValueError(f"trunk {self.name!r}: give exactly one of password_env or password_file "
                             "(only a trunk with register = false may have no password)")
        return self

    def resolve(self) -> Trunk:
        secret = ""
        if self.password_env is not None:
            from_env = os.environ.get(self.password_env)
            if from_env is None:
                raise ValueError(f"trunk {self.name!r}: environment variable {self.password_env} is not set")
            secret = from_env
        elif self.password_file is not None:
            try:
                secret = self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"trunk {self.name!r}: cannot read password_file: {exc.strerror}") from None
        fields = self.model_dump(exclude={"password_env", "password_file"}, exclude_none=True, by_alias=True)
        return Trunk(password=SecretStr(secret), **fields)


class Settings(BaseSettings):
    """Everything a dialer process needs to know; built by :func:`load_settings`."""

    model_config = SettingsConfigDict(env_prefix="DIALER_", frozen=True, extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".dialer-data")
    default_region: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
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
    sip_register: bool = True
    sip_outbound_proxy: str | None = None
    sip_sips: bool = False
    sip_tls_ca_file: Path | None = None
    sip_tls_verify: bool = True
    sip_rfc5626_outbound: bool = True

    trunks: tuple[TrunkFileEntry, ...] = ()

    # Worker process model: unset means "from the pjsua2 engine the worker loads" (worker/sip/capacity.py):
    # 4 calls and 40 starts/s with the PyPI wheel, more with the built engine; the worker checks a
    # value given here against the engine and refuses one it cannot hold.
    worker_processes: int | None = Field(default=None, ge=1)
    calls_per_process: int | None = Field(default=None, ge=1)
    call_starts_per_s: float | None = Field(default=None, gt=0)
    sip_local_port: int = Field(default=0, ge=0, lt=65536)
    # Networking (worker/sip/network.py): unset, SIP and RTP bind to and advertise the interface that
    # routes to the registrar. The public address is what a PBX behind NAT must send to.
    sip_bind_address: str | None = None
    sip_public_address: str | None = None
    rtp_port_range: str | None = None
    lease_grace_s: float = Field(default=15.0, gt=0)  # leases of live calls are renewed every 5 s (worker/lease.py)

    # Fleet-wide toll-fraud caps.
    fleet_max_cps: float = Field(default=200.0, gt=0)
    max_calls_per_number_per_day: int = Field(default=3, ge=1)

    @field_validator("sip_bind_address")
    @classmethod
    def _bind_ip(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise ValueError("expected an IPv4 address of this host (or 0.0.0.0 for every interface)") from None

    @field_validator("sip_public_address")
    @classmethod
    def _public_host(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        try:
            if ipaddress.IPv4Address(value).is_unspecified:
                raise ValueError("0.0.0.0 cannot be advertised: give the address the PBX should send to")
            return value
        except ipaddress.AddressValueError:
            if _HOSTNAME.match(value) and not value.replace(".", "").isdigit():
                return value
            raise ValueError("expected an IPv4 address or a DNS name, without a port") from None

    @field_validator("rtp_port_range")
    @classmethod
    def _port_range(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        low, sep, high = value.strip().partition("-")
        if not sep or not low.strip().isdigit() or not high.strip().isdigit():
            raise ValueError("expected LOW-HIGH such as 10000-20000")
        if not 1024 <= int(low) < int(high) <= 65535:
            raise ValueError("expected 1024 <= LOW < HIGH <= 65535")
        return f"{int(low)}-{int(high)}"

    @property
    def rtp_ports(self) -> tuple[int, int] | None:
        """DIALER_RTP_PORT_RANGE as (low, high), or None: the OS picks each call's ports."""
        if self.rtp_port_range is None:
            return None
        low, _, high = self.rtp_port_range.partition("-")
        return int(low), int(high)

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
            known = ", ".join(sorted(trunks))
            what = f"unknown trunk {name!r} (configured: {known})" if trunks else "no SIP trunk is configured"
            raise ConfigError(
                f"{what}; set DIALER_SIP_REGISTRAR, "
                "DIALER_SIP_USERNAME and DIALER_SIP_PASSWORD, or add [[trunks]] to the config file"
            )
        return trunks[wanted]

    def _env_trunk(self) -> Trunk:
        required: list[tuple[str, object]] = [("DIALER_SIP_USERNAME", self.sip_username)]
        if self.sip_register:  # an IP-authenticated trunk (DIALER_SIP_REGISTER=false) may have no password
            required.append(("DIALER_SIP_PASSWORD", self.sip_password))
        missing = [var for var, val in required if not val]
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
                register=self.sip_register,  # the alias of Trunk.registers
                outbound_proxy=self.sip_outbound_proxy,
                sips=self.sip_sips,
                tls_ca_file=self.sip_tls_ca_file,
                tls_verify=self.sip_tls_verify,
                rfc5626_outbound=self.sip_rfc5626_outbound,
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
    if not err["loc"]:  # a rule across fields: its message names the trunk and the fields
        return str(err["msg"]).removeprefix("Value error, ")
    name = ".".join(str(p) for p in err["loc"]) or "settings"
    variable = f"{prefix}{name.upper()}" if env else f"{prefix}{name}"
    value = err.get("input")
    shown = "" if "password" in name or "token" in name or isinstance(value, dict) else f" (got {value!r})"
    return f"{variable}: {err['msg']}{shown}"


# Names the dialer's own tooling reads (the test suite, bench scripts): not settings, never warned about.
_TOOLING_PREFIXES = ("DIALER_TEST_", "DIALER_BENCH_")
_warned: set[str] = set()


def known_environment_names() -> frozenset[str]:
    """Every ``DIALER_*`` name a setting is read from, plus ``DIALER_CONFIG`` and the two that
    :mod:`shared.logs` reads itself (logging is set up before settings are loaded)."""
    outside_settings = {"DIALER_CONFIG", "DIALER_LOG_LEVEL", "DIALER_LOG_FORMAT"}
    return frozenset({*outside_settings, *(f"DIALER_{name.upper()}" for name in Settings.model_fields)})


def unknown_environment(
    environ: Mapping[str, str], extra_known: frozenset[str] = frozenset()
) -> list[tuple[str, str | None]]:
    """``DIALER_*`` names no setting reads, each with the closest known name (or None).

    A typo such as ``DIALER_SIP_TLS_CAFILE`` would otherwise be ignored in
    silence and the dialer would run on the default it was meant to change.
    """
    known = known_environment_names() | extra_known
    found = []
    for name in sorted(environ):
        if not name.startswith("DIALER_") or name in known or name.startswith(_TOOLING_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        found.append((name, close[0] if close else None))
    return found


def _warn_unknown_environment(settings: Settings) -> None:
    password_vars = frozenset(t.password_env for t in settings.trunks if t.password_env)
    for name, close in unknown_environment(os.environ, password_vars):
        if name in _warned:
            continue
        _warned.add(name)
        hint = f"; did you mean {close}?" if close else ""
        log.warning("environment variable %s is not a dialer setting and is ignored%s", name, hint)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings once; a bad value raises ConfigError naming the variable.

    Unknown ``DIALER_*`` environment names are warned about (once per name
    and process), with the closest known name.
    """
    path = config_file or os.environ.get("DIALER_CONFIG")
    token = _config_file.set(Path(path) if path else None)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc)) from None
    finally:
        _config_file.reset(token)
    _warn_unknown_environment(settings)
    return settings
