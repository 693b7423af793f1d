"""Hollybank Primary School: the fictional school the sandbox seeds, the same on OpenLDAP and AD.

Pure data, generated deterministically (fixed random seed), so tests, the demo and other
modules can import it and rely on names. The planted problems are in PLANTED and documented in
docs/sandbox.md; aupctl.sandbox turns this into LDIF (OpenLDAP) or LDAP adds (AD).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import unicodedata
from dataclasses import dataclass, field
from functools import cache

SCHOOL_NAME = "Hollybank Primary School"
DOMAIN = "hollybank.test"
REALM = "HOLLYBANK.TEST"
NETBIOS_DOMAIN = "HOLLYBANK"
OPENLDAP_BASE_DN = "dc=hollybank,dc=test"
AD_BASE_DN = "DC=hollybank,DC=test"
AUP_VERSION = "2024-09"
OLD_AUP_VERSION = "2023-09"

# Every seeded person's password unless a planted problem says otherwise (PASSWORDS). Long and mixed
# so it passes Samba's complexity rules and the ppolicy minimum length.
SANDBOX_PASSWORD = "Hollybank-Sandbox-Pass-2026"
# OpenLDAP: cn=aupctl,ou=Service (the config's bind account) and the rootdn cn=admin.
# AD: Administrator's password (the config binds as Administrator).
SANDBOX_BIND_PASSWORD = "Aupctl-Service-Sandbox-2026"
SANDBOX_ADMIN_PASSWORD = "Admin-Sandbox-Pass-2026"

STAFF_OUS = {  # role -> OU under ou=Staff
    "teacher": "Teachers",
    "ta": "Support",
    "office": "Office",
    "slt": "SLT",
    "site": "Site",
    "governor": "Governors",
}

ROLE_GROUPS = {
    "teacher": ["Teaching Staff", "All Staff"],
    "ta": ["Support Staff", "All Staff"],
    "office": ["Office Staff", "All Staff"],
    "slt": ["Leadership", "Teaching Staff", "All Staff"],
    "site": ["Site Staff", "All Staff"],
    "governor": ["Governors"],
}

ROLE_SYSTEMS = {
    "teacher": ["sims", "target_tracker", "raise", "intranet"],
    "ta": ["intranet", "target_tracker"],
    "office": ["sims", "sap", "schoolcomms", "intranet"],
    "slt": ["sims", "target_tracker", "raise", "schoolcomms", "sap", "intranet"],
    "site": ["intranet"],
    "governor": [],
}

HEADTEACHER = "Mrs A Patel (Headteacher)"
BUSINESS_MANAGER = "Mr D Okafor (School Business Manager)"
COUNTY_DESK = "Raise a request with the county ICT service desk (0300 123 4567, ictdesk@county.example)"

# key -> name, group (None: managed by hand), approvers, review_days, instructions
SYSTEMS: dict[str, dict] = {
    "sims": {
        "name": "SIMS",
        "group": "SIMS Users",
        "approvers": [HEADTEACHER, BUSINESS_MANAGER],
        "review_days": 180,
    },
    "target_tracker": {
        "name": "Target Tracker",
        "group": "Target Tracker Users",
        "approvers": [HEADTEACHER, "Mrs R Hughes (Deputy Headteacher)"],
    },
    "raise": {
        "name": "RAISE Online",
        "group": "RAISE Online Users",
        "approvers": [HEADTEACHER],
    },
    "schoolcomms": {
        "name": "Schoolcomms",
        "group": "Schoolcomms Users",
        "approvers": [HEADTEACHER, BUSINESS_MANAGER],
    },
    "sap": {
        "name": "SAP (county finance)",
        "group": None,
        "approvers": [BUSINESS_MANAGER],
        "instructions": COUNTY_DESK + "; ask for a SAP finance role for Hollybank (cost centre HB01).",
    },
    "intranet": {
        "name": "County intranet",
        "group": None,
        "approvers": [HEADTEACHER, BUSINESS_MANAGER],
        "instructions": COUNTY_DESK + "; ask for a county intranet account.",
    },
}

ROLE_GROUP_NAMES = ["Teaching Staff", "Support Staff", "Office Staff", "Leadership", "Site Staff", "Governors"]
ALL_STAFF = "All Staff"
SYSTEM_GROUP_NAMES = ["SIMS Users", "Target Tracker Users", "RAISE Online Users", "Schoolcomms Users"]
IT_ADMINS = "IT Admins"
SIMS_OFFICE = "SIMS Office"  # AD only: nested in SIMS Users
AD_DOMAIN_ADMINS_DN = f"CN=Domain Admins,CN=Users,{AD_BASE_DN}"

# The planted problems (docs/sandbox.md). One username each, so tests and the demo can name them.
PLANTED: dict[str, str] = {
    "not_eligible_member": "wgreen",  # teaching assistant in SIMS Users (ta is not eligible for sims)
    "disabled_with_access": "hlowe",  # disabled teacher still in SIMS Users and Target Tracker Users
    "leaver_with_access": "tbarker",  # in ou=Leavers, still in Schoolcomms Users
    "stale": "pcollins",  # last logon 240 days ago
    "never_logged_on": "gturner",  # created 200 days ago, never logged on
    "never_expires": "kwalsh",  # AD only: DONT_EXPIRE_PASSWORD
    "shared_account": "supply",  # "Supply Teacher", a shared account in ou=Teachers
    "privileged": "dhart",  # office staff in IT Admins (and Domain Admins on AD)
    "cleartext_password": "nprice",  # OpenLDAP only: userPassword stored in clear
    "md5_password": "gford",  # OpenLDAP only: {MD5}
    "shared_sha_password": "ehall",  # OpenLDAP only: same unsalted {SHA} as jwood
    "shared_sha_password_twin": "jwood",
    "guessable_password": "mbennett",  # "Hollybank2024!" ({SSHA} on OpenLDAP; set on AD too)
    "passwd_notreqd": "rellis",  # AD only: PASSWD_NOTREQD
    "unsigned_with_access": "oshaw",  # in SIMS Users, never signed the AUP
    "old_aup_version": "hmarsh",  # signed 2023-09, not the current 2024-09
}
# Which flavours each plant exists on (absent = both).
PLANTED_ONLY_ON: dict[str, str] = {
    "never_expires": "ad",
    "passwd_notreqd": "ad",
    "cleartext_password": "openldap",
    "md5_password": "openldap",
    "shared_sha_password": "openldap",
    "shared_sha_password_twin": "openldap",
}
SHARED_SHA_PAIR = ("ehall", "jwood")
LEGIT_IT_ADMIN = "kmensah"  # the ICT technician: in IT Admins (and Domain Admins on AD) on purpose
UNSIGNED = ("oshaw", "fmoss", "rlatham", "supply")  # no row in aup-signatures.csv
INTAKE_CLASH = ("Jade", "Smith")  # in intake.csv: jsmith and jsmith2 already exist

# Planted passwords (username -> password) that differ from SANDBOX_PASSWORD, per flavour.
PASSWORDS: dict[str, dict[str, str]] = {
    "openldap": {
        "nprice": "Password123",
        "gford": "letmein2019",
        "ehall": "Welcome2024",
        "jwood": "Welcome2024",
        "mbennett": "Hollybank2024!",
    },
    "ad": {"mbennett": "Hollybank2024!"},
}

# AD userAccountControl bits the sandbox plants
UAC_ACCOUNTDISABLE = 0x2
UAC_PASSWD_NOTREQD = 0x20
UAC_NORMAL_ACCOUNT = 0x200
UAC_DONT_EXPIRE_PASSWORD = 0x10000


def password_for(username: str, flavour: str) -> str:
    return PASSWORDS.get(flavour, {}).get(username, SANDBOX_PASSWORD)


@dataclass(frozen=True)
class Person:
    username: str
    given_name: str
    surname: str
    display_name: str
    role: str  # the role of their post (a leaver keeps the role they had)
    staff_code: str
    title: str
    department: str
    systems: tuple[str, ...] = ()  # system keys whose group they are in (sap/intranet: none)
    leaver: bool = False
    disabled: bool = False
    created_days: int = 1000  # days before the reference date
    password_changed_days: int = 300
    last_logon_days: int | None = 3  # None: never logged on
    extra_groups: tuple[str, ...] = ()  # e.g. IT Admins
    uac_extra: int = 0  # AD only: bits beside NORMAL_ACCOUNT / ACCOUNTDISABLE
    storage: str = "ssha"  # OpenLDAP userPassword: ssha | cleartext | md5 | sha

    @property
    def ou(self) -> str:
        """Relative to the base DN, e.g. 'ou=Teachers,ou=Staff'."""
        return "ou=Leavers" if self.leaver else f"ou={STAFF_OUS[self.role]},ou=Staff"

    @property
    def email(self) -> str:
        return f"{self.username}@{DOMAIN}"

    @property
    def uac(self) -> int:
        flags = UAC_NORMAL_ACCOUNT | self.uac_extra
        return flags | UAC_ACCOUNTDISABLE if self.disabled else flags


@dataclass(frozen=True)
class School:
    people: tuple[Person, ...]
    # group cn -> direct member usernames, per flavour (AD nests office staff via SIMS Office)
    members: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    nested: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)  # group -> member groups

    def person(self, username: str) -> Person:
        for p in self.people:
            if p.username == username:
                return p
        raise KeyError(username)

    @property
    def staff(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if not p.leaver)

    @property
    def leavers(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.leaver)

    def groups(self, flavour: str) -> dict[str, tuple[str, ...]]:
        return self.members[flavour]


# -- usernames --

# fmt: off
_FOLD = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
     "đ": "d", "Đ": "D", "ð": "d", "þ": "th", "ı": "i"}
)
# fmt: on


def fold(text: str) -> str:
    """Lowercase ASCII letters and digits only: Zoë -> zoe, Łukasz -> lukasz, O'Brien -> obrien."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


def make_username(given: str, surname: str, taken: set[str], max_length: int = 20) -> str:
    base = (fold(given)[:1] + fold(surname))[:max_length]
    name, n = base, 1
    while name in taken:
        n += 1
        name = base[: max_length - len(str(n))] + str(n)
    taken.add(name)
    return name


# -- the people --

# (given, surname, role, title, department, overrides). Listed first, so they keep the plain
# username when a generated name would clash; planted problems are people here.
# fmt: off
_FIXED: list[tuple[str, str, str, str, str, dict]] = [
    ("Aisha", "Patel", "slt", "Headteacher", "Leadership", {}),
    ("David", "Okafor", "slt", "School Business Manager", "Leadership", {}),
    ("Rachel", "Hughes", "slt", "Deputy Headteacher", "Leadership", {}),
    ("Siobhán", "O'Brien", "slt", "SENCo and Assistant Headteacher", "Leadership", {}),
    ("Marcus", "Reid", "slt", "Assistant Headteacher (KS2)", "Leadership", {}),
    ("Bethan", "Lloyd-Williams", "slt", "Assistant Headteacher (EYFS)", "Leadership", {}),
    ("Zoë", "Clarke", "teacher", "Class Teacher (Year 2)", "Key Stage 1", {}),
    ("Gemma", "Smith-Jones", "teacher", "Class Teacher (Year 4)", "Key Stage 2", {}),
    ("José", "Fernández", "teacher", "Spanish Teacher", "Key Stage 2", {}),
    ("James", "Smith", "teacher", "Class Teacher (Year 6)", "Key Stage 2", {}),
    ("Harriet", "Lowe", "teacher", "Class Teacher (Year 3)", "Key Stage 2",
     {"disabled": True, "systems": ("sims", "target_tracker"), "last_logon_days": 45}),
    ("Peter", "Collins", "teacher", "Class Teacher (Year 5)", "Key Stage 2",
     {"last_logon_days": 240, "password_changed_days": 700, "created_days": 2000,
      "systems": ("sims", "target_tracker")}),
    ("Oliver", "Shaw", "teacher", "Class Teacher (Year 1)", "Key Stage 1", {"systems": ("sims", "target_tracker")}),
    ("Helen", "Marsh", "teacher", "Reception Teacher", "EYFS", {"systems": ("sims",)}),
    ("Nicola", "Price", "teacher", "Class Teacher (Year 1)", "Key Stage 1", {"storage": "cleartext"}),
    ("Mark", "Bennett", "teacher", "PE Teacher", "Key Stage 2", {}),
    ("Emma", "Hall", "teacher", "Music Teacher", "Key Stage 2", {"storage": "sha"}),
    ("Supply", "Teacher", "teacher", "Supply Teacher (shared account)", "Cover",
     {"username": "supply", "display_name": "Supply Teacher", "systems": ("sims",)}),
    ("William", "Green", "ta", "Teaching Assistant", "Learning Support", {"systems": ("sims",)}),
    ("Grace", "Turner", "ta", "Teaching Assistant", "Learning Support",
     {"created_days": 200, "password_changed_days": 200, "last_logon_days": None}),
    ("Minh", "Nguyễn", "ta", "Higher Level Teaching Assistant", "Learning Support", {}),
    ("Jessica", "Smith", "ta", "Teaching Assistant", "Learning Support", {}),
    ("Renée", "Müller", "ta", "Learning Support Assistant", "Learning Support", {}),
    ("Kwame", "Mensah", "ta", "ICT Technician", "ICT", {"extra_groups": ("IT Admins",)}),
    ("Ruth", "Ellis", "ta", "Midday Supervisor", "Learning Support", {"uac_extra": UAC_PASSWD_NOTREQD}),
    ("Jack", "Wood", "ta", "Teaching Assistant", "Learning Support", {"storage": "sha"}),
    ("Fiona", "Moss", "ta", "Teaching Assistant", "Learning Support", {"systems": ()}),
    ("Ayşe", "Yılmaz", "ta", "Teaching Assistant", "Learning Support", {}),
    ("Anaïs", "Dubois", "office", "Attendance Officer", "School Office", {}),
    ("Denise", "Hart", "office", "Office Manager", "School Office",
     {"extra_groups": ("IT Admins",), "systems": ("sims", "schoolcomms")}),
    ("Karen", "Walsh", "office", "Receptionist", "School Office",
     {"uac_extra": UAC_DONT_EXPIRE_PASSWORD, "password_changed_days": 2900, "created_days": 3000}),
    ("Sarah", "Khan", "office", "Finance Officer", "School Office", {}),
    ("Gary", "Ford", "office", "Data Manager", "School Office", {"storage": "md5"}),
    ("Łukasz", "Kowalski", "site", "Caretaker", "Premises", {}),
    ("Ciarán", "Ó Súilleabháin", "site", "Site Manager", "Premises", {}),
    ("Pieter", "Van der Berg", "governor", "Chair of Governors", "Governing Body", {}),
    ("Bartholomew", "Featherstonehaugh-Wainwright", "governor", "Parent Governor", "Governing Body", {}),
    ("Rosemary", "Latham", "governor", "Local Authority Governor", "Governing Body", {}),
    ("Mary-Kate", "O'Neill", "governor", "Staff Governor", "Governing Body", {}),
    ("Tom", "Barker", "office", "Administrator", "School Office",
     {"leaver": True, "disabled": True, "systems": ("schoolcomms",), "last_logon_days": 125}),
]

_FEMALE = [
    "Emma", "Sophie", "Charlotte", "Hannah", "Lucy", "Rebecca", "Amy", "Laura", "Claire", "Victoria",
    "Katie", "Jennifer", "Joanne", "Kerry", "Lisa", "Michelle", "Natalie", "Stacey", "Jodie", "Leanne",
    "Amira", "Priya", "Aaliyah", "Fatima", "Nadia", "Sinéad", "Aoife", "Niamh", "Cerys", "Ffion",
    "Anwen", "Agnieszka", "Małgorzata", "Chloé", "Ngozi", "Chidinma", "Mei", "Yasmin", "Zainab",
    "Hollie", "Megan", "Jade", "Eleanor", "Imogen", "Saoirse", "Gráinne", "Dorota", "Ewa",
]
_MALE = [
    "Thomas", "Daniel", "Matthew", "Christopher", "Andrew", "Richard", "Paul", "Stephen", "Jonathan",
    "Adam", "Ben", "Luke", "Ryan", "Craig", "Gareth", "Rhys", "Dylan", "Owen", "Callum", "Liam",
    "Connor", "Eoin", "Seán", "Tomasz", "Piotr", "Krzysztof", "Mohammed", "Imran", "Arjun", "Ravi",
    "Tunde", "Emeka", "Jamal", "Dominic", "Nathan", "Søren", "Björn", "François", "Hamza", "Yusuf",
]
_SURNAMES = [
    "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Edwards", "Harris", "Lewis", "Martin",
    "Jackson", "Clark", "Hill", "Scott", "Cooper", "Morris", "Ward", "Moore", "King", "Watson",
    "Baker", "Harrison", "Morgan", "Young", "Allen", "Mitchell", "Anderson", "Phillips", "Lee",
    "Bell", "Parker", "Davis", "Ahmed", "Hussain", "Begum", "Singh", "Kaur", "Shah", "Ali",
    "Adeyemi", "Nowak", "Kowalczyk", "Wiśniewska", "Murphy", "Kelly", "O'Connor", "McCarthy",
    "Ní Bhriain", "Llewelyn", "Pritchard", "Tran", "Chen", "Wong", "García", "De Souza", "MacLeod",
    "McKenzie", "Fitzgerald", "Hart-Davies", "D'Souza", "Brontë", "Öztürk", "Nguyen", "Lindqvist",
]

_TEACHER_POSTS = [
    ("Reception Teacher", "EYFS"), ("Nursery Teacher", "EYFS"),
    ("Class Teacher (Year 1)", "Key Stage 1"), ("Class Teacher (Year 2)", "Key Stage 1"),
    ("Class Teacher (Year 3)", "Key Stage 2"), ("Class Teacher (Year 4)", "Key Stage 2"),
    ("Class Teacher (Year 5)", "Key Stage 2"), ("Class Teacher (Year 6)", "Key Stage 2"),
    ("Intervention Teacher", "Key Stage 2"), ("Art Teacher", "Key Stage 2"),
]
_TA_POSTS = [
    ("Teaching Assistant", "Learning Support"), ("Higher Level Teaching Assistant", "Learning Support"),
    ("Learning Support Assistant", "Learning Support"), ("Midday Supervisor", "Learning Support"),
    ("Nursery Nurse", "EYFS"), ("Breakfast Club Assistant", "Learning Support"),
]
_OFFICE_POSTS = [("Administrator", "School Office"), ("Admissions Officer", "School Office"),
                 ("Exams and Data Officer", "School Office")]
_SITE_POSTS = [("Cleaner", "Premises"), ("Kitchen Assistant", "Catering"), ("Cook", "Catering")]
_GOVERNOR_POSTS = [("Parent Governor", "Governing Body"), ("Co-opted Governor", "Governing Body"),
                   ("Foundation Governor", "Governing Body")]
# fmt: on

# People per role under ou=Staff (fixed + generated); 120 in all. Leavers: 6.
_COUNTS = {"slt": 6, "teacher": 47, "ta": 38, "office": 10, "site": 6, "governor": 13}
_LEAVERS = 6
_POSTS = {"teacher": _TEACHER_POSTS, "ta": _TA_POSTS, "office": _OFFICE_POSTS, "site": _SITE_POSTS,
          "governor": _GOVERNOR_POSTS}  # fmt: skip


def _random_systems(rng: random.Random, role: str) -> tuple[str, ...]:
    """Realistic current membership: only systems the role is eligible for."""
    if role == "slt":
        return ("sims", "target_tracker", "raise", "schoolcomms")
    if role == "teacher":
        out = [s for s, p in (("sims", 0.9), ("target_tracker", 0.85), ("raise", 0.15)) if rng.random() < p]
        return tuple(out)
    if role == "ta":
        return ("target_tracker",) if rng.random() < 0.3 else ()
    if role == "office":
        out = ["sims"] if rng.random() < 0.9 else []
        if rng.random() < 0.7:
            out.append("schoolcomms")
        return tuple(out)
    return ()


def school(layout: str = "standard") -> School:
    """The school as a layout holds it; the same every call (fixed seed). See LAYOUTS."""
    if layout == "standard":
        return _standard_school()
    if layout == "flat":
        return _flat_school()
    if layout == "nested":
        return _nested_school()
    raise ValueError(f"unknown sandbox layout {layout!r}")


@cache
def _standard_school() -> School:
    rng = random.Random(20260901)
    taken: set[str] = set()
    people: list[Person] = []
    code = iter(range(1, 10_000))
    used_names: set[tuple[str, str]] = set()

    def add(given: str, surname: str, role: str, title: str, dept: str, over: dict) -> None:
        over = dict(over)
        username = over.pop("username", None)
        if username:
            taken.add(username)
        else:
            username = make_username(given, surname, taken)
        used_names.add((given, surname))
        leaver = over.get("leaver", False)
        if "systems" not in over:
            over["systems"] = () if leaver else _random_systems(rng, role)
        created = over.pop("created_days", rng.randint(400, 5200))
        last = over.pop("last_logon_days", rng.randint(0, 45 if role == "governor" else 14))
        changed = over.pop("password_changed_days", rng.randint(20, min(created, 900)))
        people.append(
            Person(
                username=username,
                given_name=over.pop("given_name", given),
                surname=surname,
                display_name=over.pop("display_name", f"{given} {surname}"),
                role=role,
                staff_code=f"HB{next(code):04d}",
                title=title,
                department=dept,
                created_days=created,
                password_changed_days=changed,
                last_logon_days=last,
                **over,
            )
        )

    for given, surname, role, title, dept, over in _FIXED:
        add(given, surname, role, title, dept, over)
    counts = {role: sum(1 for p in people if p.role == role and not p.leaver) for role in _COUNTS}
    for role, want in _COUNTS.items():
        while counts[role] < want:
            given = rng.choice(_FEMALE if rng.random() < 0.75 else _MALE)  # primary staff: mostly women
            surname = rng.choice(_SURNAMES)
            if (given, surname) in used_names:
                continue
            title, dept = rng.choice(_POSTS[role])
            add(given, surname, role, title, dept, {})
            counts[role] += 1
    leavers = sum(1 for p in people if p.leaver)
    while leavers < _LEAVERS:
        given, surname = rng.choice(_FEMALE + _MALE), rng.choice(_SURNAMES)
        if (given, surname) in used_names:
            continue
        role = rng.choice(["teacher", "ta", "ta", "office"])
        title, dept = rng.choice(_POSTS[role])
        add(
            given,
            surname,
            role,
            title,
            dept,
            {"leaver": True, "disabled": True, "systems": (), "last_logon_days": rng.randint(110, 140)},
        )
        leavers += 1
    return School(people=tuple(people), members=_members(people), nested=_nested())


def _members(people: list[Person]) -> dict[str, dict[str, tuple[str, ...]]]:
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for flavour in ("openldap", "ad"):
        groups: dict[str, list[str]] = {g: [] for g in ROLE_GROUP_NAMES + [ALL_STAFF] + SYSTEM_GROUP_NAMES}
        groups[IT_ADMINS] = []
        if flavour == "ad":
            groups[SIMS_OFFICE] = []
        for p in people:
            if not p.leaver:  # a leaver has been stripped of role groups (not of every system: planted)
                for g in ROLE_GROUPS[p.role]:
                    groups[g].append(p.username)
            for key in p.systems:
                group = SYSTEMS[key]["group"]
                if flavour == "ad" and key == "sims" and p.role == "office":
                    group = SIMS_OFFICE  # the office gets SIMS through a nested group on AD
                groups[group].append(p.username)
            for g in p.extra_groups:
                groups[g].append(p.username)
        out[flavour] = {g: tuple(m) for g, m in groups.items()}
    return out


def _nested() -> dict[str, dict[str, tuple[str, ...]]]:
    return {"openldap": {}, "ad": {"SIMS Users": (SIMS_OFFICE,)}}


def group_description(name: str) -> str:
    for key, system in SYSTEMS.items():
        if system["group"] == name:
            return f"Access to {system['name']} (aupctl system {key})"
    return {
        IT_ADMINS: "Administrators of the school network (privileged)",
        SIMS_OFFICE: "Office staff with SIMS; nested in SIMS Users",
        ALL_STAFF: "Everyone employed by the school (not governors)",
        ALL_PUPILS: "Every pupil (nested layout): 2,000 members, more than AD returns in one read",
        **{g: f"Office staff at {site} with SIMS; nested in SIMS Office" for site, g in SIMS_OFFICE_SITE.items()},
    }.get(name, f"Role group: {name}")


# Domain Admins on AD (besides Administrator): the technician on purpose, dhart as the plant.
AD_DOMAIN_ADMINS = (LEGIT_IT_ADMIN, PLANTED["privileged"])


# -- data files the sandbox writes beside its config --


def signatures_csv(layout: str = "standard") -> str:
    """aup-signatures.csv: username,version,signed_on for everyone but UNSIGNED; hmarsh signed the old one."""
    rng = random.Random(2409)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["username", "version", "signed_on"])
    for p in school(layout).people:
        if p.username in UNSIGNED:
            continue
        if p.username == PLANTED["old_aup_version"]:
            w.writerow([p.username, OLD_AUP_VERSION, "2023-09-05"])
            continue
        signed = dt.date(2024, 9, 2) + dt.timedelta(days=rng.randint(0, 12))
        w.writerow([p.username, AUP_VERSION, signed.isoformat()])
    return buf.getvalue()


# fmt: off
_INTAKE = [
    # first, last, preferred, role, department, systems
    ("Jade", "Smith", "", "teacher", "Key Stage 1", "sims;target_tracker"),
    ("Zoé", "Martin", "", "teacher", "EYFS", "sims;target_tracker"),
    ("Joaquín", "Herrera", "", "teacher", "Key Stage 2", "sims;target_tracker;raise"),
    ("Søren", "Nielsen", "", "teacher", "Key Stage 2", "sims"),
    ("Małgorzata", "Zielińska", "Gosia", "ta", "Learning Support", "target_tracker"),
    ("Elizabeth", "Carter", "Liz", "teacher", "Key Stage 1", "sims;target_tracker"),
    ("Oluwaseun", "Adeyemi", "Seun", "ta", "Learning Support", ""),
    ("Niamh", "Ní Bhriain", "", "teacher", "Key Stage 2", "sims;target_tracker"),
    ("Dafydd", "ap Gwilym", "", "ta", "Learning Support", ""),
    ("Aarav", "Sharma", "", "teacher", "Key Stage 2", "sims;target_tracker"),
    ("Hannah", "O'Donnell", "", "ta", "EYFS", "target_tracker"),
    ("Thomas", "Gray", "Tom", "site", "Premises", ""),
    ("Amelia-Rose", "Davies", "", "ta", "Learning Support", ""),
    ("Leah", "McAllister", "", "teacher", "EYFS", "sims"),
    ("Kofi", "Boateng", "", "ta", "Learning Support", ""),
    ("Isabelle", "Fontaine", "", "office", "School Office", "sims;schoolcomms;sap"),
    ("Rhys", "Pritchard", "", "teacher", "Key Stage 2", "sims;target_tracker"),
    ("Freya", "Lindqvist", "", "ta", "Learning Support", "target_tracker"),
    ("Mohammed", "Iqbal", "", "teacher", "Key Stage 2", "sims;target_tracker"),
    ("Shauna", "Doyle", "", "ta", "Learning Support", ""),
    ("Eilidh", "MacDonald", "", "teacher", "Key Stage 1", "sims;target_tracker"),
    ("Tariq", "Mahmood", "", "office", "School Office", "sims"),
    ("Beatriz", "Gonçalves", "Bia", "ta", "Learning Support", ""),
    ("Ffion", "Jenkins", "", "governor", "Governing Body", ""),
    ("Chukwuemeka", "Obi", "Emeka", "governor", "Governing Body", ""),
]
# fmt: on


def next_september(today: dt.date) -> dt.date:
    this_year = dt.date(today.year, 9, 1)
    return this_year if today <= this_year else dt.date(today.year + 1, 9, 1)


def intake_csv(today: dt.date | None = None) -> str:
    """intake.csv: a September intake of new staff for `staff import` (start date: next 1 September).

    email is blank: the account's address comes from accounts.email in the config.
    """
    start = next_september(today or dt.date.today())
    first_code = len(school().people) + 101
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "first_name",
            "last_name",
            "preferred_name",
            "role",
            "staff_code",
            "email",
            "department",
            "start_date",
            "systems",
            "approved_by",
        ]
    )
    for i, (first, last, preferred, role, dept, systems) in enumerate(_INTAKE):
        approver = ""
        if systems:
            approver = BUSINESS_MANAGER if role == "office" else HEADTEACHER
        w.writerow(
            [first, last, preferred, role, f"HB{first_code + i:04d}", "", dept, start.isoformat(), systems, approver]
        )
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Layouts: the same people, laid out as other schools lay out their directories (docs/sandbox.md).
#
# standard  both flavours: ou=Staff with an OU per role, groupOfNames / AD groups in ou=Groups.
# flat      OpenLDAP: everyone in ou=People (leavers in ou=Former,ou=People), inetOrgPerson +
#           posixAccount, posixGroup groups with memberUid, one RFC 2307bis group (groupOfNames +
#           posixGroup), roles known by group only, accounts made by hand.
# nested    AD: staff in an OU per site and department (OU=Teaching,OU=North Site,OU=Staff), system
#           groups in their own OU tree (OU=Applications), 2,000 pupils in one group, three-level
#           nesting, accounts made by hand.

LAYOUTS: dict[str, tuple[str, ...]] = {"openldap": ("standard", "flat"), "ad": ("standard", "nested")}
DEFAULT_LAYOUT = "standard"

# Accounts made by hand (flat and nested): no staff code, no mail, no title; names that break naive
# code. On OpenLDAP they are named by cn (as phpLDAPadmin and friends do), so one DN holds an
# escaped comma: cn=Brown\, Michael,ou=People,...
# fmt: off
_HAND_MADE: list[tuple[str, str, str, str, str]] = [
    # username, cn, givenName, sn, role
    ("p.obrien", "Patrick O'Brien", "Patrick", "O'Brien", "teacher"),
    ("zoe", "Zoë", "Zoë", "Zoë", "ta"),
    ("ksmith-jones", "Kate Smith-Jones", "Kate", "Smith-Jones", "office"),
    ("mbrown", "Brown, Michael", "Michael", "Brown", "site"),
]
# fmt: on
HAND_MADE: tuple[str, ...] = tuple(h[0] for h in _HAND_MADE)


@cache
def _hand_made() -> tuple[Person, ...]:
    taken = {p.username for p in _standard_school().people}
    out = []
    for i, (username, cn, given, surname, role) in enumerate(_HAND_MADE):
        assert username not in taken, username  # a hand-made name must not shadow a generated one
        out.append(
            Person(
                username=username,
                given_name=given,
                surname=surname,
                display_name=cn,
                role=role,
                staff_code="",
                title="",
                department="",
                created_days=2500 + 100 * i,
                password_changed_days=400 + 10 * i,
                last_logon_days=1 + i,
            )
        )
    return tuple(out)


def is_hand_made(username: str) -> bool:
    return username in HAND_MADE


def _layout_members(
    people: tuple[Person, ...],
    role_groups: dict[str, list[str]],
    system_group: dict[str, str],
    rename: dict[str, str],
    extra: dict[str, list[str]],
    route: dict[tuple[str, str], str] | None = None,
) -> dict[str, tuple[str, ...]]:
    """Direct members per group, by the standard school's rules (leavers keep planted systems only).

    route: (system key, username) -> the group that person gets the system through (nesting).
    """
    groups: dict[str, list[str]] = {g: [] for gs in role_groups.values() for g in gs}
    groups.update({g: [] for g in system_group.values()})
    groups.update({g: [] for g in rename.values()})
    groups.update({g: list(m) for g, m in extra.items()})
    for p in people:
        if not p.leaver:
            for g in role_groups[p.role]:
                groups[g].append(p.username)
        for key in p.systems:
            g = (route or {}).get((key, p.username)) or system_group[key]
            groups[g].append(p.username)
        for g in p.extra_groups:
            groups[rename[g]].append(p.username)
    return {g: tuple(m) for g, m in groups.items()}


# -- flat (OpenLDAP) --

FLAT_PEOPLE_OU = "ou=People"
FLAT_LEAVERS_OU = "ou=Former,ou=People"  # inside the people OU, as flat schools often do it
FLAT_GROUPS_OU = "ou=Groups"
FLAT_SYSTEMS_OU = "ou=Systems,ou=Groups"
FLAT_ROLE_GROUPS = {
    "teacher": ["teachers", "staff"],
    "ta": ["support", "staff"],
    "office": ["office", "staff"],
    "slt": ["slt", "teachers", "staff"],
    "site": ["site", "staff"],
    "governor": ["governors"],
}
FLAT_SYSTEM_GROUPS = {"sims": "sims", "target_tracker": "targettracker", "raise": "raise", "schoolcomms": "schoolcomms"}
FLAT_IT_ADMINS = "itadmins"
# RFC 2307bis: groupOfNames + posixGroup, member (DN) and memberUid (username) kept in step.
FLAT_RFC2307BIS = ("sims",)
FLAT_STAFF_GID = 5000  # everyone's primary group: cn=staff
FLAT_FIRST_UID = 10001  # generated people; the hand-made ones have low numbers (1001...) from an old server
FLAT_HOME = "/home/{username}"
FLAT_SHELL = "/bin/bash"


def flat_gid_numbers() -> dict[str, int]:
    """cn -> gidNumber for the flat layout's groups (staff is 5000, the rest follow)."""
    names = ["staff"] + [g for g in _flat_school().members["openldap"] if g != "staff"]
    return {g: FLAT_STAFF_GID + i for i, g in enumerate(names)}


def flat_uid_number(username: str) -> int:
    if username in HAND_MADE:
        return 1001 + HAND_MADE.index(username)
    people = _standard_school().people
    return FLAT_FIRST_UID + next(i for i, p in enumerate(people) if p.username == username)


def flat_group_ou(cn: str) -> str:
    return FLAT_SYSTEMS_OU if cn in FLAT_SYSTEM_GROUPS.values() else FLAT_GROUPS_OU


@cache
def _flat_school() -> School:
    people = _standard_school().people + _hand_made()
    members = _layout_members(people, FLAT_ROLE_GROUPS, FLAT_SYSTEM_GROUPS, {IT_ADMINS: FLAT_IT_ADMINS}, {})
    return School(people=people, members={"openldap": members}, nested={"openldap": {}})


# -- nested (AD) --

NESTED_SITES = ("North Site", "South Site")
NESTED_STAFF_OU = "ou=Staff"
NESTED_LEAVERS_OU = "ou=Former Staff"
NESTED_GROUPS_OU = "ou=Groups"
NESTED_PUPILS_OU = "ou=Pupils"
# role -> the department OU under each site; slt and governors have one OU each, under ou=Staff
NESTED_DEPARTMENTS = {"teacher": "Teaching", "ta": "Support", "office": "Office", "site": "Premises"}
NESTED_ROLE_OUS = {"slt": "ou=Leadership,ou=Staff", "governor": "ou=Governors,ou=Staff"}
# system groups live away from groups_ou, in their own tree, and are named by full DN in the config
NESTED_SYSTEM_OUS = {
    "sims": "ou=MIS,ou=Applications",
    "target_tracker": "ou=Assessment,ou=Applications",
    "raise": "ou=Assessment,ou=Applications",
    "schoolcomms": "ou=Communications,ou=Applications",
}
SIMS_OFFICE_SITE = {site: f"SIMS Office ({site})" for site in NESTED_SITES}
ALL_PUPILS = "All Pupils"
PUPIL_COUNT = 2000  # above AD's 1,500 values per read: member comes back as member;range=0-1499


def site_of(username: str) -> str:
    """The site a person works at in the nested layout (stable: a checksum of the username)."""
    import zlib

    return NESTED_SITES[zlib.crc32(username.encode()) % len(NESTED_SITES)]


def nested_ou(p: Person) -> str:
    """Relative to the base DN, e.g. 'ou=Teaching,ou=North Site,ou=Staff'."""
    if p.leaver:
        return NESTED_LEAVERS_OU
    if p.role in NESTED_ROLE_OUS:
        return NESTED_ROLE_OUS[p.role]
    return f"ou={NESTED_DEPARTMENTS[p.role]},ou={site_of(p.username)},ou=Staff"


def nested_group_ou(name: str) -> str:
    for key, system in SYSTEMS.items():
        if system["group"] == name:
            return NESTED_SYSTEM_OUS[key]
    if name == SIMS_OFFICE or name in SIMS_OFFICE_SITE.values():
        return NESTED_SYSTEM_OUS["sims"]
    return NESTED_GROUPS_OU


@cache
def pupils() -> tuple[tuple[str, str, str, int], ...]:
    """(username, given, surname, year group) for the nested layout's 2,000 pupils."""
    rng = random.Random(2000)
    taken: set[str] = set()
    out = []
    for i in range(PUPIL_COUNT):
        given = rng.choice(_FEMALE + _MALE)
        surname = rng.choice(_SURNAMES)
        year = i % 7  # Reception (0) to Year 6
        intake = 2026 - year
        username = make_username(given, surname, taken, 20)
        username = f"{intake % 100:02d}{username}"[:20]
        while username in taken:
            username = username[:17] + f"{rng.randint(100, 999)}"
        taken.add(username)
        out.append((username, given, surname, year))
    return tuple(out)


@cache
def _nested_school() -> School:
    people = _standard_school().people + _hand_made()
    system_group = {k: s["group"] for k, s in SYSTEMS.items() if s["group"]}
    # Office staff get SIMS three levels down: SIMS Users > SIMS Office > SIMS Office (their site)
    route = {("sims", p.username): SIMS_OFFICE_SITE[site_of(p.username)] for p in people if p.role == "office"}
    extra: dict[str, list[str]] = {SIMS_OFFICE: [], **{g: [] for g in SIMS_OFFICE_SITE.values()}}
    extra[ALL_PUPILS] = [u for u, *_ in pupils()]
    members = _layout_members(people, ROLE_GROUPS, system_group, {IT_ADMINS: IT_ADMINS}, extra, route)
    nested = {"SIMS Users": (SIMS_OFFICE,), SIMS_OFFICE: tuple(SIMS_OFFICE_SITE.values())}
    return School(people=people, members={"ad": members}, nested={"ad": nested})


def person_ou(p: Person, layout: str = "standard") -> str:
    """Where a person lives, relative to the base DN, in a layout (either flavour for standard)."""
    if layout == "flat":
        return FLAT_LEAVERS_OU if p.leaver else FLAT_PEOPLE_OU
    if layout == "nested":
        return nested_ou(p)
    return p.ou


def group_description_flat(cn: str) -> str:
    for key, group in FLAT_SYSTEM_GROUPS.items():
        if group == cn:
            kind = "RFC 2307bis: member and memberUid" if cn in FLAT_RFC2307BIS else "posixGroup"
            return f"Access to {SYSTEMS[key]['name']} (aupctl system {key}; {kind})"
    return {
        FLAT_IT_ADMINS: "Administrators of the school network (privileged)",
        "staff": "Everyone employed by the school (not governors); everyone's primary group",
    }.get(cn, f"Role group: {cn}")
