"""`staff import`: new staff from the office's CSV, in three stages, each safe to stop after.

read: the whole file checked, row by row, into Person records (every bad row named in one error);
plan: matching them with the directory and the state store, and the changes to create, update or
finish each account; runner: build (the whole plan) and the Runner that applies its batches, with the
credentials file written before any password is set.
"""

from .plan import CREDENTIAL_COLUMNS, Entry, Intake
from .read import Person, parse_date, read_intake, split_systems
from .runner import batch_size, build

__all__ = [
    "CREDENTIAL_COLUMNS",
    "Entry",
    "Intake",
    "Person",
    "batch_size",
    "build",
    "parse_date",
    "read_intake",
    "split_systems",
]
