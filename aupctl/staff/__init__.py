"""Staff: the people in the directory (list, show, set-role) and the intake of new staff (staff.intake)."""

from .people import account_row, group_name, is_leaver, list_staff, require_user, show

__all__ = ["account_row", "group_name", "is_leaver", "list_staff", "require_user", "show"]
