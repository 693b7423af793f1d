"""`staff sync`: joiners, movers and leavers from the school's MIS staff export (profiles.py: the exports'
own headers; engine.py: reading, safety checks, matching and the one plan)."""

from .engine import Sync, plan_sync, read_export
from .profiles import FIELDS, PROFILES

__all__ = ["FIELDS", "PROFILES", "Sync", "plan_sync", "read_export"]
