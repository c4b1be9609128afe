"""What a team name may be: the one rule the CLI, the admin API and the database all enforce.

Names appear on command lines, in query strings, tables and (optionally) metric labels, so
they are short and plain: 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or
digit. The database migration (0006) holds the same rule. Pure.
"""

from __future__ import annotations

import re

TEAM_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TEAM_NAME_RULE = (
    "A team name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
)


def team_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a team name, or None when it can."""
    if TEAM_NAME_PATTERN.fullmatch(name):
        return None
    return f"{TEAM_NAME_RULE}; got {name!r}."
