"""Out-of-order files: pending files numbered below a version already applied (a branch merged
after a later number was deployed). Refused unless allowed; allowed, each runs only after
everything it `requires`."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KgMigrateError
from ..files.graph import Graph
from ..files.migrations import MigrationFile
from ..files.versions import version_text, versions_text
from . import tracking

ALLOW_HINT = "--allow-out-of-order (env KG_ALLOW_OUT_OF_ORDER=1)"


class OutOfOrderError(KgMigrateError):
    """A pending file is numbered below an applied one and running it out of order is not allowed."""


@dataclass(frozen=True)
class OutOfOrder:
    """A pending file and the applied versions numbered above it."""

    file: MigrationFile
    above: list[int]

    def describe(self) -> str:
        return (f"{self.file.path.name} is numbered below applied version(s) "
                f"{versions_text(self.above)}")


def out_of_order(pending: list[MigrationFile], state: tracking.DbState) -> list[OutOfOrder]:
    """Return the pending files numbered below an applied version, each with those versions."""
    applied = sorted(state.applied)
    return [OutOfOrder(mf, [v for v in applied if v > mf.version]) for mf in pending
            if applied and mf.version < applied[-1]]


def unmet_requirements(found: list[OutOfOrder], pending: list[MigrationFile],
                       state: tracking.DbState, graph: Graph) -> list[str]:
    """Return, per out-of-order file, what it requires that will not have run before it.

    A requirement is met when applied, provided by the baseline, or pending and run earlier in
    the same `up` (pending files run in number order).
    """
    out = []
    pending_versions = {mf.version for mf in pending}
    for o in found:
        for target in graph.requires.get(o.file.version, ()):
            met = (target in state.applied or target in graph.provided
                   or (target in pending_versions and target < o.file.version))
            if not met:
                out.append(f"{o.file.path.name} requires {version_text(target)}, which is not "
                           f"applied")
    return out


def refuse(found: list[OutOfOrder], pending: list[MigrationFile], state: tracking.DbState,
           graph: Graph, allow: bool) -> None:
    """Refuse out-of-order files (all when not allowed; allowed, those whose requires are unmet)."""
    if not found:
        return
    if allow:
        unmet = unmet_requirements(found, pending, state, graph)
        if unmet:
            raise OutOfOrderError("cannot apply out of order: " + "; ".join(unmet)
                                  + ". Nothing was applied.")
        return
    lines = "\n".join(f"  {o.describe()}" for o in found)
    first = found[0].file.path.name
    raise OutOfOrderError(
        f"pending file(s) numbered below versions already applied; nothing was applied:\n{lines}\n"
        f"Either renumber each to run after them (`kgmigrate renumber {first}`), or, when it "
        f"does not depend on them, apply it out of order with {ALLOW_HINT}: it then runs after "
        f"what it `requires`, and `down` reverses in the order files really ran.")
