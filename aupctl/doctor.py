"""`aupctl doctor`: each step from config to a read of the staff OU, as rows of checks."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import AupctlError


@dataclass
class Check:
    check: str
    ok: bool
    detail: str


def run(config_path: str | None) -> list[Check]:
    from .config import load

    checks: list[Check] = []
    try:
        cfg = load(config_path)
    except AupctlError as exc:
        return [Check("config", False, exc.message)]
    checks.append(Check("config", True, f"{cfg.source}: {cfg.school.name}, {cfg.directory.flavour}"))

    from .credentials import bind_password, keyring_status

    usable, what = keyring_status(cfg.directory.bind_dn)
    checks.append(Check("keyring", True, what if usable else f"not usable ({what}); file or env variable needed"))
    try:
        password = bind_password(cfg.directory.bind_dn, cfg.directory.bind_password_file)
        checks.append(Check("credentials", True, "bind password found"))
    except AupctlError as exc:
        checks.append(Check("credentials", False, exc.message))
        password = None

    from .state import State

    try:
        st = State(cfg.state.path)
        n, broken = st.verify_audit()
        st.close()
        checks.append(
            Check(
                "state store",
                broken is None,
                f"{st.path}: {n} audit entries" + (f"; chain broken at {broken.id}" if broken else ""),
            )
        )
    except AupctlError as exc:
        checks.append(Check("state store", False, exc.message))

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
        for label, ou in (
            ("staff ou", cfg.directory.staff_ou),
            ("groups ou", cfg.directory.groups_ou),
            ("leavers ou", cfg.directory.leavers_ou),
        ):
            dn = cfg.dn(ou)
            checks.append(Check(label, d.exists(dn), f"{dn} " + ("readable" if d.exists(dn) else "not found")))
        n = sum(1 for _ in d.flavour.iter_accounts(d, with_groups=False))
        checks.append(Check("read access", n > 0, f"{n} accounts readable under the staff OU"))
        missing = [k for k, s in cfg.systems.items() if s.group and not d.exists(cfg.group_dn(s.group))]
        checks.append(
            Check("system groups", not missing, "all found" if not missing else "missing: " + ", ".join(missing))
        )
    except AupctlError as exc:
        step = "bind" if "bind" in exc.message else "reach"
        checks.append(Check(step, False, exc.message))
    finally:
        d.close()
    return checks
