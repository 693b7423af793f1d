"""Everything LDAP: the connection (connection.py) and the AD / OpenLDAP differences (flavour.py)."""

from .connection import Directory, DirectoryError, open_directory
from .flavour import Account, Flavour, flavour_for

__all__ = ["Account", "Directory", "DirectoryError", "Flavour", "flavour_for", "open_directory"]
