"""The one safe formatter for config templates ({username}@school.example, {first_initial}{last_name}...).

str.format would follow `{username.__init__.__globals__}` into Python objects and `{0[x]}` into
indexes; here a template is only literal text and bare field names from a known list, checked when
the config is loaded and filled in by plain concatenation, so nothing but the named values is reached.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping


def fields(template: str, known: Iterable[str]) -> list[str]:
    """The field names a template uses, in order; ValueError naming what is wrong (an unknown field,
    an attribute or index, a format spec or conversion, an unmatched brace)."""
    allowed = tuple(known)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(
            f"{template!r} is not a valid template: {exc} (write a literal brace as {{{{ or }}}})"
        ) from None
    used: list[str] = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in allowed:
            raise ValueError(f"{template!r}: unknown field {{{name}}} (known: {', '.join(allowed)})")
        if spec or conversion:
            raise ValueError(f"{template!r}: {{{name}}} takes no format spec or conversion")
        used.append(name)
    return used


def literals(template: str) -> str:
    """The template's literal text (to check which characters it may hold)."""
    return "".join(lit for lit, _, _, _ in string.Formatter().parse(template))


def render(template: str, values: Mapping[str, str], known: Iterable[str] | None = None) -> str:
    """The template filled in from `values` by concatenation (never str.format). KeyError names a field
    the template uses that `values` lacks; ValueError as `fields`."""
    fields(template, known if known is not None else values.keys())  # only bare, known names get past here
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(str(values[name]))
    return "".join(out)
