"""`aupctl config discover`: read a directory aupctl has never seen and write a commented starting config.

Read-only. A handful of paged searches with few attributes (the rootDSE, OUs, people, groups, the
password policy), so a 10,000-person directory takes about a second. What it cannot know (which OU is
for leavers if none is named so, which groups are restricted systems, who approves) it leaves as a
decision, printed and marked `DECIDE` in the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from .config import Config, School, parse
from .config import Directory as DirectoryConfig
from .directory import Directory, as_text, first_rdn, normalise_dn, parent_dn
from .errors import ConfigError, InputError

AD_CAPABILITY = "1.2.840.113556.1.4.800"  # LDAP_CAP_ACTIVE_DIRECTORY_OID
ROOT_DSE_ATTRS = [
    "namingContexts",
    "defaultNamingContext",
    "forestFunctionality",
    "isGlobalCatalogReady",
    "supportedCapabilities",
    "vendorName",
    "dnsHostName",
]
PEOPLE = {
    "openldap": "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))",
    "ad": "(&(objectCategory=person)(objectClass=user))",
}
GROUPS = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))"
CONTAINERS = "(|(objectClass=organizationalUnit)(objectClass=container))"

# Names: matched against an OU's or a group's name (its first RDN value), case-blind.
ROLE_WORDS = re.compile(
    r"teach|staff|support|assistant|\bta\b|\btas\b|office|admin staff|leadership|\bslt\b|senior|^site\b|site (staff|team)|caretak|"
    r"premises|governor|supply|cover|midday|lunch|technician|business|finance team|sen\b|senco|inclusion",
    re.I,
)
SYSTEM_WORDS = re.compile(
    r"\bsims\b|target ?tracker|\bfinance\b|\bsap\b|\braise\b|schoolcomms|\barbor\b|bromcom|cpoms|scholarpack|"
    r"parentpay|tucasi|\bfms\b|\bpsf\b|integris|capita|\bmis\b|sleuth|evolve|\bsisra\b|fft|perspective|"
    r"county intranet|\bsafeguard",
    re.I,
)
# "IT Admins", "itadmins", "Domain Admins", "Account Operators"; not "Admin Staff" or "Office Admin"
# (the school office in many UK schools).
PRIVILEGED_WORDS = re.compile(r"admins\b|\bit ?admin|administrators|operators", re.I)
PUPIL_WORDS = re.compile(r"pupil|student|learner|children|\bkids\b|\byear ?\d|\bclass(es)?\b|\bintake\b", re.I)
LEAVER_WORDS = re.compile(r"leaver|former|disabled|\bleft\b|archive|old staff|inactive|deactivated", re.I)
SERVICE_WORDS = re.compile(r"service|system|\bsvc\b|computers|servers|devices|machines|applications|\bapps?\b", re.I)
AD_BUILTIN = ("cn=users,", "cn=builtin,", "cn=system,", "cn=managed service accounts,", "cn=foreignsecurityprincipals,")


@dataclass
class Group:
    dn: str
    name: str
    schemas: list[str]
    members: set[str]  # normalised member DNs (memberUid mapped to people's DNs where known)
    builtin: bool = False


@dataclass
class Discovery:
    flavour: str
    url: str
    base_dn: str
    text: str  # the commented starting config
    guessed: list[str] = field(default_factory=list)
    decide: list[str] = field(default_factory=list)
    people_ous: list[tuple[str, int]] = field(default_factory=list)  # (DN, people directly in it)
    group_schemas: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _qlist(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _first_value(dn: str) -> str:
    """The value of a DN's first RDN, unescaped ('cn=Smith\\2C Jo,ou=x' and 'cn=Smith\\, Jo,ou=x' -> 'Smith, Jo')."""
    rdn = first_rdn(dn)
    return _unescape(rdn.split("=", 1)[1].strip() if "=" in rdn else rdn)


def _unescape(value: str) -> str:
    """RFC 4514 value unescaping: \\XX hex pairs (UTF-8 bytes) and \\c for a special character."""
    out = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            pair = value[i + 1 : i + 3]
            if len(pair) == 2 and all(ch in "0123456789abcdefABCDEF" for ch in pair):
                out.append(int(pair, 16))
                i += 3
                continue
            out += value[i + 1].encode("utf-8")
            i += 2
            continue
        out += c.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")


def _rdns(dn: str) -> list[str]:
    """A DN's RDNs as written, escaping intact ('cn=Smith\\, Jo,ou=x' -> ['cn=Smith\\, Jo', 'ou=x'])."""
    out: list[str] = []
    while dn:
        rdn = first_rdn(dn)
        out.append(rdn.strip())
        dn = dn[len(rdn) + 1 :]
    return out


def _tail(dn: str, depth: int) -> str:
    """The last `depth` RDNs of a DN: its ancestor at that depth."""
    return ",".join(_rdns(dn)[-depth:])


def _relative(dn: str, base: str) -> str:
    """A DN written relative to base_dn (as the config takes OUs); the DN itself if it is not under it."""
    rd, k = _rdns(dn), len(_rdns(base))
    if len(rd) > k and normalise_dn(dn).endswith("," + normalise_dn(base)):
        return ",".join(rd[:-k])
    return dn


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return s or "role"


def _vals(attrs: dict[str, list[Any]], name: str) -> list[str]:
    """Text values of an attribute from a raw entry; AD's ranged 'member;range=0-1499' counts as member."""
    out: list[str] = []
    lname = name.lower()
    for key, vals in attrs.items():
        k = key.lower()
        if k == lname or k.startswith(lname + ";"):
            out.extend(as_text(v) for v in vals)
    return out


def _connect(
    url: str, bind_dn: str, password: str, base_dn: str | None, ca_file: str | None, timeout: float
) -> Directory:
    if not url.lower().startswith(("ldap://", "ldaps://")):
        raise InputError(f"--url must start with ldaps:// or ldap:// (got {url!r})")
    cfg = Config(
        school=School(name="discover", aup_version="-"),
        directory=DirectoryConfig(
            flavour="openldap",
            url=[url],
            bind_dn=bind_dn,
            base_dn=base_dn or "",
            staff_ou="",
            leavers_ou="",
            groups_ou="",
            # ldap:// is upgraded with StartTLS: discover never binds in clear.
            start_tls=url.lower().startswith("ldap://"),
            ca_file=ca_file,
            timeout=timeout,
            page_size=1000,
        ),
    )
    return Directory(cfg, password).connect()


def _root_dse(d: Directory) -> dict[str, list[str]]:
    assert d.conn is not None
    ok = d.conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=ROOT_DSE_ATTRS)
    if not ok or not d.conn.response:
        return {}
    entry = next((e for e in d.conn.response if e.get("type") == "searchResEntry"), None)
    if entry is None:
        return {}
    out: dict[str, list[str]] = {}
    for key, vals in (entry.get("raw_attributes") or {}).items():
        out[key.lower()] = [as_text(v) for v in (vals if isinstance(vals, list) else [vals])]
    return out


def flavour_of(root: dict[str, list[str]]) -> str:
    if (
        AD_CAPABILITY in root.get("supportedcapabilities", [])
        or "forestfunctionality" in root
        or "isglobalcatalogready" in root
    ):
        return "ad"
    return "openldap"


def discover(
    url: str,
    bind_dn: str,
    password: str,
    *,
    base_dn: str | None = None,
    ca_file: str | None = None,
    timeout: float = 10.0,
) -> Discovery:
    """Read the directory (nothing is changed) and build the starting config and the lists of guesses
    and decisions. Raises Unreachable/Auth errors as every command does, InputError for a bad --base-dn."""
    import time

    t0 = time.perf_counter()
    ca = str(Path(ca_file).expanduser().resolve()) if ca_file else None
    d = _connect(url, bind_dn, password, base_dn, ca, timeout)
    try:
        root = _root_dse(d)
        flavour = flavour_of(root)
        guessed: list[str] = []
        decide: list[str] = []
        contexts = [c for c in root.get("namingcontexts", []) if c and not c.lower().startswith("cn=")]
        if base_dn:
            base = base_dn
            if d.read(base, ["1.1"]) is None:
                raise InputError(
                    f"--base-dn {base!r} is not in the directory (naming contexts: {', '.join(contexts) or 'none'})"
                )
        elif root.get("defaultnamingcontext"):
            base = root["defaultnamingcontext"][0]
        elif contexts:
            base = contexts[0]
            if len(contexts) > 1:
                decide.append(
                    f"the server holds {len(contexts)} naming contexts ({', '.join(contexts)}); {base} was taken: pass --base-dn to choose"
                )
        else:
            raise InputError("the server names no naming context in its rootDSE: pass --base-dn")
        guessed.append(
            f"flavour {flavour} (from the rootDSE{': Active Directory capability' if flavour == 'ad' else ''})"
        )
        guessed.append(f"base_dn {base}")
        text, more_guessed, more_decide, people_ous, schemas = _survey(d, flavour, base, url, bind_dn, ca)
        guessed += more_guessed
        decide += more_decide
    finally:
        d.close()
    try:
        parse(text, "<discovered config>")
    except ConfigError as exc:  # pragma: no cover - a bug here, not the school's problem
        raise ConfigError(f"discover built a config that does not load ({exc}); please report it") from None
    return Discovery(flavour, url, base, text, guessed, decide, people_ous, schemas, time.perf_counter() - t0)


def _survey(
    d: Directory, flavour: str, base: str, url: str, bind_dn: str, ca_file: str | None
) -> tuple[str, list[str], list[str], list[tuple[str, int]], dict[str, int]]:
    # Over 80 lines (about 330): one survey in named sections (# -- containers, people, leavers, groups,
    # roles, accounts, policy, the file), each reading the counts the ones before it made. Splitting it
    # means a survey object passed between the sections; left for the issue after the house.
    guessed: list[str] = []
    decide: list[str] = []
    ad = flavour == "ad"
    nbase = normalise_dn(base)

    # -- containers (OUs), people, groups: one paged search each, few attributes --
    containers = [dn for dn, _ in d.search(base, CONTAINERS, ["1.1"], raw=True)]
    uid_attr = "sAMAccountName" if ad else "uid"
    person_attrs = [uid_attr, "mail"] + (["userPrincipalName"] if ad else ["objectClass"])
    people: dict[str, str] = {}  # normalised DN -> DN
    by_uid: dict[str, str] = {}  # username (lower) -> normalised DN
    in_container: Counter[str] = Counter()
    mails: list[tuple[str, str]] = []
    upns: Counter[str] = Counter()
    posix_people = 0
    for dn, attrs in d.search(base, PEOPLE[flavour], person_attrs, raw=True):
        key = normalise_dn(dn)
        people[key] = dn
        in_container[parent_dn(dn)] += 1
        uid = next(iter(_vals(attrs, uid_attr)), "")
        if uid:
            by_uid[uid.lower()] = key
        mail = next(iter(_vals(attrs, "mail")), "")
        if mail and uid:
            mails.append((uid.lower(), mail.lower()))
        for upn in _vals(attrs, "userPrincipalName"):
            upns[upn.rsplit("@", 1)[-1].lower()] += 1
        if any(c.lower() == "posixaccount" for c in _vals(attrs, "objectClass")):
            posix_people += 1

    group_attrs = ["objectClass", "member", "uniqueMember", "memberUid"] + (["isCriticalSystemObject"] if ad else [])
    groups: list[Group] = []
    for dn, attrs in d.search(base, GROUPS, group_attrs, raw=True):
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in dn):
            continue  # a name with control characters is not put in a config (config check refuses them)
        classes = {c.lower() for c in _vals(attrs, "objectClass")}
        group_schemas = [
            name
            for name, cls in (
                ("groupOfNames", "groupofnames"),
                ("groupOfUniqueNames", "groupofuniquenames"),
                ("posixGroup", "posixgroup"),
                ("AD group", "group"),
            )
            if cls in classes
        ]
        members = {normalise_dn(m) for m in _vals(attrs, "member")}
        members |= {normalise_dn(m.split("#'", 1)[0]) for m in _vals(attrs, "uniqueMember")}
        members |= {by_uid[u.lower()] for u in _vals(attrs, "memberUid") if u.lower() in by_uid}
        members.discard(normalise_dn(dn))
        ndn = normalise_dn(dn)
        builtin = ad and (
            any(ndn.startswith(p) or ("," + p) in ndn for p in AD_BUILTIN)
            or any(v.upper() == "TRUE" for v in _vals(attrs, "isCriticalSystemObject"))
        )
        groups.append(Group(dn, _first_value(dn), group_schemas, members, builtin))

    # -- where the people are --
    def path_words(dn: str) -> str:
        rel = normalise_dn(dn)[: -len(nbase)] if normalise_dn(dn).endswith(nbase) else normalise_dn(dn)
        return " ".join(v for _, v in (p.split("=", 1) for p in rel.strip(",").split(",") if "=" in p))

    people_ous = sorted(in_container.items(), key=lambda kv: (-kv[1], kv[0]))
    staff_containers: dict[str, int] = {}
    for c, n in people_ous:
        words = path_words(c)
        nc = normalise_dn(c)
        if ad and (nc == "cn=users," + nbase or nc.startswith("cn=users,")):
            continue  # AD's built-in accounts (Administrator, Guest, krbtgt)
        if PUPIL_WORDS.search(words) or LEAVER_WORDS.search(words) or SERVICE_WORDS.search(words):
            continue
        staff_containers[c] = n
    if not staff_containers and people_ous:
        staff_containers = dict(people_ous[:1])
        decide.append(f"no OU looks like staff; {people_ous[0][0]} (the fullest) was taken as staff_ou")
    staff_total = sum(staff_containers.values())
    staff_dn = _staff_ou(list(staff_containers), staff_containers, base)
    if staff_dn:
        guessed.append(f"staff_ou {staff_dn}: {staff_total} people in {len(staff_containers)} OU(s) beneath it")
    else:
        staff_dn = base
        decide.append(
            "no people found: staff_ou is set to base_dn; set it to the OU where staff accounts will be created"
        )
    skipped = [(c, n) for c, n in people_ous if c not in staff_containers]
    for c, n in skipped[:4]:
        guessed.append(
            f"left out of staff: {c} ({n} people; pupils, leavers, service or built-in accounts by its name)"
        )
    if len(skipped) > 4:
        rest = skipped[4:]
        guessed.append(f"left out of staff: {len(rest)} more OUs ({sum(n for _, n in rest)} people)")

    # -- leavers --
    leaver_ous = [c for c in containers if LEAVER_WORDS.search(_first_value(c))]
    leaver_ous.sort(key=lambda c: (0 if "leaver" in c.lower() else 1, len(c)))
    if leaver_ous:
        leavers_dn = leaver_ous[0]
        guessed.append(
            f"leavers_ou {leavers_dn}"
            + (f" (also possible: {', '.join(leaver_ous[1:3])})" if len(leaver_ous) > 1 else "")
        )
        leavers_comment = "found by its name"
    else:
        leavers_dn = f"ou=Leavers,{base}"
        decide.append(
            f"no OU for leavers found: create one ({leavers_dn}, or another name and fix leavers_ou) before "
            "`aupctl doctor` (it fails, exit 2, on an OU that does not exist)"
        )
        leavers_comment = "NOT FOUND: DECIDE and create it"

    # -- groups --
    school_groups = [g for g in groups if not g.builtin]
    schemas = Counter("+".join(g.schemas) or "other" for g in school_groups)
    where = Counter(parent_dn(g.dn) for g in school_groups)
    if where:
        groups_dn, n_there = where.most_common(1)[0]
        guessed.append(
            f"groups_ou {groups_dn}: {n_there} of {len(school_groups)} groups; schemas "
            + ", ".join(f"{k} {v}" for k, v in schemas.most_common())
        )
        if len(where) > 1:
            others = [w for w, _ in where.most_common()[1:4]]
            guessed.append(f"groups elsewhere too ({', '.join(others)}): name those by full DN in the config")
    else:
        groups_dn = base
        decide.append("no groups found: set groups_ou to the OU where the school's groups live")
    n_posix = sum(n for k, n in schemas.items() if "posixGroup" in k)
    if n_posix:
        guessed.append(f"{n_posix} groups are posixGroup: members by username in memberUid (RFC 2307)")
    if posix_people:
        guessed.append(f"{posix_people} people are posixAccount (uidNumber, gidNumber, homeDirectory)")

    def gname(g: Group) -> str:
        return g.name if normalise_dn(parent_dn(g.dn)) == normalise_dn(groups_dn) else g.dn

    staff_people = {
        k for k, dn in people.items() if normalise_dn(parent_dn(dn)) in {normalise_dn(c) for c in staff_containers}
    }
    # Groups holding (nearly) every member of staff say nothing about a role ("All Staff", "staff").
    everyone = [g for g in school_groups if staff_people and len(g.members & staff_people) >= 0.8 * len(staff_people)]
    privileged = (
        [g for g in groups if PRIVILEGED_WORDS.search(g.name) and g.members]
        if not ad
        else [
            g
            for g in groups
            if g.name.lower() in ("domain admins", "enterprise admins", "schema admins", "administrators")
            or (not g.builtin and PRIVILEGED_WORDS.search(g.name))
        ]
    )
    systems = [g for g in school_groups if SYSTEM_WORDS.search(g.name) and g not in privileged]

    # -- roles --
    roles: list[tuple[str, str | None, list[str], str]] = []  # (name, ou, groups, why)
    children: dict[str, set[str]] = defaultdict(set)  # OU just below staff_ou -> the staff beneath it
    staff_depth = len(_rdns(staff_dn))
    for key in staff_people:
        container = parent_dn(people[key])
        if len(_rdns(container)) > staff_depth:
            children[_tail(container, staff_depth + 1)].add(key)
    named = [c for c in children if ROLE_WORDS.search(_first_value(c))]
    # OU roles only when people sit directly in the OUs just below staff_ou: staff nested deeper (an OU per
    # site, then per department) have no one OU per role, so their roles come from groups.
    nested = any(len(_rdns(c)) > staff_depth + 1 for c in staff_containers)
    role_groups_used: set[str] = set()
    if len(children) >= 2 and len(named) * 2 >= len(children) and not nested:
        for child, members in sorted(children.items()):
            if not members:
                continue
            covering = [
                g
                for g in school_groups
                if g not in systems and g not in privileged and len(g.members & members) >= 0.9 * len(members)
            ]
            covering.sort(key=lambda g: len(g.members))
            ou_text = _relative(child, base)
            name = _slug(_first_value(ou_text))
            roles.append((name, ou_text, [gname(g) for g in covering], f"{len(members)} people in {ou_text}"))
            role_groups_used.update(g.dn for g in covering)
        guessed.append(
            f"{len(roles)} roles from the OUs under staff_ou, with the groups that hold 90 % or more of each"
        )
    else:
        candidates = [
            g
            for g in school_groups
            if ROLE_WORDS.search(g.name)
            and g not in systems
            and g not in privileged
            and g not in everyone
            and g.members
        ]
        candidates.sort(key=lambda g: len(g.members))  # the smallest first: the first role that matches wins
        for g in candidates:
            roles.append((_slug(g.name), None, [gname(g)], f"{len(g.members)} members of {g.name}"))
        if roles:
            guessed.append(
                f"{len(roles)} roles from groups named like roles (no role OUs); new accounts go to staff_ou"
            )
        else:
            decide.append("no OUs or groups look like roles: add [roles.NAME] tables (groups, or ou)")
        if everyone:
            decide.append(
                "groups that hold nearly everyone (" + ", ".join(g.name for g in everyone[:3]) + "): add them to each "
                "role's groups if new staff should join them"
            )
    seen: set[str] = set()
    unique_roles = []
    for name, ou, grp, why in roles:
        unique, i = name, 2
        while unique in seen:
            unique, i = f"{name}_{i}", i + 1
        seen.add(unique)
        unique_roles.append((unique, ou, grp, why))
    roles = unique_roles

    # -- accounts --
    email = None
    if mails:
        same = [m for u, m in mails if m.split("@", 1)[0] == u]
        domains = Counter(m.rsplit("@", 1)[-1] for m in (same or [m for _, m in mails]))
        domain, n = domains.most_common(1)[0]
        if len(same) * 2 >= len(mails) and n * 5 >= len(same) * 4:
            email = f"{{username}}@{domain}"
            guessed.append(f"accounts.email {email} ({len(same)} of {len(mails)} addresses are username@domain)")
        else:
            decide.append(
                f"staff addresses do not follow username@domain (most common domain: {domain}): set accounts.email"
            )
    upn_suffix = upns.most_common(1)[0][0] if upns else None

    # -- password policy --
    policy = _policy(d, flavour, base)
    guessed.append("password policy: " + policy)

    # -- the file --
    now = dt.date.today()
    aup = f"{now.year if now.month >= 9 else now.year - 1}-09"
    school = " ".join(w.capitalize() for w in _school_words(base)) or "Our School"
    decide.append(f'school.name ("{school}") and school.aup_version ("{aup}"): write your own')
    decide.append(
        "the systems: uncomment the [systems.*] suggestions that are restricted systems, add approvers, "
        "and list them in each role's systems"
    )
    decide.append("the bind password: `aupctl config set-password`, or bind_password_file (chmod 600)")
    lines = [
        f"# aupctl config written by `aupctl config discover` from {url} on {now.isoformat()}.",
        "# A starting point: read every DECIDE, then `aupctl config check` and `aupctl doctor`.",
        "# Every key is described in docs/configuration.md.",
        "",
        "[school]",
        f"name = {_q(school)}   # DECIDE: the school's name (reports, the password deny list)",
        f"aup_version = {_q(aup)}   # DECIDE: the staff AUP version everyone must have signed",
        "",
        "[directory]",
        f"flavour = {_q(flavour)}",
        f"url = {_q(url)}",
    ]
    if url.lower().startswith("ldap://"):
        lines.append("start_tls = true   # ldap:// is upgraded with StartTLS (discover connected so)")
    if ca_file:
        lines.append(f"ca_file = {_q(ca_file)}")
    lines += [
        f"bind_dn = {_q(bind_dn)}",
        "# The bind password: $AUPCTL_BIND_PASSWORD, this file (chmod 600), or `aupctl config set-password`.",
        '# bind_password_file = "/etc/aupctl/bind.pw"',
        f"base_dn = {_q(base)}",
        f"staff_ou = {_q(_relative(staff_dn, base))}   # {staff_total} people beneath it",
        f"leavers_ou = {_q(_relative(leavers_dn, base))}   # {leavers_comment}",
        f"groups_ou = {_q(_relative(groups_dn, base))}   # where groups named by cn live",
    ]
    if privileged:
        lines.append(
            f"privileged_groups = {_qlist(sorted({g.name for g in privileged}))}   # staff should not be in these"
        )
        guessed.append("privileged_groups " + ", ".join(sorted({g.name for g in privileged})))
    lines += [
        "",
        "[accounts]",
        '# username = "{first_initial}{last_name}"   # DECIDE: how new staff usernames are made',
    ]
    if email:
        lines.append(f"email = {_q(email)}")
    else:
        lines.append('# email = "{username}@school.example"   # DECIDE')
    if ad and upn_suffix:
        lines.append(f"upn_suffix = {_q(upn_suffix)}")
    lines += [
        "",
        "# Roles: a person's role is the one aupctl recorded, else the first role whose ou holds the",
        "# account, else the first whose groups it is in. A role without ou: new accounts go to staff_ou.",
    ]
    for name, ou, grp, why in roles:
        lines += ["", f"[roles.{name}]   # {why}"]
        if ou is not None:
            lines.append(f"ou = {_q(ou)}")
        lines.append(f"groups = {_qlist(grp)}")
        lines.append("systems = []   # DECIDE: the restricted systems this role may be nominated for")
    if systems:
        lines += ["", "# Groups that look like restricted systems (policy 1.3). DECIDE: uncomment those that are."]
        used: set[str] = set()
        for g in systems:
            key = _slug(re.sub(r"\b(users?|access|group)\b", "", g.name, flags=re.I)) or _slug(g.name)
            while key in used:
                key += "_2"
            used.add(key)
            lines += [
                f"# [systems.{key}]   # {len(g.members)} members",
                f"# name = {_q(g.name)}",
                f"# group = {_q(gname(g))}",
                '# approvers = ["DECIDE: who approves access"]',
            ]
        guessed.append("systems suggested (commented): " + ", ".join(g.name for g in systems))
    else:
        decide.append(
            "no group looks like a restricted system (SIMS, Target Tracker, Finance...): add [systems.*] by hand"
        )
    lines += [
        "",
        "[passwords]",
        f"# The directory enforces: {policy}",
        "min_length = 12   # the school's minimum; the audit reports a directory policy below it",
        "max_age_days = 0   # 0: no forced expiry (NCSC guidance)",
        "",
        "[state]",
        '# path = "state.db"   # default: the user data folder',
        "",
    ]
    return "\n".join(lines), guessed, decide, people_ous, dict(schemas)


def _staff_ou(cands: list[str], counts: dict[str, int], base: str) -> str:
    """The deepest OU above every staff container; if that is the base itself, the top-level subtree that
    holds most of them."""
    if not cands:
        return ""
    split = [list(reversed(normalise_dn(c).split(","))) for c in cands]
    common = 0
    for parts in zip(*split, strict=False):
        if all(p == parts[0] for p in parts):
            common += 1
        else:
            break
    depth_base = len(_rdns(base))
    if common > depth_base:
        return _tail(cands[0], common)
    # Spread over the base: the top-level OU with most of them, if it holds 80 % or more.
    tops: Counter[str] = Counter()
    for c, n in counts.items():
        tops[_tail(c, depth_base + 1)] += n
    top, n = tops.most_common(1)[0]
    return top if n * 5 >= sum(counts.values()) * 4 else base


def _school_words(base: str) -> list[str]:
    try:
        parts = ldap3.utils.dn.parse_dn(base)
    except Exception:  # noqa: BLE001
        return []
    words = [v for a, v, _ in parts if a.lower() in ("dc", "o")]
    return [w for w in words[:1] if w.lower() not in ("local", "internal", "test", "example", "com", "org", "uk")]


def _policy(d: Directory, flavour: str, base: str) -> str:
    if flavour == "ad":
        root = d.read(base, ["minPwdLength", "maxPwdAge", "lockoutThreshold", "pwdProperties"], raw=True) or {}

        def one(name: str) -> int:
            v = _vals(root, name)
            try:
                return int(v[0]) if v else 0
            except ValueError:
                return 0

        max_age = one("maxPwdAge")
        days = 0 if max_age in (0, -0x8000000000000000) else abs(max_age) // 864_000_000_000
        complex_ = "complexity on" if one("pwdProperties") & 1 else "complexity off"
        return (
            f"AD domain policy: minimum length {one('minPwdLength')}, maximum age "
            f"{days or 'never'}{' days' if days else ''}, lockout after {one('lockoutThreshold') or 'never'}, {complex_}"
        )
    found = []
    for dn, attrs in d.search(
        base, "(objectClass=pwdPolicy)", ["pwdMinLength", "pwdMaxAge", "pwdMaxFailure", "pwdLockout"], raw=True
    ):
        ml = (_vals(attrs, "pwdMinLength") or ["0"])[0]
        age = int((_vals(attrs, "pwdMaxAge") or ["0"])[0] or 0) // 86_400
        lock = (_vals(attrs, "pwdLockout") or ["FALSE"])[0].upper() == "TRUE"
        fails = (_vals(attrs, "pwdMaxFailure") or ["0"])[0]
        found.append(
            f"ppolicy {_first_value(dn)}: minimum length {ml}, maximum age {age or 'never'}{' days' if age else ''}, "
            f"lockout {'after ' + fails if lock and fails != '0' else 'off'}"
        )
    return (
        "; ".join(found)
        if found
        else "no ppolicy entry (pwdPolicy) readable: the server may not run the ppolicy overlay"
    )


def write(discovery: Discovery, out: str) -> Path:
    """Write the config to a new file; an existing file is never overwritten (exit 2)."""
    path = Path(out).expanduser()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InputError(
            f"{path} already exists: discover never writes over a file", hint="choose another --out"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(discovery.text)
    return path
