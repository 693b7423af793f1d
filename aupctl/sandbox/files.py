"""The files a sandbox hands to aupctl: DIR/aupctl.toml for its flavour and layout, and bind.pw."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# Linux only (/proc, prctl, flock, Linux daemons). The assert also tells mypy --platform win32 to skip
# the rest of the module, so the package's own imports come after it.
assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from . import school as hb
from .handle import (
    BIND_PW_FILE,
    CONFIG_FILE,
    DEFAULT_LAYOUT,
    SandboxInfo,
    _ad_dn,
)

# --------------------------------------------------------------------------------------------------
# aupctl.toml and the data files


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _qlist(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _layout_shape(flavour: str, layout: str) -> dict[str, Any]:
    """What the config says about where things are: OUs, privileged groups, roles, system groups."""
    ad = flavour == "ad"
    base = hb.AD_BASE_DN if ad else hb.OPENLDAP_BASE_DN
    if layout == "flat":
        return {
            "ous": (hb.FLAT_PEOPLE_OU, hb.FLAT_LEAVERS_OU, hb.FLAT_GROUPS_OU),
            "privileged": [hb.FLAT_IT_ADMINS],
            # roles known by group only: no ou (new accounts go to staff_ou)
            "roles": [(role, None, hb.FLAT_ROLE_GROUPS[role]) for role in hb.STAFF_OUS],
            "group": {k: f"cn={g},{hb.FLAT_SYSTEMS_OU},{base}" for k, g in hb.FLAT_SYSTEM_GROUPS.items()},
        }
    if layout == "nested":
        # Governors all sit in one OU, so that role keeps an ou; the others are spread over sites.
        roles = [(role, _ad_dn(hb.NESTED_ROLE_OUS["governor"]) if role == "governor" else None, hb.ROLE_GROUPS[role])
                 for role in hb.STAFF_OUS]  # fmt: skip
        group = {
            k: f"CN={s['group']},{_ad_dn(hb.NESTED_SYSTEM_OUS[k])},{base}" for k, s in hb.SYSTEMS.items() if s["group"]
        }
        return {
            "ous": tuple(_ad_dn(o) for o in (hb.NESTED_STAFF_OU, hb.NESTED_LEAVERS_OU, hb.NESTED_GROUPS_OU)),
            "privileged": [hb.IT_ADMINS, hb.AD_DOMAIN_ADMINS_DN],
            "roles": roles,
            "group": group,
        }
    return {
        "ous": ("ou=Staff", "ou=Leavers", "ou=Groups"),
        "privileged": [hb.IT_ADMINS, hb.AD_DOMAIN_ADMINS_DN] if ad else [hb.IT_ADMINS],
        "roles": [(role, f"ou={ou},ou=Staff", hb.ROLE_GROUPS[role]) for role, ou in hb.STAFF_OUS.items()],
        "group": {k: s["group"] for k, s in hb.SYSTEMS.items() if s["group"]},
    }


def config_toml(flavour: str, *, url: str, ca_file: str, bind_dn: str, layout: str = DEFAULT_LAYOUT) -> str:
    """The sandbox's aupctl.toml (relative paths are relative to the file's directory)."""
    # Over 80 lines: mostly the file's text itself, one section after another, kept in reading order.
    ad = flavour == "ad"
    base = hb.AD_BASE_DN if ad else hb.OPENLDAP_BASE_DN
    shape = _layout_shape(flavour, layout)
    staff_ou, leavers_ou, groups_ou = shape["ous"]
    privileged = shape["privileged"]
    what = flavour if layout == DEFAULT_LAYOUT else f"{flavour}, layout {layout}"
    out = [
        f"# aupctl sandbox ({what}): {hb.SCHOOL_NAME}, a fictional school. Throwaway; see docs/sandbox.md.",
        "",
        "[school]",
        f"name = {_q(hb.SCHOOL_NAME)}",
        f"aup_version = {_q(hb.AUP_VERSION)}",
        "",
        "[directory]",
        f"flavour = {_q(flavour)}",
        f"url = {_q(url)}",
        f"ca_file = {_q(ca_file)}",
        f"bind_dn = {_q(bind_dn)}",
        f"bind_password_file = {_q(BIND_PW_FILE)}",
        f"base_dn = {_q(base)}",
        f"staff_ou = {_q(staff_ou)}",
        f"leavers_ou = {_q(leavers_ou)}",
        f"groups_ou = {_q(groups_ou)}",
        "timeout = 5",
        f"privileged_groups = {_qlist(privileged)}",
        *([] if ad else ['placeholder_member = "cn=nobody,ou=Groups"  # stands in for an empty groupOfNames']),
        "",
        "[accounts]",
        'username = "{first_initial}{last_name}"',
        "max_length = 20",
        f'email = "{{username}}@{hb.DOMAIN}"',
    ]
    if ad:
        out.append(f"upn_suffix = {_q(hb.DOMAIN)}")
    for role, ou, groups in shape["roles"]:
        out += ["", f"[roles.{role}]"]
        if ou is not None:
            out.append(f"ou = {_q(ou)}")
        out += [f"groups = {_qlist(groups)}", f"systems = {_qlist(hb.ROLE_SYSTEMS[role])}"]
    for key, system in hb.SYSTEMS.items():
        out += ["", f"[systems.{key}]", f"name = {_q(system['name'])}"]
        if key in shape["group"]:
            out.append(f"group = {_q(shape['group'][key])}")
        out.append(f"approvers = {_qlist(system['approvers'])}")
        if "review_days" in system:
            out.append(f"review_days = {system['review_days']}")
        if system.get("instructions"):
            out.append(f"instructions = {_q(system['instructions'])}")
    out += [
        "",
        "[passwords]",
        "max_age_days = 0",
        "min_length = 12",
        "stale_after_days = 90",
        "initial_grace_days = 14",
        'shared_account_patterns = ["supply*", "*.shared", "office", "staffroom*"]',
        'deny_words = ["hollybank", "password", "welcome", "letmein", "school"]',
        "",
        "[laptops]",
        'ssh_user = "aupctl"',
        'known_hosts = "known_hosts"',
        "checkin_every_days = 90",
        "max_pending_updates = 0",
        "max_signature_age_days = 7",
        "require_encryption = true",
        'approved_software = ["Microsoft Office", "Google Chrome", "Mozilla Firefox", "SIMS", '
        '"Sophos Endpoint", "Smart Notebook", "VLC media player", "7-Zip"]',
        "parallel = 20",
        "connect_timeout = 10",
        "",
        "[[licences]]",
        'product = "Microsoft Office"',
        'match = ["Microsoft Office*", "Microsoft 365*"]',
        "seats = 40",
        'expires = "2027-08-31"',
        "",
        "[[licences]]",
        'product = "Smart Notebook"',
        'match = ["SMART Notebook*", "Smart Notebook*"]',
        "seats = 20",
        "",
        "[state]",
        'path = "state.db"',
        "# The sandbox's own checkpoints, so a new sandbox in this folder starts a new record",
        'checkpoints = "checkpoints.jsonl"',
        "",
    ]
    return "\n".join(out)


def _write_files(info: SandboxInfo, *, url: str, ca_file: str, seed: bool) -> None:
    root = info.dir
    pw = root / BIND_PW_FILE
    fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(info.bind_password + "\n")
    pw.chmod(0o600)
    (root / CONFIG_FILE).write_text(
        config_toml(info.flavour, url=url, ca_file=ca_file, bind_dn=info.bind_dn, layout=info.layout),
        encoding="utf-8",
    )
    if seed:
        (root / "aup-signatures.csv").write_text(hb.signatures_csv(info.layout), encoding="utf-8")
        (root / "intake.csv").write_text(hb.intake_csv(), encoding="utf-8")
