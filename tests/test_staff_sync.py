"""`aupctl staff sync` on the OpenLDAP sandbox school: the whole staff exported as SIMS would, then a
joiner, a marriage, a future leaver; a re-run doing nothing; a truncated export and changed columns refused."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from test_intake import run

from aupctl import config as config_mod
from aupctl.directory import Directory
from aupctl.eligibility import is_leaver
from aupctl.records.roles import recorded_roles
from aupctl.roles import RoleResolver
from aupctl.staff.sync.profiles import PROFILES
from aupctl.state import open_state

SIMS = PROFILES["sims"]


def _staff(info):
    cfg = config_mod.load(str(info.config_path))
    d = Directory(cfg, info.bind_password).connect()
    st = open_state(cfg.state.path)
    resolve = RoleResolver(cfg, recorded_roles(st))
    fl = d.flavour
    out, other = [], []
    for a in fl.iter_accounts(d, base=cfg.directory.base_dn, with_groups=True):
        if is_leaver(cfg, a):
            continue
        role = resolve(a).role
        (out if role and a.given_name and a.surname else other).append((a, role))
    d.close()
    st.close()
    return cfg, out, [a.username for a, _ in other]


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SIMS.values()))
        w.writeheader()
        for r in rows:
            w.writerow({SIMS[k]: v for k, v in r.items()})
    return path


def test_sync_openldap(fresh_openldap, tmp_path: Path) -> None:
    info = fresh_openldap
    cfg, staff, others = _staff(info)
    ignore = ", ".join(f'"{u}"' for u in others)
    with info.config_path.open("a", encoding="utf-8") as fh:
        fh.write(f'\n[mis]\nprofile = "sims"\nignore = [{ignore}]\n')
    rows = [
        {"person_id": f"P{i:05d}", "legal_first": a.given_name, "legal_last": a.surname, "staff_code": a.staff_code,
         "email": a.email, "role": role}
        for i, (a, role) in enumerate(staff)
    ]
    first = _write(tmp_path / "day1.csv", rows)
    code, out, err = run("staff", "sync", str(first), "--yes", config=info.config_path)
    assert code in (0, 1), err
    # The same export again: nothing to do.
    code2, out2, err2 = run("staff", "sync", str(first), "--yes", config=info.config_path)
    assert "nothing to do" in err2 + out2, (out2, err2)

    # Day 2: a joiner starting in 3 days, one in 60 days, a marriage, a leaver next month.
    today = dt.date.today()
    day2 = [dict(r) for r in rows]
    day2.append({"person_id": "P90001", "legal_first": "Nadia", "legal_last": "Quarshie", "role": staff[0][1],
                 "start_date": (today + dt.timedelta(days=3)).isoformat()})
    day2.append({"person_id": "P90002", "legal_first": "Owen", "legal_last": "Pryce", "role": staff[0][1],
                 "start_date": (today + dt.timedelta(days=60)).isoformat()})
    day2[1]["legal_last"] = "Marriedname"
    day2[1]["email"] = ""
    day2[2]["end_date"] = (today + dt.timedelta(days=30)).isoformat()
    second = _write(tmp_path / "day2.csv", day2)
    creds = tmp_path / "creds.csv"
    code, out, err = run("staff", "sync", str(second), "--yes", "--credentials-out", str(creds),
                         config=info.config_path)
    assert code in (0, 1), err
    assert "joining on" in out and "Pryce" in out
    assert "Nadia" in creds.read_text(encoding="utf-8") or "nquarshie" in creds.read_text(encoding="utf-8").lower()
    assert "Marriedname" in out and "withdrawal scheduled" in out
    code, out, err = run("staff", "sync", str(second), "--yes", config=info.config_path)
    assert "nothing to do" in out + err

    # A truncated export (half the staff leaving) and changed columns are refused, nothing changed.
    cut = [dict(r, end_date=today.isoformat()) for r in day2[: len(day2) // 2]] + day2[len(day2) // 2 :]
    code, out, err = run("staff", "sync", str(_write(tmp_path / "cut.csv", cut)), "--yes", config=info.config_path)
    assert code == 2 and "max_leavers" in err
    odd = tmp_path / "odd.csv"
    odd.write_text(first.read_text(encoding="utf-8").replace("Department", "Dept"), encoding="utf-8")
    code, out, err = run("staff", "sync", str(odd), "--yes", config=info.config_path)
    assert code == 2 and "differ from last time" in err


def _cfg(tmp_path: Path):
    """The documented example config: its [mis.roles] map the sample exports' roles."""
    example = Path(__file__).parent.parent / "config.example.toml"
    return config_mod.parse(example.read_text(encoding="utf-8"), str(tmp_path / "aupctl.toml"))


DATA = Path(__file__).parent / "data" / "mis"


def test_every_profile_reads_its_sample(tmp_path: Path) -> None:
    import pytest

    from aupctl.staff.sync import read_export

    cfg = _cfg(tmp_path)
    seen = {}
    for profile in PROFILES:
        exp = read_export(cfg, str(DATA / f"{profile}.csv"), profile)
        seen[profile] = [(r.person_id, r.role, r.last_name) for r in exp.rows]
        assert exp.rows and all(r.role for r in exp.rows)
    assert seen["sims"][0] == ("10234", "teacher", "O'Connor")
    assert seen["sims"][2][1] == "office"
    assert seen["wonde"][1] == ("2302", "office", "Hart")
    sims_end = read_export(cfg, str(DATA / "sims.csv"), "sims").rows[2].end_date
    assert sims_end == dt.date(2027, 8, 31)  # DD/MM/YYYY read as the UK writes it
    # An unmapped role and a bad date are named by line and header, nothing read.
    bad = tmp_path / "bad.csv"
    bad.write_text(
        (DATA / "sims.csv").read_text(encoding="utf-8").replace("Office Manager", "Caretaker").replace("01/09/2019", "31/02/2019"),
        encoding="utf-8",
    )
    from aupctl.errors import InputError, RefusedError

    with pytest.raises(InputError) as exc:
        read_export(cfg, str(bad), "sims")
    assert "line 4: Role: 'Caretaker'" in str(exc.value) and "line 2: Employment Start Date" in str(exc.value)
    # Empty and stale exports are refused.
    empty = tmp_path / "empty.csv"
    empty.write_text((DATA / "sims.csv").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(RefusedError, match="no staff"):
        read_export(cfg, str(empty), "sims")
    import os

    old = tmp_path / "old.csv"
    old.write_text((DATA / "sims.csv").read_text(encoding="utf-8"), encoding="utf-8")
    os.utime(old, (1, 1))
    with pytest.raises(RefusedError, match="old"):
        read_export(cfg, str(old), "sims")
