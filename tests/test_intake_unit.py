"""The intake's file check (pure, no server): encodings, delimiters, header mapping, every bad row."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

import pytest

from aupctl import config as config_mod
from aupctl.credfile import CredentialsFile
from aupctl.errors import InputError
from aupctl.staff.intake import CREDENTIAL_COLUMNS, parse_date, read_intake, split_systems

DATA = Path(__file__).parent / "data" / "intake"

CONFIG = """
[school]
name = "Test School"
aup_version = "2024-09"
[directory]
flavour = "{flavour}"
url = "ldaps://127.0.0.1:1"
bind_dn = "cn=a,dc=test"
base_dn = "dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
[accounts]
username = "{{first_initial}}{{last_name}}"
max_length = {max_length}
email = "{{username}}@test.example"
[roles.teacher]
ou = "ou=Teachers,ou=Staff"
groups = ["Teaching Staff"]
systems = ["sims", "target_tracker", "raise", "intranet"]
[roles.ta]
ou = "ou=Support,ou=Staff"
groups = ["Support Staff"]
systems = ["intranet", "target_tracker"]
[roles.office]
ou = "ou=Office,ou=Staff"
systems = ["sims", "schoolcomms"]
[roles.site]
ou = "ou=Site,ou=Staff"
systems = ["intranet"]
[systems.sims]
name = "SIMS"
group = "SIMS Users"
approvers = ["Mrs A Patel (Headteacher)", "Mr D Okafor (School Business Manager)"]
[systems.target_tracker]
name = "Target Tracker"
group = "Target Tracker Users"
approvers = ["Mrs A Patel (Headteacher)", "Mrs R Hughes (Deputy Headteacher)"]
[systems.raise]
name = "RAISE"
approvers = ["Mrs A Patel (Headteacher)"]
[systems.schoolcomms]
name = "Schoolcomms"
approvers = ["Mr D Okafor (School Business Manager)"]
[systems.intranet]
name = "Intranet"
approvers = ["Mr D Okafor (School Business Manager)"]
{extra}
"""


def make_cfg(flavour: str = "openldap", max_length: int = 20, extra: str = "") -> config_mod.Config:
    return config_mod.parse(CONFIG.format(flavour=flavour, max_length=max_length, extra=extra), "test.toml")


def test_realistic_file_reads_every_row() -> None:
    people = read_intake(make_cfg(), DATA / "realistic.csv")
    assert len(people) == 60
    by_code = {p.staff_code: p for p in people}
    zoe = by_code["T6001"]
    assert (zoe.first_name, zoe.base, zoe.systems) == ("Zoë", "zwhitfield", ["sims", "target_tracker"])
    assert zoe.approvers == {"sims": "Mrs A Patel (Headteacher)", "target_tracker": "Mrs A Patel (Headteacher)"}
    assert by_code["T6002"].base == "lwisniewski"
    assert by_code["T6002"].start_date == "2026-09-01"  # written 01/09/2026, as Excel does in the UK
    assert by_code["T6008"].base == "istrasse"
    assert by_code["T6009"].base == "iyildiz"
    assert by_code["T6011"].base == "divanov"  # the username column, for a surname in Cyrillic
    assert by_code["T6011"].username == "divanov"
    assert by_code["T6004"].display_name == "Jules Smith"


@pytest.mark.parametrize(
    ("name", "codes", "encoding_hint"),
    [
        ("excel-cp1252.csv", ["E7001", "E7002", "E7003", "E7004", "E7005"], "Zoë"),
        ("bom.csv", ["B7101", "B7102", "B7103"], "Agnieszka"),
        ("semicolon.csv", ["S7201", "S7202"], "Małgorzata"),
        ("tab.csv", ["X7301"], "Tuğba"),
    ],
)
def test_excel_encodings_and_delimiters(name: str, codes: list[str], encoding_hint: str) -> None:
    people = read_intake(make_cfg(), DATA / name)
    assert [p.staff_code for p in people] == codes
    assert people[0].first_name == encoding_hint


def test_cp1252_file_is_really_cp1252() -> None:
    raw = (DATA / "excel-cp1252.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert b"\r\n" in raw
    people = read_intake(make_cfg(), DATA / "excel-cp1252.csv")
    assert [p.base for p in people] == ["zbronte", "flefevre", "soceallaigh", "jmuller", "amunoz"]
    assert people[0].start_date == "2026-09-01"


def test_semicolon_file_keeps_commas_inside_values() -> None:
    people = read_intake(make_cfg(), DATA / "semicolon.csv")
    assert people[0].department == "Learning Support, EYFS"
    assert people[1].base == "erubik"


def test_school_headers_mapped_in_config() -> None:
    extra = '[import.columns]\nfirst_name = "Legal Forename"\nlast_name = "Legal Surname"\nrole = "Post"\nstaff_code = "Payroll No"\n'
    people = read_intake(make_cfg(extra=extra), DATA / "mapped-headers.csv")
    assert (people[0].first_name, people[0].last_name, people[0].role, people[0].staff_code) == (
        "Rhodri",
        "Pryce",
        "teacher",
        "M7401",
    )
    with pytest.raises(InputError, match="unknown column 'Legal Forename'"):
        read_intake(make_cfg(), DATA / "mapped-headers.csv")


def test_every_bad_row_is_named_in_one_message() -> None:
    with pytest.raises(InputError) as exc:
        read_intake(make_cfg(), DATA / "bad.csv")
    text = str(exc.value)
    assert "14 bad row(s); nothing was changed" in text
    expected = {
        3: "role: unknown role 'dinner lady'",
        4: "systems: unknown system 'minecraft'",
        5: "systems: role 'ta' may not be nominated for sims",
        6: "approved_by: 'The Caretaker' is not an approver for SIMS",
        7: "approved_by: is empty, but sims needs an approver",
        8: "first_name: is empty",
        9: "start_date: '31/02/2026' is not a date",
        10: "staff_code: 'Z8001' is also on line 2",
        11: "username: first_name gives no letters",
        12: "username: 'Иван' has a letter ('И') that is not in the Latin alphabet: this row needs the username column",
        13: "username: 'Bad User!' may hold only",
        14: "email: 'not-an-email' is not an email address",
        16: "first_name: Good Person is also on line 15",
        17: "role: is empty",
    }
    for line, what in expected.items():
        assert f"line {line}: {what}" in text, f"line {line} not reported as {what!r}:\n{text}"
    for good in (2, 15):
        assert f"line {good}:" not in text


def test_approver_prefix_is_enough_but_must_be_one_of_the_systems(tmp_path: Path) -> None:
    path = tmp_path / "approvers.csv"
    path.write_text(
        "first_name,last_name,role,systems,approved_by\n"
        "Amy,Pond,teacher,sims;target_tracker,Mrs A Patel\n"
        "Rory,Williams,teacher,sims,Mrs R Hughes\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as exc:
        read_intake(make_cfg(), path)
    assert "line 3: approved_by: 'Mrs R Hughes' is not an approver for SIMS" in str(exc.value)
    assert "line 2" not in str(exc.value)


def test_long_names_are_refused_and_usernames_cut(tmp_path: Path) -> None:
    long_surname = "Wolfeschlegelsteinhausenbergerdorff"
    f = tmp_path / "long.csv"
    f.write_text(
        f"first_name,last_name,role\nMaximilian,{long_surname},teacher\nLong,{'x' * 70},teacher\n", encoding="utf-8"
    )
    with pytest.raises(InputError) as exc:
        read_intake(make_cfg(), f)
    assert "line 3: last_name: is longer than 64 characters" in str(exc.value)
    f.write_text(f"first_name,last_name,role\nMaximilian,{long_surname},teacher\n", encoding="utf-8")
    (person,) = read_intake(make_cfg(flavour="ad"), f)
    assert person.base == "mwolfeschlegelsteinh"  # AD's 20


def test_hostile_names_fold_to_safe_usernames() -> None:
    people = read_intake(make_cfg(), DATA / "hostile.csv")
    assert [p.base for p in people] == [
        "aab",
        "sbright",
        "pclose",
        "bslash",
        "htag",
        "sedges",
        "joneill",
        "rplussemicolon",
        "nuid",
    ]
    spacey = people[5]
    assert (spacey.first_name, spacey.last_name, spacey.department) == ("Spacey", "Edges", "EYFS")
    assert people[6].first_name == 'Jack "JJ"' and people[6].preferred_name == '"Jay"'


def test_empty_and_missing_files(tmp_path: Path) -> None:
    header_only = tmp_path / "h.csv"
    header_only.write_text("first_name,last_name,role\n", encoding="utf-8")
    with pytest.raises(InputError, match="no rows to import"):
        read_intake(make_cfg(), header_only)
    with pytest.raises(InputError, match="no such file"):
        read_intake(make_cfg(), tmp_path / "missing.csv")
    no_role = tmp_path / "r.csv"
    no_role.write_text("first_name,last_name\nA,B\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing required column.*role"):
        read_intake(make_cfg(), no_role)


def test_dates_and_systems_parsing() -> None:
    assert parse_date("2026-09-01") == "2026-09-01"
    assert parse_date("01/09/2026") == "2026-09-01"
    assert parse_date("1/9/26") == "2026-09-01"
    with pytest.raises(ValueError):
        parse_date("09/31/2026")
    assert split_systems(" sims ; target_tracker;") == ["sims", "target_tracker"]


def test_credentials_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "creds.csv"
        creds = CredentialsFile(path, CREDENTIAL_COLUMNS)
        creds.check()
        creds.write([["jsmith", "Some-Pass-Phrase-12", "J Smith", "", "teacher", "", "uid=jsmith", "now"]])
        creds.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("username,password,")
    assert lines[1].startswith("jsmith,Some-Pass-Phrase-12,")
    again = CredentialsFile(path, CREDENTIAL_COLUMNS)
    with pytest.raises(InputError, match="already exists and is never overwritten"):
        again.check()
    with pytest.raises(InputError, match="never overwritten"):
        again.open()
    assert path.read_text(encoding="utf-8").splitlines() == lines
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    with pytest.raises(InputError):
        CredentialsFile(link, CREDENTIAL_COLUMNS).check()
    with pytest.raises(InputError, match="does not exist"):
        CredentialsFile(tmp_path / "no" / "dir.csv", CREDENTIAL_COLUMNS).check()


def test_credentials_file_cells_never_run_as_formulas(tmp_path: Path) -> None:
    path = tmp_path / "creds.csv"
    creds = CredentialsFile(path, CREDENTIAL_COLUMNS)
    creds.write(
        [["jsmith", "Harbor-Velvet-Ocean-Timber-47", '=HYPERLINK("x")', "@evil", "teacher", "+1", "uid=jsmith", "now"]]
    )
    creds.close()
    (row,) = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert row["password"] == "Harbor-Velvet-Ocean-Timber-47"
    assert row["name"] == '\'=HYPERLINK("x")' and row["email"] == "'@evil" and row["staff_code"] == "'+1"


def test_credentials_file_escapes_control_and_bidi_but_keeps_the_password(tmp_path: Path) -> None:
    from aupctl import passphrase, text

    path = tmp_path / "creds.csv"
    creds = CredentialsFile(path, CREDENTIAL_COLUMNS)
    password = passphrase.generate()
    name = "Eve\x1b[31m\r\nRed\u202egnp.exe"
    creds.write([["jsmith", password, name, "e@x.test", "teacher", "HS1", "uid=jsmith", "now"]])
    creds.close()
    raw = path.read_text(encoding="utf-8")
    assert not [c for c in raw if text.unsafe(c) and c != "\n"] and raw.count("\n") == 2
    (row,) = list(csv.DictReader(io.StringIO(raw)))
    assert row["password"] == password and row["name"] == "Eve\\x1b[31m\\x0d\\x0aRed\\u202egnp.exe"
    # generated passwords hold nothing csv_cell would change: the password column can stay as it is
    assert all(text.csv_cell(p) == p for p in (passphrase.generate() for _ in range(200)))


def test_variant_prefilter_never_hides_a_variant() -> None:
    """build skips the 50 look-ups of base, base2 … base50 when no directory username could be one of them:
    every variant must pass the filter, and unrelated names must not."""
    import string

    from aupctl import usernames
    from aupctl.staff.intake.plan import _may_hold_variant

    for base in ("jsmith", "j.smith", "agent007", "a", "zoe-obrien", "x" * 20, "ab12c3"):
        for max_length in (3, 8, 12, 20):
            for v in usernames.variants(base, max_length):
                assert _may_hold_variant(base, max_length, {v.lower().rstrip(string.digits)}), (base, max_length, v)
    assert not _may_hold_variant("jsmith", 20, {"jsmit", "jsmithe", "ajsmith"})


def test_system_keys_in_the_file_are_case_insensitive_and_a_misspelt_one_is_suggested(tmp_path) -> None:
    f = tmp_path / "caps.csv"
    f.write_text(
        "first_name,last_name,role,staff_code,systems,approved_by\n"
        "Zoë,Whitfield,teacher,C1,SIMS;Target_Tracker,Mrs A Patel (Headteacher)\n",
        encoding="utf-8",
    )
    (zoe,) = read_intake(make_cfg(), f)
    assert zoe.systems == ["sims", "target_tracker"]  # as the config spells them
    assert set(zoe.approvers) == {"sims", "target_tracker"}
    f.write_text(
        "first_name,last_name,role,staff_code,systems,approved_by\n"
        "Zoë,Whitfield,teacher,C1,simms,Mrs A Patel (Headteacher)\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as exc:
        read_intake(make_cfg(), f)
    assert "line 2: systems: unknown system 'simms'" in str(exc.value) and "did you mean sims?" in str(exc.value)
