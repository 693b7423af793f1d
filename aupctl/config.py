"""TOML config -> frozen dataclasses. Every error names the file, the dotted key and what was expected."""

from __future__ import annotations

import dataclasses
import datetime
import os
import string
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

ENV_CONFIG = "AUPCTL_CONFIG"


@dataclass(frozen=True)
class School:
    name: str
    aup_version: str
    aup_text: str | None = None  # path of the policy text; its hash is kept with each signature


@dataclass(frozen=True)
class Directory:
    flavour: Literal["ad", "openldap"]
    url: list[str]  # a string in TOML is taken as a list of one; several = failover in order
    bind_dn: str
    base_dn: str
    staff_ou: str
    leavers_ou: str
    groups_ou: str
    start_tls: bool = False
    ca_file: str | None = None
    allow_insecure: bool = False
    bind_password_file: str | None = None
    timeout: float = 10.0
    page_size: int = 1000
    privileged_groups: list[str] = field(default_factory=list)
    # Stands in for "no members" in a groupOfNames / groupOfUniqueNames (their schema needs one member).
    placeholder_member: str | None = None


@dataclass(frozen=True)
class Accounts:
    username: str = "{first_initial}{last_name}"
    max_length: int = 20
    email: str | None = None  # template, e.g. "{username}@school.example"
    upn_suffix: str | None = None
    # OpenLDAP posixAccount for new accounts: true, false, or "auto" (as the people in staff_ou are)
    posix: Literal[True, False, "auto"] = "auto"
    uid_range: list[int] = field(default_factory=list)  # [min, max] for new uidNumbers; [] = above those in use
    gid_number: int | None = None  # None: the gidNumber most of the school's posixAccount people have
    home_directory: str = "/home/{username}"
    login_shell: str = "/bin/bash"


@dataclass(frozen=True)
class Access:
    # access review --fix refuses (without --force) to remove more than this share of a system's members
    max_removal_share: float = 0.25


@dataclass(frozen=True)
class Role:
    ou: str | None = None  # None: the role is known by its groups
    groups: list[str] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class System:
    name: str
    group: str | None = None  # cn under groups_ou or a full DN; None = managed by hand
    approvers: list[str] = field(default_factory=list)
    review_days: int = 365
    instructions: str = ""


@dataclass(frozen=True)
class Passwords:
    max_age_days: int = 0  # 0 = no forced expiry (NCSC guidance)
    min_length: int = 12
    stale_after_days: int = 90
    initial_grace_days: int = 14
    shared_account_patterns: list[str] = field(default_factory=list)
    deny_words: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class UpdateCommands:
    windows: list[str] = field(default_factory=list)
    linux: list[str] = field(default_factory=list)
    macos: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Laptops:
    ssh_user: str = "aupctl"
    ssh_key: str | None = None
    known_hosts: str | None = None  # aupctl's own pinned keys; never ~/.ssh/known_hosts
    checkin_every_days: int = 90
    max_pending_updates: int = 0
    max_signature_age_days: int = 7
    require_encryption: bool = True
    approved_software: list[str] = field(default_factory=list)
    parallel: int = 20
    connect_timeout: float = 10.0
    command_timeout: float = 600.0
    update_commands: UpdateCommands = field(default_factory=UpdateCommands)
    needs_licence: list[str] = field(default_factory=list)  # globs of software that must be covered by a [[licences]]


@dataclass(frozen=True)
class Licence:
    product: str
    match: list[str]
    seats: int
    expires: str | None = None  # YYYY-MM-DD


@dataclass(frozen=True)
class Import:
    columns: dict[str, str] = field(default_factory=dict)  # our column -> the school's header


@dataclass(frozen=True)
class State:
    path: str | None = None
    checkpoints: str | None = None  # signed audit checkpoints (JSON lines); default: user config dir
    audit_key: Literal["file", "keyring"] = "file"  # where the audit log's HMAC key is kept
    audit_key_file: str | None = None  # with audit_key = "file"; default: user config dir audit.key


@dataclass(frozen=True)
class Config:
    school: School
    directory: Directory
    accounts: Accounts = field(default_factory=Accounts)
    access: Access = field(default_factory=Access)
    roles: dict[str, Role] = field(default_factory=dict)
    systems: dict[str, System] = field(default_factory=dict)
    passwords: Passwords = field(default_factory=Passwords)
    laptops: Laptops = field(default_factory=Laptops)
    licences: list[Licence] = field(default_factory=list)
    import_: Import = field(default_factory=Import)
    state: State = field(default_factory=State)
    source: str = ""  # the file it came from, for messages

    # -- DN helpers: OUs may be written relative to base_dn or in full --
    def dn(self, value: str) -> str:
        base = self.directory.base_dn
        if not value:
            return base
        if value.lower().replace(" ", "").endswith(base.lower().replace(" ", "")):
            return value
        return f"{value},{base}"

    def group_dn(self, value: str) -> str:
        """A group named by cn (under groups_ou) or by full DN."""
        if "=" in value:
            return self.dn(value)
        from ldap3.utils.dn import escape_rdn

        return f"cn={escape_rdn(value)},{self.dn(self.directory.groups_ou)}"

    def system(self, key: str) -> System:
        from .errors import NotFoundError

        try:
            return self.systems[key]
        except KeyError:
            known = ", ".join(self.systems) or "none configured"
            raise NotFoundError(f"unknown system {key!r} (known: {known})") from None

    def role(self, name: str) -> Role:
        from .errors import NotFoundError

        try:
            return self.roles[name]
        except KeyError:
            known = ", ".join(self.roles) or "none configured"
            raise NotFoundError(f"unknown role {name!r} (known: {known})") from None


# TOML key -> dataclass field where the key is a Python keyword
_RENAMES = {"import": "import_"}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return str(tp)


def _convert(tp: Any, value: Any, path: str, src: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value, path, src)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # TOML's bare dates, e.g. expires = 2027-08-31
            return value.isoformat()
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ConfigError(f"{src}: {path} must not be negative (got {value})")
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value <= 0:
                raise ConfigError(f"{src}: {path} must be more than 0 (got {value})")
            return float(value)
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, str) and inner is str and path.endswith((".url", ".match")):
            value = [value]
        if isinstance(value, list):
            return [_convert(inner, v, f"{path}[{i}]", src) for i, v in enumerate(value)]
    elif origin is dict:
        _, inner = typing.get_args(tp)
        if isinstance(value, dict):
            return {k: _convert(inner, v, f"{path}.{k}", src) for k, v in value.items()}
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _build(tp, value, path, src)
    got = type(value).__name__
    shown = repr(value) if not isinstance(value, dict | list) else got
    raise ConfigError(f"{src}: {path} must be {_type_name(tp)} (got {shown})")


def _build(cls: Any, data: dict[str, Any], path: str, src: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _RENAMES.get(key, key)
        dotted = f"{path}.{key}" if path else key
        if name not in fields:
            known = ", ".join(sorted(k.rstrip("_") for k in fields))
            raise ConfigError(f"{src}: unknown key {dotted!r} (expected one of: {known})")
        kwargs[name] = _convert(hints[name], value, dotted, src)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            dotted = f"{path}.{name}" if path else name
            raise ConfigError(f"{src}: missing required key {dotted!r} ({_type_name(hints[name])})")
    return cls(**kwargs)


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("aupctl")) / "aupctl.toml"


def resolve_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return default_config_path()


def parse(text: str, source: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    cfg = _build(Config, data, "", source)
    cfg = dataclasses.replace(cfg, source=source)
    _check(cfg)
    return cfg


def load(explicit: str | None = None) -> Config:
    path = resolve_path(explicit)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no config file at {path}",
            hint="copy config.example.toml there, pass --config PATH, set AUPCTL_CONFIG, or try `aupctl sandbox start`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    cfg = parse(text, str(path))
    # Relative paths in the config are relative to the config file, so a copied directory still works.
    return _anchor_paths(cfg, path.parent)


def _anchor(base: Path, value: str | None) -> str | None:
    if not value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def _anchor_paths(cfg: Config, base: Path) -> Config:
    d = dataclasses.replace(
        cfg.directory,
        ca_file=_anchor(base, cfg.directory.ca_file),
        bind_password_file=_anchor(base, cfg.directory.bind_password_file),
    )
    school = dataclasses.replace(cfg.school, aup_text=_anchor(base, cfg.school.aup_text))
    laptops = dataclasses.replace(
        cfg.laptops,
        ssh_key=_anchor(base, cfg.laptops.ssh_key),
        known_hosts=_anchor(base, cfg.laptops.known_hosts),
    )
    state = dataclasses.replace(
        cfg.state,
        path=_anchor(base, cfg.state.path),
        checkpoints=_anchor(base, cfg.state.checkpoints),
        audit_key_file=_anchor(base, cfg.state.audit_key_file),
    )
    return dataclasses.replace(cfg, directory=d, school=school, laptops=laptops, state=state)


def _check(cfg: Config) -> None:
    """Cross-key rules a type check cannot see."""
    src = cfg.source
    if not cfg.directory.url:
        raise ConfigError(f"{src}: directory.url must name at least one ldap:// or ldaps:// URL")
    for i, url in enumerate(cfg.directory.url):
        if not url.lower().startswith(("ldap://", "ldaps://")):
            raise ConfigError(f"{src}: directory.url[{i}] must start with ldap:// or ldaps:// (got {url!r})")
    for name, role in cfg.roles.items():
        for key in role.systems:
            if key not in cfg.systems:
                raise ConfigError(
                    f"{src}: roles.{name}.systems names {key!r}, which is not a [systems.*] table "
                    f"(known: {', '.join(cfg.systems) or 'none'})"
                )
    _check_groups_and_posix(cfg)
    if cfg.accounts.max_length < 1:
        raise ConfigError(f"{src}: accounts.max_length must be at least 1")
    if cfg.directory.flavour == "ad" and cfg.accounts.max_length > 20:
        raise ConfigError(f"{src}: accounts.max_length is {cfg.accounts.max_length}; AD's sAMAccountName allows 20")
    try:
        from .usernames import check_template

        check_template(cfg.accounts.username)
    except ImportError:  # pragma: no cover - usernames module arrives with the intake
        pass
    except ValueError as exc:
        raise ConfigError(f"{src}: accounts.username: {exc}") from None
    if cfg.state.audit_key == "keyring" and cfg.state.audit_key_file:
        raise ConfigError(f"{src}: state.audit_key_file is set, but state.audit_key is 'keyring': keep one")
    for i, lic in enumerate(cfg.licences):
        if lic.expires:
            try:
                datetime.date.fromisoformat(lic.expires)
            except ValueError:
                raise ConfigError(
                    f"{src}: licences[{i}].expires must be a date YYYY-MM-DD (got {lic.expires!r})"
                ) from None


def _check_groups_and_posix(cfg: Config) -> None:
    src, acc = cfg.source, cfg.accounts
    if acc.uid_range and (len(acc.uid_range) != 2 or acc.uid_range[0] > acc.uid_range[1]):
        raise ConfigError(f"{src}: accounts.uid_range must be [min, max] with min <= max (got {acc.uid_range})")
    for key in ("home_directory", "login_shell"):
        template = getattr(acc, key)
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise ConfigError(f"{src}: accounts.{key}: {template!r} is not a template ({exc})") from None
        if used - {"username"}:
            raise ConfigError(f"{src}: accounts.{key}: {template!r} may use only {{username}} (got {sorted(used)})")
    if cfg.access.max_removal_share > 1:
        raise ConfigError(
            f"{src}: access.max_removal_share is a share of a system's members, 0 to 1 (got "
            f"{cfg.access.max_removal_share})"
        )
    placeholder = cfg.directory.placeholder_member
    if placeholder is not None and "=" not in placeholder:
        raise ConfigError(
            f'{src}: directory.placeholder_member must be a full DN such as "cn=nobody,..." (got {placeholder!r})'
        )
