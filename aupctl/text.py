"""Text from outside (CSV files, the directory, laptops) made safe for where it goes next.

- csv_cell(): every CSV cell aupctl writes (--format csv, the credentials and recertification files):
  shown() and then inert(), so a cell can neither drive a terminal nor reorder or break a row, nor run
  as a formula in a spreadsheet.
- inert(): a cell a spreadsheet will not run as a formula.
- shown(): text for a terminal, with control, bidi and invisible characters written as escapes
  (`\\x1b`, `\\u202e`), so a hostname or a name cannot retitle the window, clear the screen or reorder
  what the reader sees.
- refuse_unsafe(): names and free text going into the directory or the store may hold none of them.

"Unsafe" is by Unicode category, so it covers what the next Unicode version adds: Cc (C0, DEL, C1),
Cf (bidi embeddings, overrides, isolates and marks, zero-width space/joiners, word joiner, BOM,
soft hyphen, tag characters...), Zl and Zp (line and paragraph separators) and Cs (lone surrogates,
which surrogateescape decoding leaves behind).
"""

from __future__ import annotations

import unicodedata

from .errors import InputError

UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})

# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets (TAB and CR
# too: some strip them and read what follows). The full-width forms are folded to ASCII by some.
FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def inert(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading quote before anything it would run as a formula."""
    return "'" + value if value[:1] in FORMULA_START else value


def csv_cell(value: str) -> str:
    """A CSV cell safe for a spreadsheet and a terminal: control, bidi and invisible characters (CR and LF
    too: a value never breaks a line) written as the table shows them, then a formula-like start quoted."""
    return inert(shown(value))


def unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in UNSAFE_CATEGORIES


def escape_char(ch: str) -> str:
    o = ord(ch)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def shown(text: str, *, newlines: bool = False) -> str:
    """Text safe to print on a terminal: every unsafe character escaped (a newline kept if `newlines`)."""
    if text.isprintable():  # the common case: nothing to do (isprintable is False for every unsafe char)
        return text
    return "".join(escape_char(c) if unsafe(c) and not (newlines and c == "\n") else c for c in text)


def first_unsafe(text: str) -> int | None:
    """The index of the first unsafe character, or None."""
    if text.isprintable():
        return None
    for i, c in enumerate(text):
        if unsafe(c):
            return i
    return None


def problem(text: str) -> str | None:
    """Why this name or free text may not go into the directory or the store, or None."""
    i = first_unsafe(text)
    if i is None:
        return None
    kind = _kind(text[i])
    return f"holds {kind} ({escape_char(text[i])} at character {i + 1})"


def _kind(ch: str) -> str:
    cat = unicodedata.category(ch)
    o = ord(ch)
    if cat == "Cc":
        return "a control character"
    if o in (0x061C, 0x200E, 0x200F) or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
        return "a bidirectional-text control"
    if cat == "Cs":
        return "an undecodable byte"
    if cat in ("Zl", "Zp"):
        return "a line or paragraph separator"
    return "an invisible formatting character"


def refuse_unsafe(text: str | None, what: str) -> str | None:
    """`text` unchanged, or InputError naming `what` (the option, or the file's line and column)."""
    if text is None:
        return None
    why = problem(text)
    if why:
        raise InputError(
            f"{what} {why}: not accepted in names or notes",
            hint="retype it, or remove the character in the file (it may have come from a copy and paste)",
        )
    return text
