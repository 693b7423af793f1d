"""Owner-only files on Windows, where mode bits mean nothing: the file's ACL says who may read it.

Two jobs, both behind the small `AclBackend` interface so the logic is tested on Linux with a fake:

- create a new file whose DACL grants the current user alone (credentials files), never following a
  link and never overwriting (CREATE_NEW, FILE_FLAG_OPEN_REPARSE_POINT);
- judge an existing file (a bind_password_file): its owner must be the current user and no broad
  group (Everyone, Users, Authenticated Users, Guests, Domain Users ...) may be granted any access.

The backend speaks SDDL (the Windows text form of a security descriptor), so everything here except
the few API calls is plain string work. The real backend is ctypes over advapi32/kernel32 (no extra
dependency; pywin32 would add ~10 MB for five calls) and is type-checked by `mypy --platform win32`.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Protocol

# SDDL aliases of groups that hold (nearly) everyone: a file they may read is not owner-only.
BROAD_ALIASES = {
    "WD": "Everyone",
    "AU": "Authenticated Users",
    "BU": "Users",
    "BG": "Guests",
    "AN": "Anonymous",
    "IU": "Interactive users",
    "NU": "Network users",
    "DU": "Domain Users",
    "DG": "Domain Guests",
    "DC": "Domain Computers",
}
BROAD_SIDS = {
    "S-1-1-0": "Everyone",
    "S-1-5-11": "Authenticated Users",
    "S-1-5-32-545": "Users",
    "S-1-5-32-546": "Guests",
    "S-1-5-7": "Anonymous",
    "S-1-5-4": "Interactive users",
    "S-1-5-2": "Network users",
}
# domain-relative RIDs of the same kind (S-1-5-21-<domain>-RID): Domain Users, Guests, Computers
BROAD_DOMAIN_RIDS = {"513": "Domain Users", "514": "Domain Guests", "515": "Domain Computers"}

# Access rights that let someone read, change or take over the file (any of them is too much)
FILE_READ_DATA = 0x1
FILE_WRITE_DATA = 0x2
FILE_APPEND_DATA = 0x4
DELETE = 0x10000
WRITE_DAC = 0x40000
WRITE_OWNER = 0x80000
GENERIC_ALL = 0x10000000
GENERIC_WRITE = 0x40000000
GENERIC_READ = 0x80000000
GENERIC_EXECUTE = 0x20000000
TOO_MUCH = (
    FILE_READ_DATA | FILE_WRITE_DATA | FILE_APPEND_DATA | WRITE_DAC | WRITE_OWNER | GENERIC_ALL | GENERIC_WRITE
    | GENERIC_READ
)
RIGHTS = {  # SDDL right codes -> mask (the file and generic ones; the rest count as harmless)
    "FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0,
    "GA": GENERIC_ALL, "GR": GENERIC_READ, "GW": GENERIC_WRITE, "GX": GENERIC_EXECUTE,
    "KA": 0xF003F, "KR": 0x20019, "KW": 0x20006, "KX": 0x20019,
    "SD": DELETE, "WD": WRITE_DAC, "WO": WRITE_OWNER, "RC": 0x20000,
    "CC": 0x1, "DC": 0x2, "LC": 0x4,  # directory-service names of the same bits as the file ones
}  # fmt: skip
INHERIT_ONLY = "IO"  # an ACE for children only: it grants nothing on the file itself
ALLOW_KINDS = {"A", "OA", "XA", "ZA"}  # allow, object allow, callback allow, callback object allow


class AclError(OSError):
    """The ACL could not be set or read (the message says which call failed)."""


@dataclass(frozen=True)
class Ace:
    kind: str  # "A" allow, "D" deny (SDDL ace_type; object and callback kinds keep their code)
    flags: str
    mask: int
    sid: str  # an SDDL alias ("WD") or a string SID ("S-1-5-21-...")


@dataclass
class Descriptor:
    owner: str | None
    null_dacl: bool = False  # no DACL at all: everyone has full access
    aces: list[Ace] = field(default_factory=list)


class AclBackend(Protocol):
    """The few OS calls: the current user's SID, create a file with a descriptor, read one back."""

    def user_sid(self) -> str: ...

    def create_new(self, path: str, sddl: str) -> int:
        """Create `path` (never existing, never through a link) with the descriptor; an open fd."""
        ...

    def file_sddl(self, path: str) -> str:
        """The owner and DACL of `path` in SDDL."""
        ...


def owner_only_sddl(sid: str) -> str:
    """Owned by `sid`, a protected DACL (nothing inherited from the folder) granting it alone full access."""
    return f"O:{sid}D:P(A;;FA;;;{sid})"


def _mask(rights: str) -> int:
    if rights.lower().startswith("0x"):
        return int(rights, 16)
    if rights.isdigit():
        return int(rights)
    mask = 0
    for i in range(0, len(rights) - 1, 2):
        mask |= RIGHTS.get(rights[i : i + 2], 0)
    return mask


_ACE = re.compile(r"\(([^()]*)\)")


def parse_sddl(sddl: str) -> Descriptor:
    """The owner and the DACL's ACEs of an SDDL string (the group and the SACL are not needed)."""
    owner = None
    m = re.search(r"O:(.*?)(?=[GDS]:|$)", sddl)
    if m:
        owner = m.group(1) or None
    d = re.search(r"D:(.*?)(?=S:\S|$)", sddl)
    desc = Descriptor(owner=owner)
    if d is None:
        desc.null_dacl = True  # no DACL part: Windows grants everyone everything
        return desc
    dacl = d.group(1)
    if dacl.startswith("NO_ACCESS_CONTROL"):
        desc.null_dacl = True
        return desc
    for ace in _ACE.findall(dacl):
        parts = ace.split(";")
        if len(parts) < 6:
            raise ValueError(f"not an SDDL ACE: ({ace})")
        desc.aces.append(Ace(kind=parts[0], flags=parts[1], mask=_mask(parts[2]), sid=parts[5]))
    return desc


def broad_group(sid: str) -> str | None:
    """The name of a group that holds nearly everyone, or None."""
    if sid in BROAD_ALIASES:
        return BROAD_ALIASES[sid]
    if sid in BROAD_SIDS:
        return BROAD_SIDS[sid]
    if sid.startswith("S-1-5-21-"):
        return BROAD_DOMAIN_RIDS.get(sid.rsplit("-", 1)[-1])
    return None


def problems(desc: Descriptor, me: str) -> list[str]:
    """Why this file is not owner-only for the user `me` (a string SID); [] when it is."""
    found = []
    if desc.owner != me:
        found.append(f"its owner is {desc.owner or 'nobody'}, not you ({me})")
    if desc.null_dacl:
        found.append("it has no access list at all, so everyone can read it")
        return found
    for ace in desc.aces:
        if ace.kind not in ALLOW_KINDS or INHERIT_ONLY in ace.flags or not ace.mask & TOO_MUCH:
            continue
        group = broad_group(ace.sid)
        if group:
            found.append(f"{group} may access it")
    return found


def _native() -> AclBackend | None:
    if sys.platform == "win32":
        return WindowsBackend()
    return None


_backend: AclBackend | None = None
_resolved = False


def active() -> AclBackend | None:
    """The ACL backend where ACLs decide (Windows), or None where mode bits do (tests install a fake)."""
    global _backend, _resolved
    if not _resolved:
        _backend, _resolved = _native(), True
    return _backend


def install(backend: AclBackend | None) -> None:
    """Use this backend (a test's fake; None puts mode bits back)."""
    global _backend, _resolved
    _backend, _resolved = backend, True


def create_owner_only(path: str, backend: AclBackend) -> int:
    """A new file readable by the current user alone; FileExistsError if the name exists (even as a link)."""
    return backend.create_new(path, owner_only_sddl(backend.user_sid()))


def check_owner_only(path: str, backend: AclBackend) -> list[str]:
    """Why `path` is not owner-only ([] when it is)."""
    try:
        desc = parse_sddl(backend.file_sddl(path))
    except ValueError as exc:
        return [f"its access list cannot be read ({exc})"]
    return problems(desc, backend.user_sid())


if sys.platform == "win32":  # the real calls; mypy --platform win32 checks them
    import ctypes
    import msvcrt
    from ctypes import wintypes

    _GENERIC_WRITE = 0x40000000
    _CREATE_NEW = 1
    _FILE_ATTRIBUTE_NORMAL = 0x80
    _FILE_FLAG_OPEN_REPARSE_POINT = 0x00200000
    _INVALID_HANDLE = ctypes.c_void_p(-1).value
    _ERROR_FILE_EXISTS = 80
    _ERROR_ALREADY_EXISTS = 183
    _TOKEN_QUERY = 0x8
    _TOKEN_USER = 1
    _SDDL_REVISION_1 = 1
    _SE_FILE_OBJECT = 1
    _OWNER_SECURITY_INFORMATION = 0x1
    _DACL_SECURITY_INFORMATION = 0x4

    class _SecurityAttributes(ctypes.Structure):
        _fields_ = [
            ("nLength", wintypes.DWORD),
            ("lpSecurityDescriptor", ctypes.c_void_p),
            ("bInheritHandle", wintypes.BOOL),
        ]

    class WindowsBackend:
        """advapi32/kernel32 through ctypes."""

        def __init__(self) -> None:
            self.advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
            self.kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            self.kernel32.CreateFileW.restype = ctypes.c_void_p
            self.kernel32.CreateFileW.argtypes = [
                wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p,
                wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p,
            ]  # fmt: skip
            self.kernel32.GetCurrentProcess.restype = ctypes.c_void_p
            self.kernel32.LocalFree.argtypes = [ctypes.c_void_p]
            self.kernel32.CloseHandle.argtypes = [ctypes.c_void_p]
            self._sid: str | None = None

        def _fail(self, call: str) -> AclError:
            err = ctypes.get_last_error()
            return AclError(err, f"{call} failed: {ctypes.FormatError(err).strip()}")

        def user_sid(self) -> str:
            if self._sid is not None:
                return self._sid
            token = ctypes.c_void_p()
            if not self.advapi32.OpenProcessToken(
                ctypes.c_void_p(self.kernel32.GetCurrentProcess()), _TOKEN_QUERY, ctypes.byref(token)
            ):
                raise self._fail("OpenProcessToken")
            try:
                size = wintypes.DWORD(0)
                self.advapi32.GetTokenInformation(token, _TOKEN_USER, None, 0, ctypes.byref(size))
                buf = ctypes.create_string_buffer(size.value)
                if not self.advapi32.GetTokenInformation(token, _TOKEN_USER, buf, size, ctypes.byref(size)):
                    raise self._fail("GetTokenInformation")
                psid = ctypes.c_void_p.from_buffer(buf).value  # TOKEN_USER starts with the SID pointer
                text = wintypes.LPWSTR()
                if not self.advapi32.ConvertSidToStringSidW(ctypes.c_void_p(psid), ctypes.byref(text)):
                    raise self._fail("ConvertSidToStringSidW")
                try:
                    self._sid = str(text.value)
                finally:
                    self.kernel32.LocalFree(text)
            finally:
                self.kernel32.CloseHandle(token)
            return self._sid

        def create_new(self, path: str, sddl: str) -> int:
            psd = ctypes.c_void_p()
            if not self.advapi32.ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl, _SDDL_REVISION_1, ctypes.byref(psd), None
            ):
                raise self._fail("ConvertStringSecurityDescriptorToSecurityDescriptorW")
            try:
                sa = _SecurityAttributes(ctypes.sizeof(_SecurityAttributes), psd.value, False)
                handle = self.kernel32.CreateFileW(
                    path, _GENERIC_WRITE, 0, ctypes.byref(sa), _CREATE_NEW,
                    _FILE_ATTRIBUTE_NORMAL | _FILE_FLAG_OPEN_REPARSE_POINT, None,
                )  # fmt: skip
                if handle is None or handle == _INVALID_HANDLE:
                    err = ctypes.get_last_error()
                    if err in (_ERROR_FILE_EXISTS, _ERROR_ALREADY_EXISTS):
                        raise FileExistsError(err, "the file already exists", path)
                    raise AclError(err, f"CreateFileW failed: {ctypes.FormatError(err).strip()}")
            finally:
                self.kernel32.LocalFree(psd)
            return msvcrt.open_osfhandle(handle, os.O_WRONLY)

        def file_sddl(self, path: str) -> str:
            info = _OWNER_SECURITY_INFORMATION | _DACL_SECURITY_INFORMATION
            psd = ctypes.c_void_p()
            err = self.advapi32.GetNamedSecurityInfoW(
                path, _SE_FILE_OBJECT, info, None, None, None, None, ctypes.byref(psd)
            )
            if err:
                raise AclError(err, f"GetNamedSecurityInfoW failed: {ctypes.FormatError(err).strip()}")
            try:
                text = wintypes.LPWSTR()
                if not self.advapi32.ConvertSecurityDescriptorToStringSecurityDescriptorW(
                    psd, _SDDL_REVISION_1, info, ctypes.byref(text), None
                ):
                    raise self._fail("ConvertSecurityDescriptorToStringSecurityDescriptorW")
                try:
                    return str(text.value)
                finally:
                    self.kernel32.LocalFree(text)
            finally:
                self.kernel32.LocalFree(psd)
