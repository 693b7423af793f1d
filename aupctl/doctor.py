"""`aupctl doctor`: each step from config to a read of the staff OU, as rows of checks.

Each row has a status: `ok`, `warn` (listed, does not fail: e.g. an empty staff OU before September),
`fail`, or `info` (nothing wrong found, something only the technician can find out). Then the bind
account's rights per job (section "rights"): read on AD from allowedAttributesEffective /
allowedChildClassesEffective; on OpenLDAP they can only be learnt by trying (docs/your-directory.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, AupctlError

if TYPE_CHECKING:
    from .config import Config
    from .directory import Directory
    from .state import State

STATUSES = ("ok", "warn", "fail", "info")
# Checks whose failure means the config names what the directory does not hold (exit 2, like a config error).
CONFIG_MISMATCH = {"staff ou", "groups ou", "leavers ou", "role ous", "system groups"}


@dataclass
class Check:
    check: str
    ok: bool  # False only for `fail`: a warning or a note does not fail doctor
    detail: str
    status: str = ""  # ok | warn | fail | info ("" = from ok)
    section: str = "checks"  # "checks", or "rights" (the job x right table)
    job: str = ""  # rights rows: the job, the right and where
    right: str = ""
    target: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = "ok" if self.ok else "fail"
        self.ok = self.status != "fail"


def warn(check: str, detail: str) -> Check:
    return Check(check, True, detail, "warn")


def run(config_path: str | None) -> list[Check]:
    from .config import load

    checks: list[Check] = []
    try:
        cfg = load(config_path)
    except AupctlError as exc:
        return [Check("config", False, exc.message)]
    checks.append(Check("config", True, f"{cfg.source}: {cfg.school.name}, {cfg.directory.flavour}"))
    from .config import warnings

    for text in warnings(cfg):
        checks.append(warn("config", text))

    from .credentials import bind_password, keyring_status

    usable, what = keyring_status(cfg.directory.bind_dn)
    checks.append(Check("keyring", True, what if usable else f"not usable ({what}); file or env variable needed"))
    try:
        password = bind_password(cfg.directory.bind_dn, cfg.directory.bind_password_file)
        checks.append(Check("credentials", True, "bind password found"))
    except AupctlError as exc:
        checks.append(Check("credentials", False, exc.message))
        password = None

    checks.extend(state_checks(cfg))

    if password is None:
        return checks
    from .directory import Directory

    d = Directory(cfg, password)
    try:
        t0 = time.monotonic()
        d.connect()
        ms = (time.monotonic() - t0) * 1000
        secure = "TLS verified" if (d.url or "").lower().startswith("ldaps://") or cfg.directory.start_tls else "NO TLS"
        checks.append(Check("reach", True, f"{d.url} answered"))
        checks.append(
            Check(
                "tls",
                "NO TLS" not in secure,
                secure + (f" with {cfg.directory.ca_file}" if cfg.directory.ca_file else ""),
            )
        )
        checks.append(Check("bind", True, f"bound as {cfg.directory.bind_dn} in {ms:.0f} ms"))
        checks.extend(_directory_checks(cfg, d))
        checks.extend(rights(cfg, d))
    except AupctlError as exc:
        # a ca_file that is no certificate is the config's fault (exit 2, as for every other command)
        step = "config" if "ca_file" in exc.message else "bind" if "bind" in exc.message else "reach"
        checks.append(Check(step, False, exc.message))
    finally:
        d.close()
    return checks


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed (warnings included), 3 reach/TLS/bind, 2 config, credentials, state store or an
    OU or group the config names that the directory does not hold, 1 anything else."""
    failed = {c.check for c in checks if c.status == "fail"}
    if failed & {"reach", "tls", "bind"}:
        return EXIT_UNREACHABLE
    if failed & ({"config", "credentials", "state store", "audit key"} | CONFIG_MISMATCH):
        return EXIT_USAGE
    return EXIT_FINDINGS if failed else EXIT_OK


# -- the state store: every check of it is listed here, in one place --
def _audit_chain(cfg: Config, st: State) -> list[Check]:
    """The whole `log verify` (keyed chain, triggers, tables, checkpoints) and the audit key's fingerprint."""
    try:
        from . import auditlog
    except ImportError:  # pragma: no cover - a store without the keyed audit log
        n, broken = st.verify_audit()
        detail = f"{st.path}: {n} audit entries" + (f"; chain broken at {broken.id}" if broken else "")
        return [Check("state store", broken is None, detail)]
    v = auditlog.verify_for(cfg, st)
    detail = f"{st.path}: " + (v.summary() if v.intact else "; ".join(v.findings()))
    ok, key = auditlog.audit_key_status(cfg)
    return [Check("state store", v.intact, detail), Check("audit key", ok, key)]


def _integrity(cfg: Config, st: State) -> list[Check]:
    """SQLite's quick_check of every page: damaged pages fail here, not in the middle of a job."""
    problems = st.integrity_check()
    if problems:
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        return [Check("state store", False, f"{st.path} is damaged: {shown}; restore it from a backup")]
    return [Check("store pages", True, f"{st.path}: SQLite quick_check ok")]


# Every check of the state store, in order: each takes (config, open store) and returns rows. Add new ones here.
STATE_CHECKS: list[Callable[[Config, State], list[Check]]] = [_integrity, _audit_chain]


def state_checks(cfg: Config) -> list[Check]:
    from .state import open_store

    try:
        from .auditlog import attach

        st = attach(open_store(cfg.state), cfg)
    except AupctlError as exc:
        return [Check("state store", False, exc.message)]
    except Exception as exc:  # noqa: BLE001 - a broken store is a finding of doctor, never a traceback
        return [Check("state store", False, f"cannot open the state store: {type(exc).__name__}: {exc}")]
    out: list[Check] = []
    try:
        for check in STATE_CHECKS:
            try:
                out.extend(check(cfg, st))
            except AupctlError as exc:
                out.append(Check("state store", False, exc.message))
            except Exception as exc:  # noqa: BLE001
                out.append(Check("state store", False, f"{type(exc).__name__}: {exc}"))
    finally:
        st.close()
    return out


# -- what the config names, against what the directory holds --
def _directory_checks(cfg: Config, d: Directory) -> list[Check]:
    out: list[Check] = []
    for label, key in (("staff ou", "staff_ou"), ("groups ou", "groups_ou"), ("leavers ou", "leavers_ou")):
        dn = cfg.dn(getattr(cfg.directory, key))
        found = d.exists(dn)
        out.append(
            Check(
                label,
                found,
                f"{dn} readable" if found else f"{dn} not found (directory.{key}): create it or fix the key",
            )
        )
    missing_ous = [
        f"roles.{name}.ou ({cfg.dn(role.ou)})"
        for name, role in cfg.roles.items()
        if role.ou and not d.exists(cfg.dn(role.ou))
    ]
    if any(role.ou for role in cfg.roles.values()):
        out.append(
            Check(
                "role ous", not missing_ous, "all found" if not missing_ous else "not found: " + ", ".join(missing_ous)
            )
        )
    staff = cfg.dn(cfg.directory.staff_ou)
    n = sum(1 for _ in d.flavour.iter_accounts(d, with_groups=False)) if d.exists(staff) else 0
    if n:
        out.append(Check("read access", True, f"{n} accounts readable under the staff OU"))
    else:
        out.append(
            warn(
                "read access",
                f"no accounts under the staff OU {staff}: empty (a school setting up before September?), or the "
                "bind account may not read them",
            )
        )
    missing = [
        f"systems.{k}.group ({cfg.group_dn(s.group)})"
        for k, s in cfg.systems.items()
        if s.group and not d.exists(cfg.group_dn(s.group))
    ]
    out.append(Check("system groups", not missing, "all found" if not missing else "not found: " + ", ".join(missing)))
    return out


# -- the bind account's rights, per job --
def _targets(cfg: Config) -> dict[str, Any]:
    role_ous: dict[str, str] = {}
    for name in cfg.roles:
        dn, _ = cfg.role_ou(name)
        role_ous.setdefault(dn, name)
    if not role_ous:
        role_ous[cfg.dn(cfg.directory.staff_ou)] = "staff_ou"
    role_groups = list(dict.fromkeys(cfg.group_dn(g) for r in cfg.roles.values() for g in r.groups))
    system_groups = list(dict.fromkeys(cfg.group_dn(s.group) for s in cfg.systems.values() if s.group))
    return {"role_ous": role_ous, "role_groups": role_groups, "system_groups": system_groups}


def _right(job: str, right: str, target: str, status: str, detail: str) -> Check:
    return Check("rights", status != "fail", detail, status, "rights", job, right, target)


def rights(cfg: Config, d: Directory) -> list[Check]:
    """The rights table (section "rights") and one summary row (check "bind rights")."""
    t = _targets(cfg)
    rows = _merge(_ad_rights(cfg, d, t) if cfg.directory.flavour == "ad" else _openldap_rights(cfg, t))
    no = [r for r in rows if r.status == "warn"]
    unknown = [r for r in rows if r.status == "info"]
    if no:
        summary = warn(
            "bind rights",
            f"{len(no)} right(s) a job needs are missing (see the rights table): "
            + "; ".join(sorted({f"{r.job}: {r.right}" for r in no})),
        )
    elif cfg.directory.flavour == "ad":
        summary = Check(
            "bind rights",
            True,
            f"every right the jobs need that AD shows is there ({len(rows) - len(unknown)}); "
            f"{len(unknown)} cannot be read and are learnt by trying",
        )
    else:
        summary = Check(
            "bind rights",
            True,
            "OpenLDAP does not show a bind's write rights: learn them by trying (slapacl on the server, or a test "
            "account; docs/your-directory.md)",
            "info",
        )
    return [summary, *rows]


def _merge(rows: list[Check]) -> list[Check]:
    """One row per job and right: the same right on seven groups is one line, naming those it lacks."""
    order: dict[tuple[str, str], list[Check]] = {}
    for r in rows:
        order.setdefault((r.job, r.right), []).append(r)
    out = []
    rank = {"ok": 0, "info": 1, "warn": 2, "fail": 3}
    for (job, right), same in order.items():
        if len(same) == 1:
            out.append(same[0])
            continue
        worst = max(same, key=lambda r: rank[r.status]).status
        lacking = [r.target for r in same if r.status == worst]
        if worst == "ok":
            detail = f"all {len(same)}: " + "; ".join(r.target for r in same)
        elif worst == "info":
            detail = same[0].detail + " (and the same for: " + "; ".join(r.target for r in same[1:]) + ")"
        else:
            detail = f"{len(lacking)} of {len(same)} lack it: " + "; ".join(r.detail for r in same if r.status == worst)
        target = same[0].target if len(same) == 1 else f"{len(same)} " + ("OUs" if "accounts" in right else "groups")
        out.append(_right(job, right, target, worst, detail))
    return out


def _effective(d: Directory, dn: str, attr: str) -> set[str] | None:
    """allowedAttributesEffective / allowedChildClassesEffective of an entry, lower-cased; None if absent."""
    attrs = d.read(dn, [attr])
    if attrs is None:
        return None
    for key, vals in attrs.items():
        if key.lower() == attr.lower():
            return {str(v).lower() for v in vals}
    return set()


def _ad_rights(cfg: Config, d: Directory, t: dict[str, Any]) -> list[Check]:
    # Over 80 lines: one table of rights, job by job, each a short call; splitting it would scatter the table.
    rows: list[Check] = []

    def child(job: str, dn: str, why: str) -> None:
        classes = _effective(d, dn, "allowedChildClassesEffective")
        if classes is None:
            rows.append(_right(job, "create accounts", dn, "warn", f"{dn} not found ({why})"))
        elif "user" in classes:
            rows.append(_right(job, "create accounts", dn, "ok", f"may create user objects in {dn} ({why})"))
        else:
            rows.append(_right(job, "create accounts", dn, "warn", f"may NOT create user objects in {dn} ({why})"))

    def member(job: str, gdn: str) -> None:
        attrs = _effective(d, gdn, "allowedAttributesEffective")
        if attrs is None:
            rows.append(_right(job, "write member", gdn, "warn", f"{gdn} not found"))
        else:
            ok = "member" in attrs
            rows.append(
                _right(
                    job,
                    "write member",
                    gdn,
                    "ok" if ok else "warn",
                    f"{'may' if ok else 'may NOT'} write member of {gdn}",
                )
            )

    for dn, role in t["role_ous"].items():
        child("staff import", dn, f"new accounts of {role}")
    for gdn in t["role_groups"]:
        member("staff import", gdn)
    for gdn in t["system_groups"]:
        member("access grant/revoke/review --fix", gdn)

    # One account under the staff OU stands for all: the rights on it are the rights on its OU's accounts.
    sample = next(iter(d.search(cfg.dn(cfg.directory.staff_ou), d.flavour.person_filter, ["1.1"])), None)
    if sample is None:
        for job, right in (("password reset", "reset passwords"), ("leaver withdraw", "disable accounts")):
            rows.append(
                _right(job, right, "staff accounts", "info", "no account under the staff OU to read the rights of")
            )
    else:
        dn = sample[0]
        attrs = _effective(d, dn, "allowedAttributesEffective") or set()
        for job, right, attr in (
            ("leaver withdraw", "disable accounts", "useraccountcontrol"),
            ("password reset", "force a change at next logon", "pwdlastset"),
        ):
            ok = attr in attrs
            rows.append(
                _right(
                    job,
                    right,
                    dn,
                    "ok" if ok else "warn",
                    f"{'may' if ok else 'may NOT'} write {attr} of staff accounts ({dn})",
                )
            )
        if "unicodepwd" in attrs:
            rows.append(
                _right("password reset", "reset passwords", dn, "ok", f"may write unicodePwd of staff accounts ({dn})")
            )
        else:
            rows.append(
                _right(
                    "password reset",
                    "reset passwords",
                    dn,
                    "info",
                    "the Reset Password extended right is not shown by allowedAttributesEffective: try "
                    "`aupctl password reset` on a test account",
                )
            )
    leavers = cfg.dn(cfg.directory.leavers_ou)
    child("leaver withdraw", leavers, "the move to the leavers OU")
    rows.append(
        _right(
            "leaver withdraw",
            "move out of the staff OUs",
            cfg.dn(cfg.directory.staff_ou),
            "info",
            "Delete (or Delete Child on the OU) is not shown by the effective-rights attributes: try `aupctl leaver "
            "withdraw` on a test account",
        )
    )
    for gdn in t["role_groups"]:
        member("leaver withdraw", gdn)
    return rows


def _openldap_rights(cfg: Config, t: dict[str, Any]) -> list[Check]:
    bind = cfg.directory.bind_dn
    rows: list[Check] = []

    def try_it(job: str, right: str, target: str, what: str) -> None:
        rows.append(
            _right(
                job,
                right,
                target,
                "info",
                f"learn by trying; on the server: slapacl -D '{bind}' -b '{target}' '{what}'",
            )
        )

    for dn in t["role_ous"]:
        try_it("staff import", "create accounts", dn, "children/write")
    for gdn in t["role_groups"]:
        try_it("staff import", "write member", gdn, "member/write")
    for gdn in t["system_groups"]:
        try_it("access grant/revoke/review --fix", "write member", gdn, "member/write")
    staff = cfg.dn(cfg.directory.staff_ou)
    try_it("password reset", "reset passwords", f"uid=SOMEONE,{staff}", "userPassword/write")
    try_it("leaver withdraw", "lock accounts", f"uid=SOMEONE,{staff}", "pwdAccountLockedTime/write")
    try_it("leaver withdraw", "move to the leavers OU", cfg.dn(cfg.directory.leavers_ou), "children/write")
    return rows
