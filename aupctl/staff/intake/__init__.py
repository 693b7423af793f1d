"""`staff import`: new staff from the office's CSV.

read: checking the file, row by row, into Person records; plan: matching them with the directory and
the state store, and the Plan to create, update or finish each account; runner: applying that plan in
pipelined batches on worker connections, with the credentials file written before any password is set.
"""

from .plan import CREDENTIAL_COLUMNS, Entry, Intake, Person, batch_size, build, parse_date, read_intake, split_systems

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
