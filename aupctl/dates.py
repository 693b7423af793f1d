"""The one date reader: every command option and CSV column that takes a date goes through parse_date.

Accepted: ISO 8601 (2026-09-13) and the UK's day-first forms as office spreadsheets write them
(13/09/2026, 13/09/26, 13.09.2026, 13-09-2026). A day-first date is never read month-first: 09/01/2027
is 9 January, and 09/13/2026 (a US-style date) is refused, naming the accepted forms, rather than
guessed.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import InputError

ACCEPTED = "YYYY-MM-DD or DD/MM/YYYY"

_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DAY_FIRST = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})")


def read_date(text: str) -> dt.date:
    """The date a person wrote; ValueError (saying the accepted forms) when it is not one."""
    value = text.strip()
    iso = _ISO.fullmatch(value)
    if iso:
        year, month, day = (int(g) for g in iso.groups())
    else:
        uk = _DAY_FIRST.fullmatch(value)
        if not uk:
            raise ValueError(f"{text!r} is not a date (expected {ACCEPTED})")
        day, month, year = int(uk.group(1)), int(uk.group(3)), int(uk.group(4))
        if len(uk.group(4)) == 2:
            year += 2000  # a two-digit year in a staff export is this century
    try:
        return dt.date(year, month, day)
    except ValueError:
        hint = " (day first: DD/MM/YYYY)" if not iso and month > 12 and day <= 12 else ""
        # "is not a date" as every reader said before this module: scripts and tests match those words
        raise ValueError(f"{text!r} is not a date: there is no such day{hint} (expected {ACCEPTED})") from None


def parse_date(text: str | dt.date, what: str, *, future: bool | None = None) -> dt.date:
    """A date for `what` (an option such as --until or a CSV field such as 'row 4, start_date').

    future=False refuses a date after today (a signature); future=True refuses one before today
    (--until); None takes any. Bad input is an InputError (exit 2) naming `what` and the accepted forms.
    """
    if isinstance(text, dt.date):
        day = text
    else:
        try:
            day = read_date(text)
        except ValueError as exc:
            raise InputError(f"{what}: {exc}") from None
    today = dt.date.today()
    if future is False and day > today:
        raise InputError(f"{what}: {day.isoformat()} is in the future")
    if future is True and day < today:
        raise InputError(f"{what}: {day.isoformat()} has already passed")
    return day
