"""The intake stopped part-way, then finished by a re-run: Ctrl-C inside a change and SIGKILL of the
process (both flavours), and the server stopped mid-run (OpenLDAP). After the re-run: every person
once, enabled, with their groups; each password either still the one in the killed run's credentials
file or reset into the new one (and said so); never an enabled account without a password."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_intake import credentials, password_works, run

from aupctl import passphrase
from aupctl.config import load
from aupctl.directory import flavour_for, open_directory, pipeline, same_dn
from aupctl.errors import PartialError
from aupctl.plan import apply
from aupctl.staff import intake
from aupctl.state import State

NAMES = ["Aoife", "Bartosz", "Céline", "Dagný", "Eamon", "Filip", "Gráinne", "Håkon", "Iñigo", "Jolanta", "Kári"]
SURNAMES = ["Ní Dhuibhir", "Wróbel", "Fauré", "Jónsdóttir", "Ó Dálaigh", "Horák", "Nic Amhlaoibh", "Ødegaard"]


def write_file(path: Path, prefix: str, count: int, role: str = "teacher") -> list[str]:
    codes = []
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role", "staff_code", "department"])
        for i in range(count):
            code = f"{prefix}{i:04d}"
            codes.append(code)
            w.writerow([NAMES[i % len(NAMES)], f"{SURNAMES[i % len(SURNAMES)]}", role, code, "Key Stage 2"])
    return codes


def check_finished(
    info, cfg, d, codes: list[str], files: list[Path], must_bind: set[str] = frozenset()
) -> dict[str, str]:
    """Every code: one account, enabled, in the role's groups, and a password from one of the files
    (the newest line for it) that works. Returns username -> the file its password is in."""
    fl = d.flavour
    role = cfg.roles["teacher"]
    lines: dict[str, tuple[str, Path]] = {}
    for f in files:
        if f.exists():
            for username, row in credentials(f).items():
                lines[username] = (row["password"], f)  # later files win
    where = {}
    step = max(1, len(codes) // 12)  # every account's state; the binds for a spread of a dozen
    for i, code in enumerate(codes):
        found = list(d.search(cfg.directory.base_dn, f"(&{fl.person_filter}(employeeNumber={code}))", ["1.1"]))
        assert len(found) == 1, f"{code}: {len(found)} accounts"
        acct = fl.account(
            found[0][0], dict(next(d.search(found[0][0], "(objectClass=*)", fl.user_attributes, "BASE"))[1])
        )
        fl.fill_groups(d, [acct])
        assert not acct.disabled, acct.username
        for g in role.groups:
            assert any(same_dn(have, cfg.group_dn(g)) for have in acct.groups), (acct.username, g)
        assert acct.username in lines, f"{acct.username}: no password in any credentials file"
        password, f = lines[acct.username]
        where[acct.username] = f.name
        if i % step and code not in must_bind:
            continue
        assert password_works(info, cfg, acct, password), f"{acct.username}: the password in {f.name} does not work"
    return where


def enabled_without_password(info, cfg, d, codes: list[str], files: list[Path]) -> list[str]:
    """Accounts that are enabled but whose password is not one aupctl wrote (there must be none)."""
    fl = d.flavour
    written: dict[str, list[str]] = {}
    for f in files:
        if f.exists():
            with f.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    written.setdefault(row["username"], []).append(row["password"])
    bad = []
    for code in codes:
        for dn, attrs in d.search(
            cfg.directory.base_dn, f"(&{fl.person_filter}(employeeNumber={code}))", fl.user_attributes
        ):
            acct = fl.account(dn, attrs)
            if not acct.disabled and not any(
                password_works(info, cfg, acct, p) for p in written.get(acct.username, [])
            ):
                bad.append(acct.username)
    return bad


@pytest.mark.parametrize("first_file", ["kept", "lost"])
def test_ctrl_c_in_a_change_then_rerun_finishes(env, tmp_path, monkeypatch, first_file) -> None:
    info, cfg, d, st = env
    f = tmp_path / "ctrlc.csv"
    codes = write_file(f, "KC" if first_file == "kept" else "KL", 9)
    first = tmp_path / "first.csv"
    calls = {"n": 0}
    if d.flavour.pipelined_writes:
        # OpenLDAP: each person is one add, the batch's adds sent together, then its groups' requests: Ctrl-C
        # while the group answers are awaited (the accounts made, their groups maybe not, answers unread).
        real_receive = pipeline.Pending._receive_all

        def interrupted_receive(self):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real_receive(self)

        monkeypatch.setattr(pipeline.Pending, "_receive_all", interrupted_receive)
    else:
        real = type(d.flavour).set_password

        def interrupted(self, directory, dn, password):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            return real(self, directory, dn, password)

        monkeypatch.setattr(type(d.flavour), "set_password", interrupted)
    people = intake.read_intake(cfg, f)
    plan = intake.build(cfg, d, st, people, credentials_out=str(first), source=str(f))
    plan.check_ready()
    with pytest.raises(PartialError) as exc:
        apply(plan.plan, st)
    plan.close()
    assert "interrupted (Ctrl-C)" in str(exc.value)
    monkeypatch.undo()
    # stopped part-way: the credentials were written first, some accounts are made, none open without a password
    assert len(credentials(first)) == 9
    made = [c for c in codes if list(d.search(cfg.directory.base_dn, f"(employeeNumber={c})", ["1.1"]))]
    assert 0 < len(made)
    assert enabled_without_password(info, cfg, d, codes, [first]) == []
    assert st.query("SELECT count(*) AS n FROM provisioned WHERE status='creating'")[0]["n"] > 0
    # the re-run finishes the job and says what it did with the passwords
    if first_file == "lost":
        first.unlink()  # the first credentials file is gone: half-made accounts get a new password, and it says so
    second = tmp_path / "second.csv"
    code, out, err = run("staff", "import", str(f), "--yes", "--credentials-out", str(second), config=info.config_path)
    assert code == 0, err
    assert "interrupted run" in err
    where = check_finished(info, cfg, d, codes, [first, second])
    if first_file == "kept":
        assert "first.csv" in where.values()  # accounts the killed run made keep the password it wrote down
    else:
        assert set(where.values()) == {"second.csv"}
        assert "are gone: given a new password" in err
    assert not st.query("SELECT * FROM provisioned WHERE status='creating'")
    code, out, err = run("staff", "import", str(f), "--yes", config=info.config_path)
    assert code == 0 and "nothing to do" in err


def test_sigkill_then_rerun_finishes(env, tmp_path) -> None:
    info, cfg, d, st = env
    count = 80 if cfg.directory.flavour == "openldap" else 40
    f = tmp_path / "kill.csv"
    codes = write_file(f, "KS", count)
    first = tmp_path / "first.csv"
    argv = [
        sys.executable,
        "-m",
        "aupctl.commands",
        "staff",
        "import",
        str(f),
        "--yes",
        "--credentials-out",
        str(first),
    ]
    proc = subprocess.Popen(
        argv,
        env=dict(os.environ, AUPCTL_CONFIG=str(info.config_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if first.exists() and first.stat().st_size > 200:  # the first batch's passwords are on disk
            break
        if proc.poll() is not None:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL, "the import finished before it could be killed"
    made = sum(1 for c in codes if list(d.search(cfg.directory.base_dn, f"(employeeNumber={c})", ["1.1"])))
    assert made < count
    assert enabled_without_password(info, cfg, d, codes, [first]) == []
    second = tmp_path / "second.csv"
    code, out, err = run("staff", "import", str(f), "--yes", "--credentials-out", str(second), config=info.config_path)
    assert code == 0, err
    check_finished(info, cfg, d, codes, [first, second])
    code, out, err = run("staff", "import", str(f), "--yes", config=info.config_path)
    assert code == 0 and "nothing to do" in err


def test_server_stopped_mid_run_then_rerun_finishes(fresh_openldap, tmp_path, monkeypatch) -> None:
    info = fresh_openldap
    cfg = load(str(info.config_path))
    f = tmp_path / "stop.csv"
    size = intake.batch_size(flavour_for(cfg))
    codes = write_file(f, "SS", size + 20)
    first = tmp_path / "first.csv"
    real = passphrase.generate
    calls = {"n": 0}
    argv = list(info.process.args)

    def generate_then_stop_the_server(*a, **k):
        calls["n"] += 1
        if calls["n"] == size + 5:  # in the second batch, after its credentials are on disk
            info.process.terminate()
            info.process.wait(10)
        return real(*a, **k)

    monkeypatch.setattr(passphrase, "generate", generate_then_stop_the_server)
    d = open_directory(cfg)
    st = State(cfg.state.path)
    people = intake.read_intake(cfg, f)
    plan = intake.build(cfg, d, st, people, credentials_out=str(first), source=str(f))
    with pytest.raises(PartialError) as exc:
        apply(plan.plan, st)
    plan.close()
    d.close()
    monkeypatch.undo()
    assert "done: 1 change(s)" in str(exc.value)
    assert "cannot reach the directory" in str(exc.value) or "lost the directory" in str(exc.value)
    # the server comes back (same data); the re-run finishes
    log = open(info.dir / "slapd-restart.log", "ab")  # noqa: SIM115 - closed below
    server = subprocess.Popen(argv, cwd=info.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        d = open_directory(_wait_for(cfg))
        second = tmp_path / "second.csv"
        code, out, err = run(
            "staff", "import", str(f), "--yes", "--credentials-out", str(second), config=info.config_path
        )
        assert code == 0, err
        assert "void" in err  # the stopped batch's lines in first.csv: those accounts were never made
        check_finished(info, cfg, d, codes, [first, second])
        d.close()
    finally:
        server.terminate()
        server.wait(10)
        log.close()


def _wait_for(cfg):
    from aupctl.errors import UnreachableError

    deadline = time.monotonic() + 20
    while True:
        try:
            open_directory(cfg).close()
            return cfg
        except UnreachableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
