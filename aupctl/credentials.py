"""Secrets: the directory bind password and the SSH key passphrase.

Order: an environment variable (for scripts), then a file that only its owner can read (for cron
on a headless server: mode 0600 on POSIX, an access list for its owner alone on Windows), then the OS keyring (for a technician's own machine). Secrets never go
through argv, logs or the audit log.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import winacl
from .errors import ConfigError

SERVICE = "aupctl"
ENV_BIND = "AUPCTL_BIND_PASSWORD"
ENV_SSH = "AUPCTL_SSH_PASSPHRASE"
ENV_MAIL = "AUPCTL_MAIL_PASSWORD"
ENV_STATE = "AUPCTL_STATE_PASSWORD"


def read_secret_file(path: str, what: str) -> str:
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {p}: {exc}") from None
    acl = winacl.active()
    if acl is not None:  # Windows reports every file as 0666: its access list decides
        try:
            found = winacl.check_owner_only(str(p), acl)
        except OSError as exc:
            raise ConfigError(f"cannot read the access list of {what} file {p}: {exc.strerror or exc}") from None
        if found:
            raise ConfigError(
                f"{what} file {p} is not yours alone: {'; '.join(found)}",
                hint=f'icacls "{p}" /setowner "%USERNAME%" && icacls "{p}" /inheritance:r /grant:r "%USERNAME%:F"',
            )
    elif st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{what} file {p} can be read by others (mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"chmod 600 {p}",
        )
    from .errors import InputError
    from .files import read_bounded

    try:
        value = read_bounded(p, 64 * 1024).decode("utf-8").rstrip("\r\n")  # a password, not a device
    except InputError as exc:
        raise ConfigError(f"cannot read {what} file {exc.message}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} file {p}: not UTF-8 ({exc.reason})") from None
    if not value:
        raise ConfigError(f"{what} file {p} is empty")
    return value


def _owner_only_how() -> str:
    if winacl.active() is not None:
        return "on Windows: owned by you, no access for Everyone or Users; docs/windows.md"
    return "chmod 600"


def _keyring_get(account: str) -> tuple[str | None, str | None]:
    """(secret, problem): problem says why the keyring could not be asked."""
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None, "the keyring package is not installed"
    try:
        return keyring.get_password(SERVICE, account), None
    except NoKeyringError:
        return None, "this machine has no keyring backend"
    except KeyringError as exc:
        return None, f"the keyring failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - third-party backends raise anything (e.g. D-Bus errors)
        return None, f"the keyring failed: {exc}"


def _lookup(what: str, env: str, password_file: str | None, account: str) -> tuple[str | None, str]:
    """(the secret or None, why none): the one lookup order of every stored password aupctl reads: the
    environment, then a file only its owner reads, then the keyring (service 'aupctl', user `account`)."""
    if os.environ.get(env):
        return os.environ[env], ""
    if password_file:
        return read_secret_file(password_file, what), ""
    secret, problem = _keyring_get(account)
    return secret or None, problem or f"the keyring holds no password for {account!r} (service {SERVICE!r})"


def _password(what: str, env: str, password_file: str | None, account: str, *, command: str, key: str) -> str:
    secret, why = _lookup(what, env, password_file, account)
    if secret:
        return secret
    raise ConfigError(
        f"no {what}: {why}",
        hint=f"run `{command}`, set {env}, or set {key} to a file readable only by you ({_owner_only_how()})",
    )


def bind_password(bind_dn: str, password_file: str | None) -> str:
    return _password(
        "bind password",
        ENV_BIND,
        password_file,
        bind_dn,
        command="aupctl config set-password",
        key="directory.bind_password_file",
    )


def mail_account(host: str, username: str) -> str:
    """The keyring user under which the SMTP password is kept (service 'aupctl')."""
    return f"mail:{username}@{host}"


def mail_password(host: str, username: str, password_file: str | None) -> str:
    """The SMTP password, found as the bind password is: env, then an owner-only file, then the keyring."""
    return _password(
        "mail password",
        ENV_MAIL,
        password_file,
        mail_account(host, username),
        command="aupctl config set-password --mail",
        key="mail.password_file",
    )


def state_password(account: str, password_file: str | None) -> str | None:
    """The PostgreSQL state store's password, found as the bind password is: the environment, a file only its
    owner reads, then the keyring (service 'aupctl', user: the store's URL without password, e.g.
    postgresql://aupctl@db.trust.example:5432/aupctl). None where none is set (a server that trusts a
    client certificate or the OS user); the server then says whether it wanted one."""
    return _lookup("state store password", ENV_STATE, password_file, account)[0]


def keyring_status(account: str) -> tuple[bool, str]:
    """For doctor: (usable, what it says)."""
    secret, problem = _keyring_get(account)
    if problem:
        return False, problem
    return True, "holds the bind password" if secret else "usable; holds no bind password"


def store_bind_password(bind_dn: str, secret: str) -> None:
    """Keep the bind password (or, under mail_account(...), the SMTP password) in the OS keyring."""
    import keyring
    from keyring.errors import KeyringError, NoKeyringError

    try:
        keyring.set_password(SERVICE, bind_dn, secret)
    except NoKeyringError:
        raise ConfigError(
            "this machine has no keyring backend",
            hint=f"set directory.bind_password_file to a file readable only by you ({_owner_only_how()}), "
            f"or {ENV_BIND} for scripts",
        ) from None
    except (KeyringError, Exception) as exc:  # noqa: BLE001
        raise ConfigError(f"the keyring refused the password: {exc}") from None


def ssh_passphrase(key_path: str) -> str | None:
    """The SSH key's passphrase, or None for an unencrypted key."""
    if os.environ.get(ENV_SSH):
        return os.environ[ENV_SSH]
    secret, _ = _keyring_get(f"ssh:{key_path}")
    return secret
