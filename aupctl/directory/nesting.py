"""Nested groups, followed in memory: the one walk behind AD's effective members, its password-policy
resolution and the domain audit's privileged members (a group map read once by Flavour.all_groups)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping

from .dn import normalise_dn


def walk_nested(
    groups: Mapping[str, list[str]], top: str, members: Iterable[str]
) -> Iterator[tuple[str, str | None, str | None]]:
    """Breadth first from the group whose normalised DN is `top` and whose direct members are `members`
    (`groups`: normalised group DN -> direct member DNs): every member that is not a group, as (its DN as
    written, the member group of `top` it came through, the group that lists it), both None for a direct
    member. A member listed by several groups comes once for each; each group is entered once, so a loop
    of groups ends."""
    seen = {top}
    queue: deque[tuple[str, str | None, str | None]] = deque((m, None, None) for m in members)
    while queue:
        member, via, parent = queue.popleft()
        key = normalise_dn(member)
        if key in groups:
            if key not in seen:
                seen.add(key)
                queue.extend((m, via or member, member) for m in groups[key])
        else:
            yield member, via, parent
