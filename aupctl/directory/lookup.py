"""One way from a username to an Account: require_account (NotFoundError when there is none)."""

from __future__ import annotations

from ..errors import InputError, NoSuchAccount
from .account import Account
from .session import Directory


def require_account(directory: Directory, username: str, *, changing: bool = False) -> Account:
    """The account with this username, its groups filled in. changing: the caller was about to change
    something, and the message says nothing was."""
    username = username.strip()
    if not username:
        raise InputError("the username is empty")
    acct = directory.flavour.find_user(directory, username)
    if acct is None:
        tail = "; nothing was changed" if changing else ""
        raise NoSuchAccount(f"no account {username!r} in {directory.cfg.directory.base_dn}{tail}", username=username)
    return acct
