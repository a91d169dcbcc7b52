r"""The psql meta-commands kgmigrate lets through: pg_dump's `\restrict KEY` / `\unrestrict KEY`.

pg_dump 15.14 and later writes them around the SQL of a plain dump so that psql refuses any other
meta-command in between. kgmigrate runs no meta-command at all, so skipping these two lines loses
nothing; every other meta-command is refused (by `up`, and by `restore` for plain snapshots).
"""

from __future__ import annotations

DUMP_GUARDS = frozenset({"restrict", "unrestrict"})


def is_dump_guard(line: str) -> bool:
    r"""Tell whether `line` (from its backslash on) is `\restrict KEY` or `\unrestrict KEY`."""
    name, _, key = line.rstrip("\r\n").partition(" ")
    return name[:1] == "\\" and name[1:] in DUMP_GUARDS and key.strip().isalnum()
