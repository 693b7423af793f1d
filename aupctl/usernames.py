"""Usernames for new staff: names folded to lowercase ASCII, the `[accounts] username` template, clash suffixes.

Folding is done here rather than with a transliteration library on purpose: any Latin-script name
from a European language must give a sensible username (Zoë -> zoe, Łukasz -> lukasz, Straße ->
strasse), but a name in another script must NOT be guessed at (a transliterated Greek or Cyrillic
name is rarely what the person uses): that row needs the `username` column.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from . import templates

FIELDS = ("first_name", "last_name", "first_initial", "preferred_name", "staff_code")

# Latin letters that Unicode does not decompose into a base letter plus accents.
_SPECIAL = {
    "ß": "ss",
    "ẞ": "ss",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "ø": "o",
    "Ø": "o",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "þ": "th",
    "Þ": "th",
    "ı": "i",  # Turkish dotless i (İ decomposes to I + a dot and folds to i)
    "ħ": "h",
    "Ħ": "h",
    "ŋ": "n",
    "Ŋ": "n",
    "ĸ": "k",
    "ŧ": "t",
    "Ŧ": "t",
    "ə": "e",
    "Ə": "e",
    "ʒ": "z",
    "Ʒ": "z",
    "ƒ": "f",
    "ȷ": "j",
}

# What a username may be: lowercase ASCII letters and digits, with . _ - inside (never first or last).
VALID = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")
_LITERAL_OK = re.compile(r"^[a-z0-9._-]*$")


class NotLatinError(ValueError):
    """The name holds letters of another script, which are not guessed at."""

    def __init__(self, text: str, char: str) -> None:
        super().__init__(f"{text!r} has a letter ({char!r}) that is not in the Latin alphabet")
        self.char = char


def fold(text: str) -> str:
    """A name as lowercase ASCII letters and digits: accents dropped, special letters spelt out,
    apostrophes, hyphens, spaces and any other punctuation or symbols dropped.

    Raises NotLatinError for a letter or digit of another script.
    """
    out: list[str] = []
    for ch in text:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
            continue
        for part in unicodedata.normalize("NFKD", ch):
            if part in _SPECIAL:
                out.append(_SPECIAL[part])
            elif part.isascii():
                if part.isalnum():
                    out.append(part.lower())
                # ASCII punctuation, spaces and controls: dropped (O'Brien, Smith-Jones, "a,b", "*")
            else:
                cat = unicodedata.category(part)
                if cat[0] == "M":
                    continue  # a combining accent left by the decomposition
                if cat[0] in "LN":
                    raise NotLatinError(text, part)
                # other punctuation, symbols and spaces (’ ‘ – « » NBSP …): dropped
    return "".join(out)


def check_template(template: str) -> list[str]:
    """The fields a username template uses; ValueError for an unknown field, a format spec, or literal
    text that cannot be in a username. (config.py calls this when the config is loaded.)"""
    used = templates.fields(template, FIELDS)
    for literal, _, _, _ in string.Formatter().parse(template):
        if literal and not _LITERAL_OK.match(literal):
            raise ValueError(
                f"{template!r}: the text {literal!r} cannot be in a username (only a-z, 0-9, '.', '_' and '-')"
            )
    if not used:
        raise ValueError(f"{template!r} uses no field (known: {', '.join(FIELDS)})")
    return used


@dataclass(frozen=True)
class NameParts:
    first_name: str
    last_name: str
    preferred_name: str = ""
    staff_code: str = ""


def render(template: str, parts: NameParts) -> str:
    """The username the template gives for these names, before cutting and clash suffixes.

    Raises NotLatinError, or ValueError naming the field that is missing or folds to nothing.
    """
    used = check_template(template)
    first = fold(parts.first_name)
    values = {
        "first_name": first,
        "last_name": fold(parts.last_name),
        "first_initial": first[:1],
        "preferred_name": fold(parts.preferred_name) if parts.preferred_name.strip() else first,
        "staff_code": fold(parts.staff_code),
    }
    for name in used:
        if not values[name]:
            source = {"first_initial": "first_name", "preferred_name": "first_name"}.get(name, name)
            raise ValueError(f"{source} gives no letters for the username template {template!r}")
    return templates.render(template, values, FIELDS)


def cut(username: str, max_length: int) -> str:
    """Cut to max_length; never leave a '.', '_' or '-' at the end."""
    return username[:max_length].rstrip("._-")


def problem(username: str, max_length: int) -> str | None:
    """Why this cannot be a username, or None if it can."""
    if not username:
        return "is empty"
    if len(username) > max_length:
        return f"is longer than {max_length} characters"
    if not VALID.match(username):
        return "may hold only a-z, 0-9 and . _ - (not first or last)"
    if username.isdigit():
        return "is only digits"
    return None


def with_suffix(base: str, n: int, max_length: int) -> str:
    """base, base2, base3 … each cut so the suffix still fits."""
    if n <= 1:
        return cut(base, max_length)
    tail = str(n)
    return cut(base, max_length - len(tail)) + tail


def allocate(base: str, taken: set[str], max_length: int) -> str:
    """The first of base, base2, base3 … not in `taken` (lowercase usernames); adds it to `taken`."""
    n = 1
    while True:
        candidate = with_suffix(base, n, max_length)
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return candidate
        n += 1


def variants(base: str, max_length: int, upto: int = 50) -> Iterable[str]:
    """The usernames `allocate` could have given for this base (to find someone created earlier)."""
    return (with_suffix(base, n, max_length) for n in range(1, upto + 1))


def suffix_filter_value(base: str, max_length: int) -> str:
    """The shortest stem every variant starts with (for one LDAP search of base*)."""
    return with_suffix(base, 99, max_length)[:-2]
