"""TOML config -> frozen dataclasses. Every error names the file, the dotted key and what was expected."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

ENV_CONFIG = "AUPCTL_CONFIG"
CONFIG_MAX_BYTES = 1024 * 1024  # a config is a few kilobytes; /dev/zero must not be read to the end


def _range(lo: float, hi: float) -> dict[str, Any]:
    """Field metadata: the accepted range of a number (checked at load, named in the message)."""
    return {"range": (lo, hi)}


# Numbers with no range of their own: whole numbers up to a billion, numbers finite and at most a million.
_INT_RANGE = (0, 1_000_000_000)
_FLOAT_RANGE = (0.0, 1_000_000.0)


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
    timeout: float = field(default=10.0, metadata=_range(0.1, 600))
    page_size: int = field(default=1000, metadata=_range(1, 100_000))
    privileged_groups: list[str] = field(default_factory=list)
    # Stands in for "no members" in a groupOfNames / groupOfUniqueNames (their schema needs one member).
    placeholder_member: str | None = None


@dataclass(frozen=True)
class Accounts:
    username: str = "{first_initial}{last_name}"
    max_length: int = field(default=20, metadata=_range(1, 256))
    email: str | None = None  # template, e.g. "{username}@school.example" (fields: EMAIL_FIELDS)
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
    max_removal_share: float = field(default=0.25, metadata=_range(0.0, 1.0))
    # `access recertify`: where the approvers' decision files go (default: a folder beside the state store),
    # the days a campaign runs when --due is not given, and what `close` does with what nobody decided
    recertify_dir: str | None = None
    recertify_days: int = field(default=21, metadata=_range(1, 365))
    unanswered: Literal["keep", "remove"] = "keep"


@dataclass(frozen=True)
class Role:
    ou: str | None = None  # None: known by its groups or the record aupctl keeps; new accounts go to staff_ou
    groups: list[str] = field(default_factory=list)
    systems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class System:
    name: str
    group: str | None = None  # cn under groups_ou or a full DN; None = managed by hand
    approvers: list[str] = field(default_factory=list)
    review_days: int = field(default=365, metadata=_range(1, 3650))
    instructions: str = ""


@dataclass(frozen=True)
class Passwords:
    max_age_days: int = field(default=0, metadata=_range(0, 3650))  # 0 = no forced expiry (NCSC guidance)
    min_length: int = field(default=12, metadata=_range(1, 256))
    stale_after_days: int = field(default=90, metadata=_range(1, 3650))
    initial_grace_days: int = field(default=14, metadata=_range(0, 365))
    shared_account_patterns: list[str] = field(default_factory=list)
    deny_words: list[str] = field(default_factory=list)
    # OpenLDAP: the DN of slapd's ppolicy_default, for a bind account that may not read cn=config
    ppolicy_default: str | None = None


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
    checkin_every_days: int = field(default=90, metadata=_range(1, 3650))
    max_pending_updates: int = field(default=0, metadata=_range(0, 100_000))
    max_signature_age_days: int = field(default=7, metadata=_range(0, 3650))
    require_encryption: bool = True
    approved_software: list[str] = field(default_factory=list)
    parallel: int = field(default=20, metadata=_range(1, 256))
    connect_timeout: float = field(default=10.0, metadata=_range(0.1, 600))
    command_timeout: float = field(default=600.0, metadata=_range(1, 86_400))
    update_commands: UpdateCommands = field(default_factory=UpdateCommands)
    needs_licence: list[str] = field(default_factory=list)  # globs of software that must be covered by a [[licences]]


@dataclass(frozen=True)
class OsRelease:
    """A row of the OS support table (aupctl/estate/os_support.toml) laid over or added to it."""

    family: str = ""  # windows | windows-server | macos ("" = as the shipped row of the same name)
    build: int = 0  # Windows build number
    version: str = ""  # macOS major
    end: str = ""  # YYYY-MM-DD: last day of security updates
    end_enterprise: str = ""
    latest: str = ""  # macOS: newest release of the major


@dataclass(frozen=True)
class Estate:
    """`estate audit` / `estate list`: the computers the directory knows (docs/estate.md)."""

    base: str = ""  # where computers are read from ("" = base_dn); relative to base_dn or a full DN
    object_class: str = "device"  # OpenLDAP: the object class of computer entries (AD: computer)
    os_attribute: str = ""  # "" = operatingSystem (AD), description (OpenLDAP)
    version_attribute: str = ""  # "" = operatingSystemVersion (AD), none (OpenLDAP)
    last_seen_attribute: str = ""  # "" = lastLogonTimestamp (AD), none (OpenLDAP)
    serial_attribute: str = "serialNumber"
    stale_days: int = field(default=90, metadata=_range(1, 3650))
    laps_max_overdue_days: int = field(default=0, metadata=_range(0, 365))  # LAPS expiry passed by more: not rotated
    os_support: dict[str, OsRelease] = field(default_factory=dict)


@dataclass(frozen=True)
class Licence:
    product: str
    match: list[str]
    seats: int = field(metadata=_range(0, 10_000_000))
    expires: str | None = None  # YYYY-MM-DD


@dataclass(frozen=True)
class Import:
    columns: dict[str, str] = field(default_factory=dict)  # our column -> the school's header
    max_bytes: int = 20 * 1024 * 1024  # a CSV larger than this is refused unread (a staff list is kilobytes)


@dataclass(frozen=True)
class Mis:
    """`staff sync`: the MIS staff export (docs/mis-sync.md)."""

    profile: str = "sims"  # sims, arbor, bromcom or wonde: the export's own headers
    columns: dict[str, str] = field(default_factory=dict)  # our field -> the school's header
    roles: dict[str, str] = field(default_factory=dict)  # MIS role/post glob -> aupctl role
    create_days_before: int = field(default=14, metadata=_range(0, 365))
    max_leavers: float = field(default=0.10, metadata=_range(0.0001, 1))  # share of staff; more is refused
    ignore: list[str] = field(default_factory=list)  # username globs never listed as "not in the MIS"
    rename: bool = False  # a name change renames the username too
    id_attribute: str = ""  # the MIS id on the account; "" = employeeID (AD), employeeType (OpenLDAP)


@dataclass(frozen=True)
class Domain:
    """`domain audit`: the directory's own password policy against the school's and Cyber Essentials'."""

    # The directory refuses common passwords when they are set (Entra ID Password Protection, Specops, a
    # ppolicy check module): Cyber Essentials then accepts a minimum length of 8 instead of 12.
    deny_list: bool = False
    max_lockout_attempts: int = field(default=10, metadata=_range(1, 10))  # Cyber Essentials: at most 10


@dataclass(frozen=True)
class Mail:
    """Outgoing mail for reminders and recertification (docs/notify.md). The password is never here: it
    comes from AUPCTL_MAIL_PASSWORD, password_file or the OS keyring, as the bind password does."""

    host: str = ""  # "" = no mail configured
    port: int = field(default=0, metadata=_range(0, 65535))  # 0 = 587 (starttls), 465 (tls), 25 (none)
    security: Literal["starttls", "tls", "none"] = "starttls"
    allow_insecure: bool = False  # security = "none" sends the password and letters in clear
    username: str = ""  # "" = no AUTH
    password_file: str | None = None
    from_: str = ""  # TOML key "from": "Name <address>"
    reply_to: str = ""
    timeout: float = field(default=30.0, metadata=_range(0.1, 600))
    ca_file: str | None = None  # a private CA for the server's certificate
    templates: str | None = None  # folder of templates overriding the shipped ones; default: templates/ beside the config


@dataclass(frozen=True)
class Notify:
    """`aupctl notify`: the reminders (docs/notify.md)."""

    technician: str = ""  # "Name <address>": copied on laptop reminders; gets the leaver task reminders
    laptop_days_before: int = field(default=7, metadata=_range(0, 365))
    task_days: int = field(default=14, metadata=_range(1, 3650))


@dataclass(frozen=True)
class State:
    path: str | None = None
    checkpoints: str | None = None  # signed audit checkpoints (JSON lines); default: user config dir
    audit_key: Literal["file", "keyring"] = "file"  # where the audit log's HMAC key is kept
    audit_key_file: str | None = None  # with audit_key = "file"; default: user config dir audit.key
    busy_timeout: float = field(default=30.0, metadata=_range(0.01, 3600))  # seconds a write waits for another run
    # seconds a bulk run's lease outlives its last sign of life (a holder killed on another host)
    lease_ttl: float = field(default=3600.0, metadata=_range(60, 7 * 86400))
    # the shared store on PostgreSQL (docs/trust.md): postgresql://USER@HOST:PORT/DATABASE, never a password;
    # when set, it is the store and path is not used
    url: str | None = None
    ca_file: str | None = None  # the CA of the server's certificate (sslmode=verify-full)
    allow_insecure: bool = False  # TLS if offered, unverified: a trusted network only
    password_file: str | None = None  # else AUPCTL_STATE_PASSWORD or the keyring (user: the URL)


@dataclass(frozen=True)
class Report:
    chromium: str | None = (
        None  # the browser that prints the PDF; default: chromium, chromium-browser, google-chrome on PATH
    )
    pdf_timeout: float = field(default=60.0, metadata=_range(1, 3600))  # seconds the browser may take to print
    # who acts on each kind of finding in the report's "three most important actions"
    technician: str = "the ICT technician"
    headteacher: str = "the headteacher"
    governors: str = "the chair of governors"


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
    estate: Estate = field(default_factory=Estate)
    licences: list[Licence] = field(default_factory=list)
    import_: Import = field(default_factory=Import)
    mis: Mis = field(default_factory=Mis)
    domain: Domain = field(default_factory=Domain)
    mail: Mail = field(default_factory=Mail)
    notify: Notify = field(default_factory=Notify)
    state: State = field(default_factory=State)
    report: Report = field(default_factory=Report)
    source: str = ""  # the file it came from, for messages
    # A trust's school ([schools.KEY], resolved by Trust.config): not keys of the file's top level.
    school_key: str | None = field(default=None, metadata={"internal": True})
    technicians: list[str] = field(default_factory=list, metadata={"internal": True})
    school_keys: list[str] = field(default_factory=list, metadata={"internal": True})  # every school in the trust
    # The trust's schools in this school's directory (same url): KEY -> base_dn, this one's too; and the
    # trust-wide [directory] base_dn when that is the same directory: where a person of two schools is sought.
    directory_schools: dict[str, str] = field(default_factory=dict, metadata={"internal": True})
    trust_base_dn: str = field(default="", metadata={"internal": True})

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

    def role_ou(self, name: str) -> tuple[str, str]:
        """(DN, config key) where new accounts of this role go: the role's ou, else directory.staff_ou."""
        role = self.roles[name]
        if role.ou is not None:
            return self.dn(role.ou), f"roles.{name}.ou"
        return self.dn(self.directory.staff_ou), "directory.staff_ou"

    def system_key(self, key: str) -> str:
        """KEY as the config spells it: case-insensitive; an unknown key is refused with the closest ones."""
        if key in self.systems:
            return key
        folded = {k.casefold(): k for k in self.systems}
        if key.casefold() in folded:
            return folded[key.casefold()]
        import difflib

        from .errors import NotFoundError

        close = difflib.get_close_matches(key.casefold(), list(folded), n=3, cutoff=0.6)
        known = ", ".join(self.systems) or "none configured"
        hint = f"did you mean {' or '.join(folded[c] for c in close)}?" if close else None
        raise NotFoundError(f"unknown system {key!r} (known: {known})", hint=hint)

    def system(self, key: str) -> System:
        return self.systems[self.system_key(key)]

    def role(self, name: str) -> Role:
        from .errors import NotFoundError

        try:
            return self.roles[name]
        except KeyError:
            known = ", ".join(self.roles) or "none configured"
            raise NotFoundError(f"unknown role {name!r} (known: {known})") from None


# TOML key -> dataclass field where the key is a Python keyword
_RENAMES = {"import": "import_", "from": "from_"}


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
            bad = next((ch for ch in value if _is_control(ch)), None)
            if bad is not None:
                raise ConfigError(f"{src}: {path} holds a control character ({bad!r}); write it without one")
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
            if not math.isfinite(value):
                raise ConfigError(f"{src}: {path} must be a finite number (got {value})")
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


# The annotations are strings (from __future__ import annotations): resolving them compiles each one, which a
# trust's config did again for every school (--all-schools) and every table. The classes do not change.
_type_hints = functools.cache(typing.get_type_hints)


def _build(cls: Any, data: dict[str, Any], path: str, src: str) -> Any:
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source" and not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _RENAMES.get(key, key)
        dotted = f"{path}.{key}" if path else key
        if name not in fields:
            known = ", ".join(sorted(k.rstrip("_") for k in fields))
            raise ConfigError(f"{src}: unknown key {dotted!r} (expected one of: {known})")
        kwargs[name] = _convert(hints[name], value, dotted, src)
        _check_range(fields[name], kwargs[name], dotted, src)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            dotted = f"{path}.{name}" if path else name
            raise ConfigError(f"{src}: missing required key {dotted!r} ({_type_name(hints[name])})")
    return cls(**kwargs)


def _is_control(ch: str) -> bool:
    """C0/C1 controls (terminal escapes among them), but not tab or newline (free text may hold them)."""
    return ch not in "\t\n" and (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F)


def _check_range(f: dataclasses.Field, value: Any, path: str, src: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    lo, hi = f.metadata.get("range") or (_INT_RANGE if isinstance(value, int) else _FLOAT_RANGE)
    if not lo <= value <= hi:
        raise ConfigError(f"{src}: {path} must be from {_num(lo)} to {_num(hi)} (got {value!r})")


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else str(x)


def default_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("aupctl")) / "aupctl.toml"


def resolve_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return default_config_path()


def parse(text: str, source: str = "<config>", school: str | None = None) -> Config:
    """The Config of the file's one school, or of [schools.SCHOOL] in a trust's config (paths not anchored)."""
    return parse_trust(text, source).config(school)


def _parse_config(data: dict[str, Any], source: str) -> Config:
    cfg = _build(Config, data, "", source)
    cfg = dataclasses.replace(cfg, source=source)
    _check(cfg)
    return cfg


def load(explicit: str | None = None, school: str | None = None) -> Config:
    """The config file's Config; in a trust's config, that of school SCHOOL (else $AUPCTL_SCHOOL)."""
    if school is None:
        school = os.environ.get(ENV_SCHOOL) or None
    return load_trust(explicit).config(school)


def load_trust(explicit: str | None = None) -> Trust:
    from .errors import InputError
    from .files import read_bounded

    path = resolve_path(explicit)
    if not path.exists():
        raise ConfigError(
            f"no config file at {path}",
            hint="copy config.example.toml there, pass --config PATH, set AUPCTL_CONFIG, or try `aupctl sandbox start`",
        )
    try:
        text = read_bounded(path, CONFIG_MAX_BYTES).decode("utf-8")
    except InputError as exc:
        raise ConfigError(f"cannot read config file {exc.message}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    # Relative paths in the config are relative to the config file, so a copied directory still works.
    return parse_trust(text, str(path), base=path.parent)


# -- a trust: many schools in one config ([schools.KEY] over trust-wide defaults; docs/trust.md) --
ENV_SCHOOL = "AUPCTL_SCHOOL"
# A school key names its store (a file suffix, a PostgreSQL schema): lower case, digits, _ and -.
_SCHOOL_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class SchoolSection:
    """[schools.KEY]: what differs at one school of a trust; everything else is the top level's."""

    name: str | None = None  # default: the key
    aup_version: str | None = None
    aup_text: str | None = None
    state_path: str | None = None  # default: [state] path with -KEY before its suffix
    technicians: list[str] = field(default_factory=list)  # OS user names (or "group:NAME"); [] = anyone


# Tables a [schools.KEY] may hold: merged key by key (roles and systems name by name) over the trust's.
SCHOOL_TABLES = (
    "directory", "accounts", "access", "roles", "systems", "passwords", "laptops", "import", "mis", "domain", "report", "estate", "mail", "notify",
)
_TOP_KEYS = ("school", "state", "licences", *SCHOOL_TABLES)  # where a message's dotted key may start


def _merged(base: Any, over: Any) -> Any:
    """`over` on top of `base`: tables merged key by key, any other value (lists too) replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merged(base.get(k), v)
        return out
    return over


def _suffixed(path: str, key: str) -> str:
    """state.db -> state-KEY.db: a school's own file beside the trust-wide one."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{key}{p.suffix}"))


@dataclass
class Trust:
    """A config file: one school (no [schools.*] tables, as before) or a trust's schools."""

    source: str
    data: dict[str, Any]  # the top level, without [schools]
    schools: dict[str, dict[str, Any]]  # KEY -> its [schools.KEY] table, as written
    sections: dict[str, SchoolSection]
    base: Path | None = None  # the config file's folder: relative paths are anchored there

    @property
    def keys(self) -> list[str]:
        return list(self.schools)

    def pick(self, school: str | None) -> str | None:
        """The school a run is for: the one named, else the only one; None for a config of one school."""
        src = self.source
        known = ", ".join(self.schools)
        if not self.schools:
            if school:
                raise ConfigError(
                    f"{src}: --school {school!r} (or AUPCTL_SCHOOL) given, but this config has no [schools.*] "
                    "tables: it is one school",
                    hint="leave out --school and unset AUPCTL_SCHOOL, or add [schools.KEY] tables (docs/trust.md)",
                )
            return None
        if not school:
            if len(self.schools) == 1:
                return next(iter(self.schools))
            raise ConfigError(
                f"{src}: this config has {len(self.schools)} schools ({known}): say which with --school KEY "
                "or AUPCTL_SCHOOL",
                hint="read-only jobs also take --all-schools (access review, password audit, laptop audit)",
            )
        if school not in self.schools:
            raise ConfigError(f"{src}: unknown school {school!r} (known: {known})")
        return school

    def config(self, school: str | None = None) -> Config:
        key = self.pick(school)
        if key is None:
            cfg = _parse_config(self.data, self.source)
        else:
            try:
                cfg = _parse_config(self._school_data(key), self.source)
            except ConfigError as exc:
                raise ConfigError(self._name_school_key(exc.message, key), hint=exc.hint) from None
            section = self.sections[key]
            cfg = dataclasses.replace(cfg, school_key=key, technicians=list(section.technicians), school_keys=self.keys)
            cfg = dataclasses.replace(cfg, **self._same_directory(cfg))
        return _anchor_paths(cfg, self.base) if self.base is not None else cfg

    def _same_directory(self, cfg: Config) -> dict[str, Any]:
        """directory_schools and trust_base_dn for cfg's school: the schools (and the trust-wide base) whose
        [directory] url is this school's, read from the merged tables (no other school's config parsed)."""

        def urls(d: Any) -> list[str]:
            u = d.get("url") if isinstance(d, dict) else None
            return [u.lower()] if isinstance(u, str) else [str(x).lower() for x in u] if isinstance(u, list) else []

        mine = [u.lower() for u in cfg.directory.url]
        schools: dict[str, str] = {}
        for key in self.schools:
            d = _merged(self.data.get("directory", {}), self.schools[key].get("directory", {}))
            if urls(d) == mine and isinstance(d.get("base_dn"), str):
                schools[key] = d["base_dn"]
        top = self.data.get("directory", {})
        base = top.get("base_dn") if urls(top) == mine and isinstance(top.get("base_dn"), str) else ""
        return {"directory_schools": schools, "trust_base_dn": base}

    def _school_data(self, key: str) -> dict[str, Any]:
        raw, section = self.schools[key], self.sections[key]
        data = {k: v for k, v in self.data.items()}
        for table in SCHOOL_TABLES:
            if table in raw:
                data[table] = _merged(self.data.get(table, {}), raw[table])
        if "licences" in raw:
            data["licences"] = raw["licences"]  # a school's own licences replace the trust's list
        school = dict(self.data.get("school", {}))
        school["name"] = section.name or key
        for k in ("aup_version", "aup_text"):
            if getattr(section, k) is not None:
                school[k] = getattr(section, k)
        data["school"] = school
        state = dict(self.data.get("state", {}))
        if section.state_path:
            state["path"] = section.state_path
        else:  # each school's records in a file of its own
            from .state import default_state_path

            top = state.get("path")
            state["path"] = _suffixed(top if isinstance(top, str) and top else str(default_state_path()), key)
        if isinstance(state.get("checkpoints"), str) and state["checkpoints"]:
            state["checkpoints"] = _suffixed(state["checkpoints"], key)
        data["state"] = state
        return data

    def _name_school_key(self, text: str, key: str) -> str:
        """A message about the merged config names the key where it is written: schools.KEY.directory.base_dn
        when the school's table set it, else the trust-wide key, saying for which school."""
        pattern = r"(?<![\w.\[])((?:" + "|".join(_TOP_KEYS) + r")(?:\.[\w-]+|\[\d+\])*)(?![\w-])"
        start = len(self.source) + 1 if text.startswith(f"{self.source}:") else 0  # not in the file's name
        m = re.compile(pattern).search(text, start)
        if m is None:
            return f"{text} (school {key})"
        path = m.group(1)
        parts = re.sub(r"\[\d+\]", "", path).split(".")
        raw: Any = self.schools[key]
        if parts[0] == "school" and len(parts) > 1:
            written = parts[1] in raw
            where = f"schools.{key}.{path.split('.', 1)[1]}"
        elif parts[:2] == ["state", "path"]:
            written = "state_path" in raw
            where = f"schools.{key}.state_path"
        else:
            node, written = raw, True
            for part in parts:
                if not isinstance(node, dict) or part not in node:
                    written = False
                    break
                node = node[part]
            where = f"schools.{key}.{path}"
        if written:
            return text[: m.start(1)] + where + text[m.end(1) :]
        end = m.end(1) + (1 if text[m.end(1) : m.end(1) + 1] in ("'", '"') else 0)  # after a closing quote
        return text[:end] + f" (trust-wide, for school {key})" + text[end:]


def parse_trust(text: str, source: str = "<config>", base: Path | None = None) -> Trust:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    schools = data.pop("schools", {})
    if not isinstance(schools, dict):
        raise ConfigError(f"{source}: schools must be tables [schools.KEY] (got {type(schools).__name__})")
    sections: dict[str, SchoolSection] = {}
    allowed = [f.name for f in dataclasses.fields(SchoolSection)] + [*SCHOOL_TABLES, "licences"]
    for key, raw in schools.items():
        path = f"schools.{key}"
        if not _SCHOOL_KEY.match(key):
            raise ConfigError(
                f"{source}: [{path}]: a school key is lower-case letters, digits, _ and - (at most 40), "
                f"e.g. [schools.st-marys] (got {key!r})"
            )
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: {path} must be a table [{path}]")
        for k, v in raw.items():
            if k not in allowed:
                raise ConfigError(f"{source}: unknown key '{path}.{k}' (expected one of: {', '.join(sorted(allowed))})")
            if k in SCHOOL_TABLES and not isinstance(v, dict):
                raise ConfigError(f"{source}: {path}.{k} must be a table [{path}.{k}] (got {type(v).__name__})")
        plain = {k: v for k, v in raw.items() if k not in SCHOOL_TABLES and k != "licences"}
        sections[key] = _build(SchoolSection, plain, path, source)
    schemas: dict[str, str] = {}  # a school's PostgreSQL schema is its key with _ for - (aupctl/schools.py)
    for key in sections:
        other = schemas.setdefault(key.replace("-", "_"), key)
        if other != key:
            raise ConfigError(
                f"{source}: [schools.{other}] and [schools.{key}] would share one store (their keys differ only "
                "by - and _): rename one"
            )
        for i, who in enumerate(sections[key].technicians):
            if not who.strip() or (who.startswith("group:") and not who[6:].strip()):
                raise ConfigError(f'{source}: {path}.technicians[{i}] is empty; write an OS user name or "group:NAME"')
    seen: dict[str, str] = {}
    for key, section in sections.items():  # two schools in one store would mix their records
        if section.state_path:
            if section.state_path in seen:
                raise ConfigError(
                    f"{source}: schools.{key}.state_path is the same file as schools.{seen[section.state_path]}"
                    f".state_path ({section.state_path!r}): each school keeps its records in a store of its own"
                )
            seen[section.state_path] = key
    return Trust(source, data, schools, sections, base)


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
        ca_file=_anchor(base, cfg.state.ca_file),
        password_file=_anchor(base, cfg.state.password_file),
    )
    access = dataclasses.replace(cfg.access, recertify_dir=_anchor(base, cfg.access.recertify_dir))
    mail = dataclasses.replace(
        cfg.mail,
        password_file=_anchor(base, cfg.mail.password_file),
        ca_file=_anchor(base, cfg.mail.ca_file),
        templates=_anchor(base, cfg.mail.templates or "templates"),
    )
    return dataclasses.replace(
        cfg, directory=d, school=school, laptops=laptops, state=state, access=access, mail=mail
    )


EMAIL_FIELDS = ("username", "first_name", "last_name")
POSIX_FIELDS = ("username",)  # accounts.home_directory, accounts.login_shell


def _check_dn(src: str, key: str, value: str, *, relative: bool = True, example: str = "ou=Staff") -> None:
    """A DN (or an OU written relative to base_dn) that ldap3 can parse; else the key is named."""
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    if relative and value == "":
        return  # the base itself
    try:
        parts = parse_dn(value)
    except (LDAPInvalidDnError, ValueError, IndexError) as exc:
        raise ConfigError(f'{src}: {key} is not a DN ({value!r}: {exc}); write it as e.g. "{example}"') from None
    if not parts or any(not attr or not attr.strip() for attr, _, _ in parts):
        raise ConfigError(f'{src}: {key} is not a DN ({value!r}); write it as e.g. "{example}"')


def _check_dns(cfg: Config) -> None:
    src, d = cfg.source, cfg.directory
    if not d.base_dn.strip():
        raise ConfigError(f'{src}: directory.base_dn is empty; write the naming context, e.g. "dc=school,dc=example"')
    _check_dn(src, "directory.base_dn", d.base_dn, relative=False, example="dc=school,dc=example")
    # On AD the bind account may be written as a UPN (user@domain) or DOMAIN\\user.
    if not (d.flavour == "ad" and ("@" in d.bind_dn or "\\" in d.bind_dn) and "=" not in d.bind_dn):
        _check_dn(
            src, "directory.bind_dn", d.bind_dn, relative=False, example="cn=aupctl,ou=Service,dc=school,dc=example"
        )
    for key in ("staff_ou", "leavers_ou", "groups_ou"):
        _check_dn(src, f"directory.{key}", getattr(d, key))
    for i, g in enumerate(d.privileged_groups):
        if "=" in g:
            _check_dn(src, f"directory.privileged_groups[{i}]", g)
    if cfg.passwords.ppolicy_default:
        _check_dn(src, "passwords.ppolicy_default", cfg.passwords.ppolicy_default, example="cn=default,ou=policies")
    for name, role in cfg.roles.items():
        if role.ou is not None:
            _check_dn(src, f"roles.{name}.ou", role.ou)
        for i, g in enumerate(role.groups):
            if "=" in g:
                _check_dn(src, f"roles.{name}.groups[{i}]", g)
    for key, system in cfg.systems.items():
        if system.group and "=" in system.group:
            _check_dn(src, f"systems.{key}.group", system.group)


_EMAIL_LITERAL = re.compile(r"^[A-Za-z0-9._%+@-]*$")
_SUFFIX = re.compile(r"^@?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _check_templates(cfg: Config) -> None:
    from . import templates

    src, a = cfg.source, cfg.accounts
    if a.email:
        try:
            used = templates.fields(a.email, EMAIL_FIELDS)
        except ValueError as exc:
            raise ConfigError(f"{src}: accounts.email: {exc}") from None
        literal = templates.literals(a.email)
        if "username" not in used or literal.count("@") != 1 or not _EMAIL_LITERAL.match(literal):
            raise ConfigError(
                f"{src}: accounts.email must be an address template with {{username}} and one '@', "
                f'e.g. "{{username}}@school.example" (got {a.email!r})'
            )
    if a.upn_suffix is not None and not _SUFFIX.match(a.upn_suffix):
        raise ConfigError(
            f'{src}: accounts.upn_suffix must be a domain name such as "school.example" (got {a.upn_suffix!r})'
        )


def _check(cfg: Config) -> None:
    """Cross-key rules a type check cannot see."""
    src = cfg.source
    _check_dns(cfg)
    _check_templates(cfg)
    if not cfg.directory.url:
        raise ConfigError(f"{src}: directory.url must name at least one ldap:// or ldaps:// URL")
    for i, url in enumerate(cfg.directory.url):
        if not url.lower().startswith(("ldap://", "ldaps://")):
            raise ConfigError(f"{src}: directory.url[{i}] must start with ldap:// or ldaps:// (got {url!r})")
        try:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            parts, port_ok = None, False
        if parts is None or not parts.hostname or not port_ok or any(c.isspace() for c in url):
            raise ConfigError(f"{src}: directory.url[{i}] must be ldaps://HOST or ldaps://HOST:PORT (got {url!r})")
    for name, role in cfg.roles.items():
        for key in role.systems:
            if key not in cfg.systems:
                raise ConfigError(
                    f"{src}: roles.{name}.systems names {key!r}, which is not a [systems.*] table "
                    f"(known: {', '.join(cfg.systems) or 'none'})"
                )
    _check_groups_and_posix(cfg)
    _check_mail(cfg)
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
    if cfg.state.url:
        from .pgstore import check_url

        try:
            check_url(cfg.state.url)
        except ConfigError as exc:
            raise ConfigError(f"{src}: {exc.message}", hint=exc.hint) from None
        if not cfg.state.ca_file and not cfg.state.allow_insecure:
            raise ConfigError(
                f"{src}: state.url needs state.ca_file (the CA of the server's certificate; sslmode=verify-full)",
                hint="or state.allow_insecure = true on a trusted network",
            )
    for i, lic in enumerate(cfg.licences):
        if lic.expires:
            try:
                datetime.date.fromisoformat(lic.expires)
            except ValueError:
                raise ConfigError(
                    f"{src}: licences[{i}].expires must be a date YYYY-MM-DD (got {lic.expires!r})"
                ) from None


def _check_groups_and_posix(cfg: Config) -> None:
    from . import templates

    src, acc = cfg.source, cfg.accounts
    if acc.uid_range and (len(acc.uid_range) != 2 or acc.uid_range[0] > acc.uid_range[1]):
        raise ConfigError(f"{src}: accounts.uid_range must be [min, max] with min <= max (got {acc.uid_range})")
    for key in ("home_directory", "login_shell"):
        try:
            templates.fields(getattr(acc, key), POSIX_FIELDS)
        except ValueError as exc:
            raise ConfigError(f"{src}: accounts.{key}: {exc}") from None
    if cfg.directory.placeholder_member is not None:
        _check_dn(src, "directory.placeholder_member", cfg.directory.placeholder_member, example="cn=nobody,ou=Groups")


def _check_mail(cfg: Config) -> None:
    """[mail], [notify] and approvers written `Name <address>`: addresses that parse, no clear text by accident."""
    from .mail.address import parse_address

    src, m = cfg.source, cfg.mail
    if m.security == "none" and not m.allow_insecure:
        raise ConfigError(
            f'{src}: mail.security = "none" sends the password and every letter in clear text',
            hint='use "starttls" or "tls", or set mail.allow_insecure = true for a relay on this machine',
        )
    if m.host and not m.from_:
        raise ConfigError(f'{src}: mail.from is missing: write the sender, e.g. "ICT Support <ict@school.example>"')
    checks = [("mail.from", m.from_), ("mail.reply_to", m.reply_to), ("notify.technician", cfg.notify.technician)]
    for key, value in checks:
        if value:
            try:
                if not parse_address(value).email:
                    raise ValueError("it has no address: write it as Name <address>")
            except ValueError as exc:
                raise ConfigError(f"{src}: {key} = {value!r} is not a mail address: {exc}") from None
    for key, system in cfg.systems.items():
        for i, approver in enumerate(system.approvers):
            try:
                parse_address(approver)
            except ValueError as exc:
                raise ConfigError(f"{src}: systems.{key}.approvers[{i}] = {approver!r}: {exc}") from None


# -- warnings: things config check prints but does not refuse --
_REGEX_HINTS = re.compile(r"^\^|(?<!\\)\$$|\\[dwsbDWSB]|\.\*|\.\+|\)\?|\(\?|\{\d+(,\d*)?\}|\|")


def looks_like_regex(pattern: str) -> bool:
    """A glob written as a regular expression (^supply\\d*$ matches nothing as a glob)."""
    return bool(_REGEX_HINTS.search(pattern))


def warnings(cfg: Config) -> list[str]:
    """What `config check` warns about without failing: each names its key."""
    out: list[str] = []
    for name, role in cfg.roles.items():
        if role.ou is None and not role.groups:
            out.append(
                f"roles.{name} has neither ou nor groups: only accounts recorded with `aupctl staff set-role` "
                "(or created by aupctl) will have this role"
            )
    globs = [
        ("passwords.shared_account_patterns", cfg.passwords.shared_account_patterns),
        ("laptops.approved_software", cfg.laptops.approved_software),
        ("laptops.needs_licence", cfg.laptops.needs_licence),
    ]
    globs += [(f"licences[{i}].match", lic.match) for i, lic in enumerate(cfg.licences)]
    for key, patterns in globs:
        for i, pattern in enumerate(patterns):
            if looks_like_regex(pattern):
                out.append(
                    f"{key}[{i}] = {pattern!r} looks like a regular expression, but it is a glob "
                    "(* any text, ? one character, [abc] one of): as a glob it may match nothing"
                )
    groups = [(f"systems.{k}.group", s.group) for k, s in cfg.systems.items() if s.group]
    groups += [(f"directory.privileged_groups[{i}]", g) for i, g in enumerate(cfg.directory.privileged_groups)]
    groups += [(f"roles.{n}.groups[{i}]", g) for n, r in cfg.roles.items() for i, g in enumerate(r.groups)]
    for key, value in groups:
        if "=" in value and _outside_base(value, cfg.directory.base_dn):
            out.append(
                f"{key} = {value!r} names a domain outside base_dn ({cfg.directory.base_dn}): aupctl reads and "
                "writes only under base_dn, so it will look for it as " + repr(cfg.group_dn(value))
            )
    return out


def _outside_base(value: str, base: str) -> bool:
    """A full DN with dc= parts that do not end in base_dn (aupctl would append base_dn to it)."""

    def norm(x: str) -> str:
        return ",".join(p.strip().lower() for p in x.split(","))

    v, b = norm(value), norm(base)
    return "dc=" in v and not (v == b or v.endswith("," + b))
