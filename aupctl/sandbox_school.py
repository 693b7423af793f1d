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


@cache
def school() -> School:
    """The school; the same every call (fixed seed)."""
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
    }.get(name, f"Role group: {name}")


# Domain Admins on AD (besides Administrator): the technician on purpose, dhart as the plant.
AD_DOMAIN_ADMINS = (LEGIT_IT_ADMIN, PLANTED["privileged"])


# -- data files the sandbox writes beside its config --


def signatures_csv() -> str:
    """aup-signatures.csv: username,version,signed_on for everyone but UNSIGNED; hmarsh signed the old one."""
    rng = random.Random(2409)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["username", "version", "signed_on"])
    for p in school().people:
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
