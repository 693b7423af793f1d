"""Leavers: the pure parts (dates, the wave CSV, credentials file, review periods, the leavers table)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest

from aupctl import config
from aupctl.directory import ActiveDirectory, OpenLDAP, parse_filetime
from aupctl.errors import InputError, NotFoundError, RefusedError
from aupctl.leavers.restore import _approval_still_good, check_credentials_path, write_credentials
from aupctl.leavers.schedule import cancel, list_leavers, parse_date, read_wave
from aupctl.leavers.withdraw import leaver_tasks, stamp
from aupctl.plan import apply
from aupctl.records import tasks
from aupctl.records.leavers import CANCELLED, SCHEDULED
from aupctl.state import State

DATA = Path(__file__).parent / "data" / "leavers"

CFG = config.parse(
    """
[school]
name = "Test"
aup_version = "1"
[directory]
flavour = "ad"
url = "ldaps://dc.example"
bind_dn = "cn=x"
base_dn = "dc=example"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
[systems.sims]
name = "SIMS"
group = "SIMS Users"
review_days = 180
[systems.sap]
name = "SAP"
review_days = 365
[import.columns]
staff_code = "Payroll Number"
first_name = "Forename"
""",
    "test.toml",
)


def test_dates_iso_and_uk() -> None:
    assert parse_date("2026-07-22") == dt.date(2026, 7, 22)
    assert parse_date(" 22/07/2026 ") == dt.date(2026, 7, 22)
    with pytest.raises(InputError, match=r"--on: '31/02/2026' is not a date"):
        parse_date("31/02/2026", "--on")
    with pytest.raises(InputError, match="not a date"):
        parse_date("next friday")


def test_wave_good_file() -> None:
    wave = read_wave(str(DATA / "wave-good.csv"))
    assert [(r.who, r.leave_on, r.reason, r.line) for r in wave] == [
        ("wgreen", dt.date(2026, 7, 22), "resigned", 2),
        ("hlowe", dt.date(2026, 7, 22), "end of contract", 3),
    ]
    assert wave[0].label == "line 2: 'wgreen'"


def test_wave_from_excel_cp1252_with_a_name_column() -> None:
    (row,) = read_wave(str(DATA / "wave-cp1252.csv"))
    assert row.reason == "Café closure"


def test_wave_bad_date_names_the_line_and_refuses_the_file() -> None:
    with pytest.raises(InputError) as exc:
        read_wave(str(DATA / "wave-bad-date.csv"))
    assert "1 bad row(s); nothing was changed" in exc.value.message
    assert "line 3: leaving_date: '2026-02-30' is not a date" in exc.value.message


def test_wave_duplicates_and_empty_names_are_all_reported() -> None:
    with pytest.raises(InputError) as exc:
        read_wave(str(DATA / "wave-duplicate.csv"))
    msg = exc.value.message
    assert "2 bad row(s)" in msg
    assert "line 3: 'WGREEN' is already on line 2" in msg
    assert "line 4: no username and no staff_code" in msg


@pytest.mark.parametrize(
    "name, expected",
    [
        ("wave-no-date-column.csv", "missing required column(s): leaving_date"),
        ("wave-no-who.csv", "needs a username or a staff_code column"),
        ("wave-unknown-column.csv", "unknown column 'salary'"),
        ("no-such-file.csv", "no such file"),
    ],
)
def test_wave_bad_files(name: str, expected: str) -> None:
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_wave(str(DATA / name))


def test_wave_staff_code_through_the_schools_own_header(tmp_path: Path) -> None:
    f = tmp_path / "hr.csv"
    f.write_text("Payroll Number;Leaving Date;Reason\nT0042;2026-07-22;retired\n", encoding="utf-8")
    (row,) = read_wave(str(f), CFG)
    assert (row.by, row.who, row.label) == ("staff_code", "T0042", "line 2: staff code 'T0042'")


def test_wave_empty_file_of_rows(tmp_path: Path) -> None:
    f = tmp_path / "empty.csv"
    f.write_text("username,leaving_date\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no leavers in the file"):
        read_wave(str(f))


def test_stamp() -> None:
    assert stamp(dt.date(2026, 7, 22), "resigned") == "Left 2026-07-22: resigned"
    assert stamp(dt.date(2026, 7, 22), "") == "Left 2026-07-22"


def test_ad_expiry_is_the_end_of_the_leaving_day() -> None:
    ad = ActiveDirectory(CFG)
    mods = ad.expiry_changes("9223372036854775807", dt.date(2026, 7, 22))
    (value,) = mods["accountExpires"][0][1]
    assert parse_filetime(value) == dt.datetime(2026, 7, 23, tzinfo=dt.UTC)
    assert ad.expiry_changes(value, dt.date(2026, 7, 22)) == {}  # already set: nothing to do
    assert OpenLDAP(CFG).expiry_changes(None, dt.date(2026, 7, 22)) == {}


def test_credentials_file_is_new_and_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = check_credentials_path(str(tmp_path / "pw.csv"))
        write_credentials(p, [{"username": "obrien", "name": "Seán O'Brien, Jr", "password": "Pw-1"}])
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert p.read_text(encoding="utf-8") == 'username,name,password,must_change\nobrien,"Seán O\'Brien, Jr",Pw-1,yes\n'
    with pytest.raises(InputError, match="already exists and is never overwritten"):
        check_credentials_path(str(p))
    with pytest.raises(InputError, match="already exists"):
        write_credentials(p, [])
    with pytest.raises(InputError, match="needs --credentials-out"):
        check_credentials_path(None)
    with pytest.raises(InputError, match="does not exist"):
        check_credentials_path(str(tmp_path / "nowhere" / "pw.csv"))


def test_review_period_of_a_restored_approval() -> None:
    today = dt.date(2026, 7, 22)
    recent = {"system": "sims", "granted_at": "2026-03-01T10:00:00+00:00", "until": None}
    old = {"system": "sims", "granted_at": "2025-12-01T10:00:00+00:00", "until": None}
    ended = {"system": "sap", "granted_at": "2026-03-01T10:00:00+00:00", "until": "2026-06-30"}
    gone = {"system": "raise", "granted_at": "2026-03-01T10:00:00+00:00", "until": None}
    assert _approval_still_good(CFG, recent, today) == (True, "")
    ok, why = _approval_still_good(CFG, old, today)
    assert not ok and "past its review period of 180 days" in why
    assert _approval_still_good(CFG, ended, today)[0] is False
    assert "no longer in the config" in _approval_still_good(CFG, gone, today)[1]


def _row(st: State, username: str, status: str, leave_on: str = "2026-07-22") -> int:
    return st.execute(
        "INSERT INTO leavers (username, dn, status, leave_on, reason, scheduled_at, scheduled_by) "
        "VALUES (?,?,?,?,?,?,?)",
        (username, f"uid={username},ou=Staff", status, leave_on, "resigned", "2026-07-01T00:00:00+00:00", "tech"),
    )


def test_leaver_tasks_match_their_own_refs_only(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    tasks.open_task(st, kind="mailbox", text="m", username="a", ref="leaver:1")
    tasks.open_task(st, kind="collect-laptop", text="l", username="a", ref="leaver:1:laptop:HB-1")
    tasks.open_task(st, kind="mailbox", text="m", username="b", ref="leaver:12")
    tasks.open_task(st, kind="mailbox", text="m", username="c", ref="leaver:12:laptop:HB-2")
    assert [t["ref"] for t in leaver_tasks(st, 1)] == ["leaver:1", "leaver:1:laptop:HB-1"]
    assert len(leaver_tasks(st, 12)) == 2


def test_cancel_and_list(tmp_path: Path) -> None:
    st = State(tmp_path / "s.db")
    _row(st, "jsmith", SCHEDULED)
    _row(st, "adone", "done", "2026-01-10")
    assert [r["username"] for r in list_leavers(st)] == ["adone", "jsmith"]
    assert [r["username"] for r in list_leavers(st, status=SCHEDULED)] == ["jsmith"]
    apply(cancel(st, "JSMITH"), st)  # usernames fold case
    assert list_leavers(st, status=SCHEDULED) == []
    assert list_leavers(st, status=CANCELLED)[0]["username"] == "jsmith"
    (entry,) = [e for e in st.audit_entries() if e.action == "leaver-cancel"]
    assert entry.target == "jsmith" and entry.details["leave_on"] == "2026-07-22"
    with pytest.raises(NotFoundError, match="no scheduled withdrawal"):
        cancel(st, "jsmith")
    with pytest.raises(RefusedError, match="not scheduled: there is nothing to cancel"):
        cancel(st, "adone")
    assert json.dumps(list_leavers(st))  # plain values, ready for --format json
