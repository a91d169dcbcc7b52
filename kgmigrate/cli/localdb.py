"""`kgmigrate localdb start|stop|status|url`: the project-local PostgreSQL cluster."""

from __future__ import annotations

import click

from .output import say, version_label


@click.group()
def localdb() -> None:
    """Manage the project-local PostgreSQL cluster in .kgdata/ (KG_LOCALDB_DIR)."""


@localdb.command()
@click.option("--no-migrate", is_flag=True, help="Only start the server.")
@click.pass_context
def start(ctx: click.Context, no_migrate: bool) -> None:
    """Create and start the cluster, then apply pending migrations."""
    from ..apply.plan import make_plan
    from ..apply.session import connect
    from ..apply.up import apply
    from ..postgres.localdb import project_cluster

    cluster = project_cluster()
    started = cluster.start()
    say(f"Local PostgreSQL {'started' if started else 'already running'}: {cluster.url()}")
    if no_migrate:
        return
    settings = ctx.obj
    with connect(cluster.url()) as conn:
        plan = make_plan(conn, settings)
        result = apply(conn, settings, plan)
    n = len(result.applied) + (1 if result.baseline_applied else 0)
    say(f"Applied {n} migration(s); schema version {version_label(result.current_version)}")


@localdb.command()
def stop() -> None:
    """Stop the cluster."""
    from ..postgres.localdb import project_cluster

    say("Local PostgreSQL stopped." if project_cluster().stop() else "Local PostgreSQL was not running.")


@localdb.command()
def status() -> None:
    """Say whether the cluster exists and runs (exit 3 when it is not running)."""
    from ..postgres.localdb import project_cluster

    cluster = project_cluster()
    if not cluster.initialized:
        say(f"No local cluster in {cluster.root}")
        raise SystemExit(3)
    running = cluster.running()
    say(f"Local PostgreSQL in {cluster.root}: {'running' if running else 'stopped'}"
        + (f" at {cluster.url()}" if running else ""))
    if not running:
        raise SystemExit(3)


@localdb.command()
def url() -> None:
    """Print the cluster's database URL (for KG_DATABASE_URL)."""
    from ..postgres.localdb import project_cluster

    click.echo(project_cluster().url())
