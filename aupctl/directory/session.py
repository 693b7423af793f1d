"""Directory: a bound Connection with the flavour of its server, and the ways to open one.

The flavour is given the connection to read and write through, and the connection knows nothing of
flavours: so this module, above both, is where the two meet (connection.py and flavour.py never import
each other's way back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ldap3

from ..credentials import bind_password
from .ad import ActiveDirectory
from .connection import Connection
from .flavour import Flavour
from .openldap import OpenLDAP

if TYPE_CHECKING:
    from ..config import Config


def flavour_for(cfg: Config) -> Flavour:
    return ActiveDirectory(cfg) if cfg.directory.flavour == "ad" else OpenLDAP(cfg)


class Directory(Connection):
    """One bound connection to the directory, with the flavour that knows its dialect."""

    def __init__(self, cfg: Config, password: str, *, strategy: str = ldap3.SYNC) -> None:
        super().__init__(cfg, password, strategy=strategy)
        self.flavour: Flavour = flavour_for(cfg)


def open_directory(cfg: Config, *, strategy: str = ldap3.SYNC) -> Directory:
    """Password from the credentials chain, connected and bound (raises Unreachable/Auth/Config errors)."""
    return Directory(
        cfg, bind_password(cfg.directory.bind_dn, cfg.directory.bind_password_file), strategy=strategy
    ).connect()
