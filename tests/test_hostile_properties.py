"""Property-based tests (hypothesis) of what reads outside text: the CSV reader, the intake's row checks
and name folding, on arbitrary bytes and arbitrary Unicode. Whatever comes in, the outcome is a result
or an AupctlError (exit 2 with a message), never another exception (exit 70); an accepted row holds no
control, bidi or invisible character, and gives a valid username; and what is shown escaped or written
as JSON or a CSV cell is safe for a terminal and a spreadsheet while meaning the same."""

from __future__ import annotations

import atexit
import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aupctl import config, csvfile, text, usernames
from aupctl.errors import AupctlError
from aupctl.staff import intake

CFG = config.parse(
    """
[school]
name = "Test School"
aup_version = "2026"

[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:6360"
bind_dn = "cn=admin,dc=t,dc=test"
base_dn = "dc=t,dc=test"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"

[roles.teacher]
ou = "ou=Teachers,ou=Staff"
""",
    "t.toml",
)
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
TMP = Path(tempfile.mkdtemp(prefix="aupctl-hypothesis-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)

# Unicode of every kind, with the hostile kinds made likely: controls, bidi, zero-width, surrogates, BOM.
HOSTILE_CHARS = st.sampled_from(
    ["\x00", "\x1b", "\x07", "\x7f", "\x85", "\x9b", "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2028"]
    + ['"', ",", ";", "\t", "\n", "\r", "=", "+", "-", "@", "'"]
)
ANY_TEXT = st.text(st.one_of(st.characters(), HOSTILE_CHARS), max_size=40)
NAME = st.one_of(ANY_TEXT, st.sampled_from(["Zoë", "O'Brien", "Łukasz", "Straße", "Ørsted", "李", "Ñandú", ""]))


def _file(data: bytes) -> Path:
    f = tempfile.NamedTemporaryFile(dir=TMP, suffix=".csv", delete=False)
    f.write(data)
    f.close()
    return Path(f.name)


@SETTINGS
@given(st.binary(max_size=400))
@example(b"\xff\xfef\x00\x00")  # UTF-16, odd length
@example(b"\xef\xbb\xbffirst_name\n\xe9")  # a BOM, then Latin-1
@example(b'first_name,last_name,role\n"unterminated')
def test_csv_reader_on_arbitrary_bytes(data: bytes) -> None:
    p = _file(data)
    try:
        table = csvfile.read(p, required=["first_name"], optional=["last_name", "role"])
    except AupctlError as exc:
        assert str(p) in exc.message  # every refusal names the file
    else:
        assert all(set(r.values) <= {"first_name", "last_name", "role"} for r in table.rows)
    finally:
        p.unlink()


def _intake_csv(rows: list[list[str]], encoding: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["first_name", "last_name", "role", "preferred_name", "department", "staff_code"])
    w.writerows(rows)
    return buf.getvalue().encode(encoding, "surrogatepass" if encoding.startswith("utf") else "strict")


@SETTINGS
@given(
    st.lists(
        st.tuples(NAME, NAME, st.sampled_from(["teacher", "Teacher", "astronaut", ""]), NAME, NAME, NAME), max_size=6
    ),
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_intake_rows_of_arbitrary_unicode(rows: list[tuple[str, ...]], encoding: str) -> None:
    try:
        data = _intake_csv([list(r) for r in rows], encoding)
    except UnicodeEncodeError:
        return  # not a file anyone could write
    p = _file(data)
    try:
        people = intake.read_intake(CFG, p)
    except AupctlError as exc:
        assert exc.exit_code == 2
        assert not any(text.unsafe(c) for c in text.shown(str(exc), newlines=True) if c != "\n")
    else:
        # all or nothing: every non-blank row was accepted, and each is clean
        assert len(people) == sum(1 for r in rows if any(v.strip() for v in r))
        for person in people:
            for value in (person.first_name, person.last_name, person.preferred_name, person.department):
                assert text.problem(value) is None
            assert usernames.VALID.match(person.base), person.base
    finally:
        p.unlink()


@SETTINGS
@given(NAME, NAME, NAME)
def test_name_folding_never_crashes(first: str, last: str, preferred: str) -> None:
    for name in (first, last, preferred):
        try:
            folded = usernames.fold(name)
        except usernames.NotLatinError:
            continue
        assert folded == "" or (folded.isascii() and folded.isalnum() and folded == folded.lower())
    try:
        made = usernames.render(CFG.accounts.username, usernames.NameParts(first, last, preferred))
    except ValueError:  # NotLatinError too: the intake asks for the username column
        return
    assert made.isascii()


@SETTINGS
@given(ANY_TEXT)
def test_shown_inert_and_json_are_safe_and_faithful(value: str) -> None:
    from aupctl.commands.output import to_json

    out = text.shown(value)
    assert not any(text.unsafe(c) for c in out)
    assert text.shown(value, newlines=True).count("\n") == value.count("\n")
    assert text.first_unsafe(value) is None or text.problem(value)
    cell = text.inert(value)
    assert cell[:1] not in text.FORMULA_START and cell.endswith(value)
    dumped = to_json({"name": value, "list": [value]})
    assert not any(text.unsafe(c) for c in dumped if c != "\n")
    assert json.loads(dumped) == {"name": value, "list": [value]}


@SETTINGS
@given(ANY_TEXT)
def test_csv_cell_is_safe_and_one_line(value: str) -> None:
    cell = text.csv_cell(value)
    assert not any(text.unsafe(c) for c in cell) and "\n" not in cell and "\r" not in cell
    assert cell[:1] not in text.FORMULA_START
    assert cell.endswith(text.shown(value))
