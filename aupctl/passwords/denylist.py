"""Is a password easily guessed (policy 6.2)? The deny list and the candidate check.

The deny list is built, not vendored: zxcvbn's frequency list of common passwords (30,000, ranked by
how often they turn up in breaches), the school's name and `[passwords] deny_words`, common words
people reach for (seasons, months, "welcome"), and each person's own names and username — each with
the endings people add to satisfy a complexity rule (1, 123, !, a year). `check_candidate` judges
one password a person typed; `common_candidates` / `personal_candidates` feed the audit's test of
readable hashes. Nothing here ever returns or logs a password: reasons are plain words about it.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from ..directory import Account

# zxcvbn scores 0-4; 3 ("safely unguessable: moderate protection from offline attack") is NCSC-like.
MIN_SCORE = 3

# Words in school names that say nothing about this school: on their own they do not make a password
# "the school's name", but beside the distinctive word they are still part of it.
GENERIC_SCHOOL_WORDS = {
    "the", "of", "and", "st", "saint", "primary", "school", "schools", "infant", "infants", "junior",
    "juniors", "academy", "college", "high", "secondary", "church", "england", "ce", "c", "e", "rc",
    "catholic", "community", "nursery", "federation", "trust", "first", "middle", "upper", "lower",
    "grammar", "free", "voluntary", "aided", "controlled",
}  # fmt: skip

# Words people build a password on when told to change it (NCSC's "predictable" examples and more).
COMMON_BASES = [
    "password", "passw0rd", "welcome", "letmein", "changeme", "qwerty", "monkey", "dragon", "football",
    "school", "teacher", "student", "admin", "secret", "sunshine", "iloveyou", "princess", "master",
    "spring", "summer", "autumn", "winter", "christmas", "easter",
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "monday", "friday", "london",
]  # fmt: skip

# Endings added to a word to pass a complexity rule.
_SHORT_SUFFIXES = ["", "1", "2", "12", "123", "1234", "12345", "!", "1!", "12!", "123!", "!!", "?", "#", "01", "@1"]
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
                       "!": "i", "|": "l", "+": "t"})  # fmt: skip
_WORD = re.compile(r"[a-z]+")

# How many of zxcvbn's ranked common passwords the hash test tries (as written and capitalised).
# The budget that keeps a 10,000-account audit within a minute on 2 cores (bench/passwords.py).
HASH_COMMON_TOP = 3000


def fold(text: str) -> str:
    """Lowercase ASCII letters and digits: Zoë -> zoe, O'Brien -> obrien (how people type names)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """zxcvbn's 30,000 most common passwords (lowercase, ranked list in the package)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


@lru_cache(maxsize=4)
def _ranked_common(top: int) -> tuple[str, ...]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return tuple(FREQUENCY_LISTS["passwords"][:top])


@dataclass(frozen=True)
class DenyWords:
    school: tuple[str, ...]  # distinctive words of the school's name, and deny_words
    school_all: tuple[str, ...]  # every word of the name (generic ones too) and deny_words
    person: tuple[str, ...]  # the person's names and username, folded


def school_words(cfg: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(distinctive, all): words of the school's name and [passwords] deny_words, folded."""
    words = [fold(w) for w in re.split(r"[\s\-'’.,&/()]+", cfg.school.name) if fold(w)]
    distinctive = [w for w in words if w not in GENERIC_SCHOOL_WORDS and len(w) >= 3]
    joined = "".join(words)
    extra = [fold(w) for w in cfg.passwords.deny_words if fold(w)]
    distinct = _unique(distinctive + extra + ([joined] if len(words) > 1 else []))
    return distinct, _unique(words + extra + [joined])


def person_words(person: Account | None) -> tuple[str, ...]:
    if person is None:
        return ()
    given, surname, username = fold(person.given_name), fold(person.surname), fold(person.username)
    words = [given, surname, username, given + surname, surname + given]
    if given and surname:
        words += [given[0] + surname, surname + given[0]]
    for part in re.split(r"[\s\-'’]+", f"{person.given_name} {person.surname}"):
        words.append(fold(part))
    return _unique(w for w in words if len(w) >= 3)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _strip_words(text: str, words: Iterable[str]) -> tuple[str, bool]:
    """Remove every occurrence of the words (longest first); say whether any was there."""
    found = False
    for w in sorted(set(words), key=len, reverse=True):
        if w and w in text:
            found = True
            text = text.replace(w, " ")
    return text, found


def _letters_left(text: str) -> int:
    return sum(len(m) for m in _WORD.findall(text))


def _built_from(password: str, distinctive: Iterable[str], everything: Iterable[str]) -> bool:
    """True when the password is one of the words plus digits/symbols (what's left has < 4 letters).

    Tried as typed and with look-alike characters undone (H0llyb4nk -> hollybank)."""
    distinctive = [w for w in distinctive if w]
    if not distinctive:
        return False
    lower = unicodedata.normalize("NFKD", password).lower()
    lower = "".join(c for c in lower if c.isascii())
    for form in (lower, lower.translate(_LEET)):
        rest, found = _strip_words(form, distinctive)
        if not found:
            continue
        rest, _ = _strip_words(rest, everything)
        if _letters_left(rest) < 4:
            return True
    return False


def check_candidate(cfg: Config, password: str, *, person: Account | None = None) -> list[str]:
    """Why this password is weak, in plain words; an empty list when it is acceptable.

    The reasons never quote the password."""
    reasons: list[str] = []
    p = cfg.passwords
    if len(password) < p.min_length:
        reasons.append(f"it is shorter than {p.min_length} characters (three or four random words make it long)")
    lower = password.lower()
    bare = re.sub(r"[^a-z0-9]", "", lower)
    if lower in common_passwords() or (bare and bare in common_passwords() and len(bare) >= len(lower) - 1):
        reasons.append("it is one of the most common passwords, which attackers try first")
    distinct, school_all = school_words(cfg)
    if _built_from(password, distinct, school_all):
        reasons.append("it is built from the school's name, which anyone can guess")
    mine = person_words(person)
    if _built_from(password, mine, mine):
        reasons.append("it is built from the person's own name or username")
    if _built_from(password, COMMON_BASES, COMMON_BASES):
        reasons.append(
            "it is a common word (a season, a month, 'password', 'welcome'...) with numbers or symbols added"
        )
    score, warning = _strength(password, list(school_all) + list(mine))
    if score < MIN_SCORE:
        why = f" ({warning.rstrip('.')})" if warning else ""
        reasons.append(f"the strength estimate rates it {score} out of 4, below {MIN_SCORE}{why}")
    return reasons


def _strength(password: str, user_inputs: list[str]) -> tuple[int, str]:
    from zxcvbn import zxcvbn

    # zxcvbn is slow on very long input and gains nothing past 100 characters.
    result = zxcvbn(password[:100], user_inputs=user_inputs)
    return int(result["score"]), str(result.get("feedback", {}).get("warning") or "")


# -- candidates for the hash test --


def _years(now: dt.date, back: int) -> list[int]:
    return list(range(now.year + 1, now.year - back - 1, -1))


def _suffixes(now: dt.date, years_back: int) -> list[str]:
    out = list(_SHORT_SUFFIXES)
    for y in _years(now, years_back):
        for form in (str(y), str(y)[2:]):
            out += [form, form + "!"]
    return list(dict.fromkeys(out))


def _variants(words: Iterable[str], suffixes: list[str]) -> Iterable[str]:
    """lower and Capitalised (how people type a word for a complexity rule), each with every ending."""
    for w in words:
        for form in dict.fromkeys((w, w.capitalize())):
            for s in suffixes:
                yield form + s


def _likeliest_suffixes(now: dt.date) -> list[str]:
    y = now.year
    return ["", "1", "123", "!", "1!", "123!", str(y), f"{y}!", str(y - 1), f"{y - 1}!"]


def common_candidates(cfg: Config, now: dt.date, top: int = HASH_COMMON_TOP) -> list[bytes]:
    """The same for every account: common passwords, common words and the school's name with endings.

    Likeliest first (the school's name and the commonest words with the usual endings, the top 100
    passwords), so a slow hash that can only afford a few candidates tries those."""
    distinct, _ = school_words(cfg)
    recent = _suffixes(now, 10)
    likely = _likeliest_suffixes(now)
    out: dict[str, None] = {}
    for c in _variants(distinct, likely):
        out[c] = None
    for w in _ranked_common(100):
        out[w] = None
    for c in _variants(["password", "welcome", "letmein", "changeme"], likely):
        out[c] = None
    for w in _ranked_common(top):
        out[w] = None
        out[w.capitalize()] = None
    for c in _variants(COMMON_BASES, recent):
        out[c] = None
    for c in _variants(distinct, _suffixes(now, 20)):
        out[c] = None
    return [c.encode("utf-8") for c in out]


def personal_candidates(given: str, surname: str, username: str, now: dt.date) -> list[bytes]:
    """One person's names and username with endings (birth years included: 70 years back)."""
    words = [fold(given), fold(surname), fold(username)]
    if words[0] and words[1]:
        words += [words[0] + words[1], words[0][0] + words[1]]
    words = [w for w in dict.fromkeys(words) if len(w) >= 3]
    ordered = dict.fromkeys(_variants(words, _likeliest_suffixes(now)))  # likeliest first
    ordered.update(dict.fromkeys(_variants(words, _suffixes(now, 70))))
    return [c.encode("utf-8") for c in ordered]
