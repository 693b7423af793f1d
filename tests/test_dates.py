"""The one date reader: ISO 8601 and the UK's day-first forms; impossible dates refused, never guessed."""

from __future__ import annotations

import datetime as dt

import pytest

from aupctl.dates import ACCEPTED, parse_date, read_date
from aupctl.errors import InputError


@pytest.mark.parametrize(
    "text, day",
    [
        ("2026-09-13", dt.date(2026, 9, 13)),
        (" 2026-9-3 ", dt.date(2026, 9, 3)),
        ("13/09/2026", dt.date(2026, 9, 13)),
        ("09/01/2027", dt.date(2027, 1, 9)),  # day first, always: 9 January
        ("13.09.2026", dt.date(2026, 9, 13)),
        ("13-09-2026", dt.date(2026, 9, 13)),
        ("13/09/26", dt.date(2026, 9, 13)),
        ("29/02/2028", dt.date(2028, 2, 29)),
    ],
)
def test_accepted_forms(text: str, day: dt.date) -> None:
    assert read_date(text) == day


@pytest.mark.parametrize("text", ["09/13/2026", "31/04/2026", "29/02/2027", "2026-13-01", "13/09", "tomorrow", "", "1/2/3/4"])
def test_impossible_or_unknown_dates_are_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_date(text, "--until")
    assert caught.value.message.startswith("--until: ") and ACCEPTED in caught.value.message


def test_a_us_style_date_says_day_first() -> None:
    with pytest.raises(ValueError, match="day first"):
        read_date("09/13/2026")


def test_past_and_future_rules() -> None:
    today = dt.date.today()
    with pytest.raises(InputError, match="in the future"):
        parse_date((today + dt.timedelta(days=1)).isoformat(), "signed_on", future=False)
    with pytest.raises(InputError, match="already passed"):
        parse_date((today - dt.timedelta(days=1)).isoformat(), "--until", future=True)
    assert parse_date(today, "x", future=True) == today
