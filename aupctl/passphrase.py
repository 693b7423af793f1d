"""Generated passphrases: random words from the EFF long list (via xkcdpass) and a number.

Used by the intake, password reset, leaver withdrawal (a password nobody is shown) and restore.
Three random words from 7,776 give ~39 bits, the number ~7 more; four words (the default) ~58 bits.
"""

from __future__ import annotations

import secrets
from functools import lru_cache


@lru_cache(maxsize=1)
def _words() -> list[str]:
    from xkcdpass import xkcd_password as xp

    # 4-8 letters: easy to type from a handout, long enough to count.
    return xp.generate_wordlist(wordfile=xp.locate_wordfile(), min_length=4, max_length=8)


def generate(words: int = 4, separator: str = "-") -> str:
    """E.g. 'Harbor-Velvet-Ocean-Timber-47': capitalised words satisfy AD's complexity rule (upper,
    lower, digit, symbol) without making the passphrase harder to remember."""
    if words < 3:
        raise ValueError("a passphrase needs three or more words")
    pool = _words()
    chosen = [secrets.choice(pool).capitalize() for _ in range(words)]
    return separator.join(chosen) + separator + str(secrets.randbelow(90) + 10)


def unusable(length: int = 48) -> str:
    """A password nobody is shown (leaver withdrawal): long, random, meets any complexity rule."""
    return "Wd-" + secrets.token_urlsafe(length) + "-9a"
