"""The Windows branch of credfile and credentials, run here through winacl's backend interface.

The fake backend does what the real one is asked to do (create a new file, never through a link, and
remember the security descriptor it was given; hand back a descriptor for a file) so the logic around
it, the SDDL built, parsed and judged, is the code Windows runs. The SDDL strings below are what
Windows itself prints (icacls /save, Get-Acl .Sddl) for the usual places a file lands.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from aupctl import credentials, credfile, winacl
from aupctl.errors import ConfigError, InputError

ME = "S-1-5-21-1004336348-1177238915-682003330-1001"
OTHER = "S-1-5-21-1004336348-1177238915-682003330-1002"
DOMAIN_USERS = "S-1-5-21-1004336348-1177238915-682003330-513"

# A file in the user's profile (%LOCALAPPDATA%): inherited SYSTEM, Administrators and the user.
PROFILE = f"O:{ME}G:{DOMAIN_USERS}D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;FA;;;{ME})"
# A file in C:\aupctl (a folder made at the root of C:): Users read, Authenticated Users modify.
ROOT_OF_C = f"O:{ME}D:AI(A;ID;FA;;;BA)(A;ID;FA;;;SY)(A;ID;0x1200a9;;;BU)(A;ID;0x1301bf;;;AU)"


class FakeBackend:
    def __init__(self) -> None:
        self.created: dict[str, str] = {}
        self.sddl: dict[str, str] = {}

    def user_sid(self) -> str:
        return ME

    def create_new(self, path: str, sddl: str) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        self.created[path] = sddl
        return fd

    def file_sddl(self, path: str) -> str:
        if path in self.sddl:
            return self.sddl[path]
        if path in self.created:
            return self.created[path]
        raise winacl.AclError(2, "GetNamedSecurityInfoW failed: The system cannot find the file specified.")


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    saved = winacl._backend, winacl._resolved
    backend = FakeBackend()
    winacl.install(backend)
    try:
        yield backend
    finally:
        winacl._backend, winacl._resolved = saved


def test_no_backend_on_linux() -> None:
    """Here mode bits decide; the ACL branch is only ever taken on Windows (or with a fake)."""
    saved = winacl._backend, winacl._resolved
    try:
        winacl._resolved = False
        assert winacl.active() is None
    finally:
        winacl._backend, winacl._resolved = saved


def test_parse_real_descriptors() -> None:
    d = winacl.parse_sddl(PROFILE)
    assert d.owner == ME and not d.null_dacl
    assert [a.sid for a in d.aces] == ["SY", "BA", ME]
    assert all(a.mask == 0x1F01FF for a in d.aces)
    d = winacl.parse_sddl(ROOT_OF_C)
    assert [(a.sid, a.mask) for a in d.aces][2:] == [("BU", 0x1200A9), ("AU", 0x1301BF)]
    assert winacl.parse_sddl(f"O:{ME}D:NO_ACCESS_CONTROL").null_dacl
    assert winacl.parse_sddl(f"O:{ME}").null_dacl  # no DACL part: everyone has everything
    assert winacl.parse_sddl("O:BAD:P(A;;GR;;;WD)").owner == "BA"
    with pytest.raises(ValueError, match="not an SDDL ACE"):
        winacl.parse_sddl("O:BAD:(A;;FA)")


def test_judging() -> None:
    assert winacl.problems(winacl.parse_sddl(PROFILE), ME) == []
    assert winacl.problems(winacl.parse_sddl(ROOT_OF_C), ME) == [
        "Users may access it",
        "Authenticated Users may access it",
    ]
    assert winacl.problems(winacl.parse_sddl(PROFILE), OTHER) == [f"its owner is {ME}, not you ({OTHER})"]
    assert winacl.problems(winacl.parse_sddl(f"O:{ME}D:NO_ACCESS_CONTROL"), ME) == [
        "it has no access list at all, so everyone can read it"
    ]
    broad = f"O:{ME}D:(A;;FR;;;WD)(XA;;GR;;;S-1-1-0)(A;;FR;;;{DOMAIN_USERS})(A;;0x1;;;S-1-5-32-546)"
    assert winacl.problems(winacl.parse_sddl(broad), ME) == [
        "Everyone may access it",
        "Everyone may access it",
        "Domain Users may access it",
        "Guests may access it",
    ]
    # what grants nothing on the file itself is not a problem: a deny, an inherit-only ACE, SYNCHRONIZE alone
    harmless = f"O:{ME}D:P(A;;FA;;;{ME})(D;;FA;;;WD)(A;OICIIO;FA;;;BU)(A;;0x100000;;;AU)"
    assert winacl.problems(winacl.parse_sddl(harmless), ME) == []


def test_owner_only_descriptor_is_judged_owner_only() -> None:
    sddl = winacl.owner_only_sddl(ME)
    assert sddl == f"O:{ME}D:P(A;;FA;;;{ME})"  # protected: nothing inherited from the folder
    d = winacl.parse_sddl(sddl)
    assert [(a.kind, a.sid) for a in d.aces] == [("A", ME)]
    assert winacl.problems(d, ME) == []


def test_credfile_created_with_owner_only_acl(tmp_path, fake: FakeBackend) -> None:
    out = tmp_path / "new.csv"
    f = credfile.CredentialsFile(out, credfile.RESET_COLUMNS)
    f.check()
    f.write([["jbloggs", "Joe Bloggs", "correct horse", "yes"]])
    f.close()
    assert fake.created == {str(out): winacl.owner_only_sddl(ME)}
    assert winacl.check_owner_only(str(out), fake) == []
    assert out.read_text().splitlines() == ["username,name,password,must_change", "jbloggs,Joe Bloggs,correct horse,yes"]
    # the ACL branch leaves the mode alone (no fchmod on Windows): the fake's 0644 shows it was not POSIX's path
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_credfile_never_overwrites_nor_follows_a_link(tmp_path, fake: FakeBackend) -> None:
    existing = tmp_path / "old.csv"
    existing.write_text("username,password\nx,secret\n")
    f = credfile.CredentialsFile(existing, credfile.RESET_COLUMNS)
    with pytest.raises(InputError, match="already exists and is never overwritten"):
        f.open()
    assert existing.read_text() == "username,password\nx,secret\n"
    link = tmp_path / "link.csv"
    target = tmp_path / "elsewhere.csv"
    link.symlink_to(target)  # dangling: following it would create `elsewhere.csv`
    f = credfile.CredentialsFile(link, credfile.RESET_COLUMNS)
    with pytest.raises(InputError, match="already exists"):
        f.open()
    assert not target.exists()
    assert fake.created == {}


def test_credfile_acl_failure_is_an_input_error(tmp_path) -> None:
    class Refusing(FakeBackend):
        def create_new(self, path: str, sddl: str) -> int:
            raise winacl.AclError(5, "CreateFileW failed: Access is denied.")

    saved = winacl._backend, winacl._resolved
    winacl.install(Refusing())
    try:
        f = credfile.CredentialsFile(tmp_path / "x.csv", credfile.RESET_COLUMNS)
        with pytest.raises(InputError, match=r"x.csv: cannot create it: CreateFileW failed: Access is denied"):
            f.open()
    finally:
        winacl._backend, winacl._resolved = saved


def test_bind_password_file_judged_by_acl_not_mode(tmp_path, fake: FakeBackend, monkeypatch) -> None:
    monkeypatch.delenv(credentials.ENV_BIND, raising=False)
    pw = tmp_path / "bind.pw"
    pw.write_text("s3cret\n")
    pw.chmod(0o666)  # what Windows reports for every file: mode bits must not decide
    fake.sddl[str(pw)] = PROFILE
    assert credentials.bind_password("cn=svc", str(pw)) == "s3cret"

    fake.sddl[str(pw)] = ROOT_OF_C
    with pytest.raises(ConfigError) as exc:
        credentials.bind_password("cn=svc", str(pw))
    assert exc.value.message == (
        f"bind password file {pw} is not yours alone: Users may access it; Authenticated Users may access it"
    )
    assert "icacls" in (exc.value.hint or "") and "/inheritance:r" in (exc.value.hint or "")

    fake.sddl[str(pw)] = f"O:{OTHER}D:P(A;;FA;;;{OTHER})"
    with pytest.raises(ConfigError, match=f"its owner is {OTHER}, not you"):
        credentials.read_secret_file(str(pw), "bind password")

    fake.sddl[str(pw)] = "O:BAD:P(A;;FA;;;BA)(A;;FA;;;{ME})garbage(A;;FA)"
    with pytest.raises(ConfigError, match="its access list cannot be read"):
        credentials.read_secret_file(str(pw), "bind password")


def test_bind_password_file_acl_unreadable(tmp_path, fake: FakeBackend) -> None:
    pw = tmp_path / "bind.pw"
    pw.write_text("s3cret\n")
    with pytest.raises(ConfigError, match="cannot read the access list of bind password file .*cannot find the file"):
        credentials.read_secret_file(str(pw), "bind password")


def test_posix_branch_unchanged(tmp_path) -> None:
    """Without a backend (Linux) the mode decides, as before."""
    saved = winacl._backend, winacl._resolved
    winacl.install(None)
    try:
        pw = tmp_path / "bind.pw"
        pw.write_text("s3cret\n")
        pw.chmod(0o644)
        with pytest.raises(ConfigError, match=r"can be read by others \(mode 0644\)"):
            credentials.read_secret_file(str(pw), "bind password")
        pw.chmod(0o600)
        assert credentials.read_secret_file(str(pw), "bind password") == "s3cret"
    finally:
        winacl._backend, winacl._resolved = saved


def test_audit_key_file_created_owner_only(tmp_path, fake: FakeBackend) -> None:
    """The audit log's key is a secret too: on Windows it is made with the same owner-only ACL."""
    from aupctl.auditchain import KeySource

    path = tmp_path / "keys" / "audit.key"
    key = KeySource("file", path).load_or_create()
    assert fake.created == {str(path): winacl.owner_only_sddl(ME)}
    assert path.read_text().strip() == key.secret.hex()
    path.chmod(0o600)  # the load's mode check is POSIX's (skipped on Windows); the fake made it 0644
    assert KeySource("file", path).load_or_create().secret == key.secret  # made once, then read


POSIX_ONLY = {"fcntl", "pwd", "grp", "termios", "pty", "tty", "resource", "crypt", "spwd", "syslog"}


def test_no_posix_only_module_imported_by_aupctl() -> None:
    """Importing every command module Windows runs (all but `sandbox`) and every engine module outside
    aupctl/sandbox executes no `import` of a POSIX-only module from aupctl's own code (what the
    standard library and dependencies import, they guard themselves). mypy --platform win32 covers
    the calls inside functions."""
    import subprocess
    import sys

    probe = f"""
import builtins, importlib, sys
POSIX_ONLY = {sorted(POSIX_ONLY)!r}
seen = []
real = builtins.__import__
def spy(name, globals=None, locals=None, fromlist=(), level=0):
    who = (globals or {{}}).get("__name__", "")
    if name.split(".")[0] in POSIX_ONLY and who.startswith(("aupctl", "commands")):
        seen.append(f"{{who}} imports {{name}}")
    return real(name, globals, locals, fromlist, level)
builtins.__import__ = spy
from aupctl.commands import SUBCOMMANDS
for noun, (module, _, _) in SUBCOMMANDS.items():
    if noun != "sandbox":
        importlib.import_module("aupctl.commands." + module)
import aupctl, pathlib
root = pathlib.Path(aupctl.__file__).parent
count = 0
for f in sorted(root.rglob("*.py")):  # not pkgutil.walk_packages: it would import aupctl.sandbox to walk it
    parts = f.relative_to(root.parent).with_suffix("").parts
    if parts[1] in ("sandbox", "commands"):
        continue
    importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    count += 1
print(count, seen)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    count, _, seen = out.stdout.strip().partition(" ")
    assert int(count) > 50 and seen == "[]", out.stdout + out.stderr


def test_no_password_hint_speaks_windows(fake: FakeBackend, monkeypatch) -> None:
    monkeypatch.delenv(credentials.ENV_BIND, raising=False)
    monkeypatch.setattr(credentials, "_keyring_get", lambda account: (None, "this machine has no keyring backend"))
    with pytest.raises(ConfigError) as exc:
        credentials.bind_password("cn=svc", None)
    assert "docs/windows.md" in (exc.value.hint or "") and "chmod" not in (exc.value.hint or "")
    winacl.install(None)
    with pytest.raises(ConfigError) as exc:
        credentials.bind_password("cn=svc", None)
    assert "chmod 600" in (exc.value.hint or "")


def test_redirected_output_carries_any_name(monkeypatch) -> None:
    """A stdout redirected on Windows is cp1252: made UTF-8, so a name outside it cannot end the run."""
    import io

    from aupctl.commands.streams import utf8_when_redirected

    monkeypatch.delenv("PYTHONIOENCODING", raising=False)
    raw = io.BytesIO()
    pipe = io.TextIOWrapper(raw, encoding="cp1252")
    with pytest.raises(UnicodeEncodeError):
        pipe.write("Łukasz Nguyễn\n")
        pipe.flush()
    raw = io.BytesIO()
    pipe = io.TextIOWrapper(raw, encoding="cp1252")
    utf8_when_redirected(pipe)
    pipe.write("Łukasz Nguyễn\n")
    pipe.flush()
    assert raw.getvalue().decode("utf-8") == "Łukasz Nguyễn\n"
    # an encoding the person asked for is kept
    monkeypatch.setenv("PYTHONIOENCODING", "cp1252")
    kept = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    utf8_when_redirected(kept)
    assert kept.encoding == "cp1252"
