"""`kgmigrate up`, `status` and `repair`: apply pending migrations, show where the database stands,
accept deliberate edits of applied files."""

from __future__ import annotations

import json

import click

from ..files.versions import version_text, versions_text
from ..settings import Settings
from .lint import UpLint
from .options import (
    ddl_lock_timeout_option,
    lint_mode_option,
    lock_timeout_option,
    quiet_option,
    retries_option,
    snapshot_option,
    verbose_option,
)
from .output import (
    TerminalReporter,
    arrow,
    command_header,
    confirm,
    ok_mark,
    say,
    version_label,
    warn,
)
from .snapshot import snapshot_before_up


def _print_plan(plan) -> None:
    say(f"Applied: {len(plan.state.applied)} migration(s)")
    extra = 1 if plan.baseline else 0
    say(f"Pending: {len(plan.pending) + extra} migration(s)")
    if plan.baseline:
        squashed = plan.squash.squashed_through if plan.squash else None
        records = f"; records 001..{version_text(squashed)} as applied" if squashed else ""
        say(f"  {arrow()} Baseline {plan.baseline.name} (fresh database{records})", fg="cyan")
    late = {o.file.version: o for o in plan.out_of_order}
    for m in plan.parsed:
        say(f"  {arrow()} Migration {version_text(m.version)} - {m.name}"
            + ("  [no-transaction]" if not m.transactional else "")
            + (f"  [out of order: after {versions_text(late[m.version].above)}]"
               if m.version in late else ""), fg="cyan")
    for r in plan.repeatables_to_run:
        say(f"  {arrow()} Repeatable {r.file.name} ({r.status})", fg="cyan")
    if plan.target is not None and any(r.runs for r in plan.repeatables):
        warn("repeatable files run only in an `up` without --target")
    for w in plan.warnings:
        warn(w)
    if plan.down_drifted:
        warn(f"down file(s) changed since their migration was applied: "
             f"{versions_text(plan.down_drifted)}; `kgmigrate down` refuses "
             f"them until `kgmigrate repair` accepts the edits")


@click.command()
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing at all.")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking.")
@verbose_option
@quiet_option
@click.option("--target", type=click.IntRange(min=0), metavar="N", help="Stop after version N.")
@lock_timeout_option
@ddl_lock_timeout_option
@retries_option
@lint_mode_option("pending files")
@snapshot_option("applying")
@click.option("--allow-out-of-order", is_flag=True, envvar="KG_ALLOW_OUT_OF_ORDER",
              help="Apply pending files numbered below an applied version (a branch merged "
                   "late), each once what it requires is applied [env KG_ALLOW_OUT_OF_ORDER=1].")
@click.pass_obj
def up(settings: Settings, dry_run: bool, yes: bool, verbose: bool, quiet: bool,
       target: int | None, lock_timeout: float, ddl_lock_timeout: float, retries: int,
       lint_mode: str, snapshot: bool | None, allow_out_of_order: bool) -> None:
    """Apply pending migrations in version order."""
    from ..apply.drift import check_drift
    from ..apply.locks.ddl import DdlLockPolicy
    from ..apply.order import refuse
    from ..apply.plan import make_plan
    from ..apply.session import open_database
    from ..apply.up import apply

    conninfo, conn = open_database(settings, read_only=dry_run)
    with conn, UpLint(lint_mode, ddl_lock_timeout, verbose=verbose) as pending_lint:
        command_header(settings, conninfo, "Dry run" if dry_run else "apply migrations")
        plan = make_plan(conn, settings, target=target, on_pending=pending_lint.start)
        _print_plan(plan)
        if plan.drifted:  # a dry run predicts `up`, refusal included
            check_drift(plan.drifted, plan.files)
        refuse(plan.out_of_order, plan.pending, plan.state, plan.graph, allow_out_of_order)
        pending_lint.finish()
        count = len(plan.pending) + (1 if plan.baseline else 0) + len(plan.repeatables_to_run)
        if dry_run:
            say()
            say(f"Dry run: nothing was applied. Current schema version: "
                f"{version_label(plan.current_version)}")
            return
        if count:
            snapshot_before_up(settings, conninfo, conn, want=snapshot, yes=yes)
        if count == 0:
            say()
            say(f"Nothing to do. Current schema version: {version_label(plan.current_version)}",
                fg="green")
        elif not yes:
            say()
            if not confirm(f"Apply {count} migration(s)?", default=False):
                say("Nothing applied.")
                return

        if verbose:
            say(f"Waiting for the migration lock (up to {lock_timeout:g} s)", err=True)
        result = apply(conn, settings, plan, lock_timeout=lock_timeout,
                       reporter=TerminalReporter(verbose, quiet),
                       ddl_policy=DdlLockPolicy(timeout_s=ddl_lock_timeout, retries=retries),
                       allow_out_of_order=allow_out_of_order)
        if count:
            say()
            n = len(result.applied) + (1 if result.baseline_applied else 0)
            k = len(result.repeatables)
            if n + k == 0:  # we waited for the lock while another runner did the work
                say("Another runner applied them meanwhile.")
            again = f" and {k} repeatable file(s)" if k else ""
            say(f"Applied: {n} migration(s){again}. Schema version: "
                f"{version_label(result.current_version)}", fg="green", bold=True)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Show applied, pending and drifted migrations."""
    from ..apply.plan import make_plan
    from ..apply.session import open_database

    conninfo, conn = open_database(settings, read_only=True)
    with conn:
        plan = make_plan(conn, settings, parse=False)
    applied = sorted(plan.state.applied.values(), key=lambda r: r.version)
    through = plan.squash.squashed_through if plan.squash else None
    squashed = {r.version for r in applied if plan.squash and plan.squash.covers(r.version)}
    reversible = {mf.version for mf in plan.files
                  if mf.down is not None and mf.version not in squashed}
    late = {o.file.version: o.above for o in plan.out_of_order}
    if as_json:
        click.echo(json.dumps({
            "current_version": plan.current_version,
            "applied": [{"version": r.version, "name": r.name, "checksum": r.checksum,
                         "applied_at": r.applied_at.isoformat() if r.applied_at else None,
                         "execution_ms": r.execution_ms, "applied_order": r.applied_order,
                         "reversible": r.version in reversible,
                         "squashed": r.version in squashed} for r in applied],
            "pending": [{"version": m.version, "name": m.name} for m in plan.pending],
            "out_of_order": [{"version": o.file.version, "name": o.file.name,
                              "applied_above": o.above} for o in plan.out_of_order],
            "repeatable": [{"name": r.file.name, "status": r.status,
                            "applied_at": r.applied_at.isoformat() if r.applied_at else None}
                           for r in plan.repeatables],
            "drifted": plan.drifted,
            "down_drifted": plan.down_drifted,
            "squashed_through": through,
            "squashed_missing": plan.squashed_away,
        }, indent=2))
        return
    command_header(settings, conninfo, "status")
    say(f"Current version: {version_label(plan.current_version)}", bold=True)
    say(f"Applied: {len(applied)} migration(s)")
    for r in applied:
        when = f"{r.applied_at:%Y-%m-%d %H:%M:%S}" if r.applied_at else "?"
        ms = f" ({r.execution_ms} ms)" if r.execution_ms is not None else ""
        bad = r.version in plan.drifted or r.version in plan.down_drifted
        mark = "!" if bad else ok_mark()
        undo = ("  [squashed]" if r.version in squashed
                else "  [reversible]" if r.version in reversible else "")
        say(f"  {mark} Migration {version_text(r.version)} - {r.name}  {when}{ms}{undo}",
            fg="red" if bad else None)
    say(f"Pending: {len(plan.pending)} migration(s)")
    for m in plan.pending:
        say(f"  {arrow()} Migration {version_text(m.version)} - {m.name}"
            + (f"  [out of order: below applied {versions_text(late[m.version])}]"
               if m.version in late else ""), fg="cyan")
    if plan.repeatables:
        say(f"Repeatable: {len(plan.repeatables)} file(s)")
    for r in plan.repeatables:
        say(f"  {ok_mark() if not r.runs else arrow()} Repeatable {r.file.name} ({r.status})",
            fg=None if not r.runs else "cyan")
    if late:
        warn(f"{len(late)} pending file(s) numbered below applied versions: `kgmigrate up` "
             f"refuses them until renumbered (`kgmigrate renumber FILE`) or allowed "
             f"(--allow-out-of-order)")
    if plan.drifted:
        say(f"Drifted: {versions_text(plan.drifted)} changed since applied; "
            f"`kgmigrate repair` accepts the edits", fg="red")
    if plan.down_drifted:
        say(f"Drifted down files: {versions_text(plan.down_drifted)} changed "
            f"since applied; `kgmigrate down` refuses them, `kgmigrate repair` accepts the edits",
            fg="red")
    if through is not None:
        say(f"Squashed: 001..{version_text(through)} live in {plan.squash.path.name} (files may be "
            f"deleted once every database is past {version_text(through)})")
    if plan.squashed_away:
        say(f"Missing: {versions_text(plan.squashed_away)} are not applied here and their files "
            f"were deleted after the squash; `kgmigrate up` refuses until they are restored",
            fg="red")
    if plan.missing_files:
        warn(f"applied version(s) without a file: "
             f"{versions_text(plan.missing_files)}")


@click.command()
@click.argument("versions", nargs=-1, type=int)
@lock_timeout_option
@click.pass_obj
def repair(settings: Settings, versions: tuple[int, ...], lock_timeout: float) -> None:
    """Record the current checksum of applied files after a deliberate edit."""
    from ..apply.drift import repair as do_repair
    from ..apply.session import open_database

    _, conn = open_database(settings)
    with conn:
        fixed = do_repair(conn, settings, list(versions), lock_timeout=lock_timeout)
    if fixed:
        say(f"Recorded new checksum(s) for: {versions_text(fixed)}", fg="green")
    else:
        say("Nothing to repair: no applied file has changed.")
