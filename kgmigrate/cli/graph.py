"""`kgmigrate graph`: print the dependency graph as text, Graphviz dot or mermaid."""

from __future__ import annotations

import click

from ..settings import Settings


def _marks(plan) -> dict:
    """Return what the database says of each file: applied (in which order) or pending."""
    from ..files.graph_render import Mark

    marks = {v: Mark("applied", i) for i, v in enumerate(plan.state.in_applied_order(), 1)}
    late = {o.file.version for o in plan.out_of_order}
    marks.update({mf.version: Mark("out-of-order" if mf.version in late else "pending")
                  for mf in plan.pending})
    marks.update({r.file.name: Mark(r.status) for r in plan.repeatables})
    return marks


@click.command()
@click.option("--format", "fmt", type=click.Choice(("text", "dot", "mermaid")), default="text",
              show_default=True, help="text, or for `dot -Tsvg` / a mermaid diagram.")
@click.option("--applied", is_flag=True,
              help="Mark each file applied (with its applied order) or pending, out-of-order "
                   "ones apart (connects to the database).")
@click.pass_obj
def graph(settings: Settings, fmt: str, applied: bool) -> None:
    """Print the files in number order with the `-- kgmigrate:requires` edges between them."""
    from ..files.graph import read_graph
    from ..files.graph_render import render

    marks = None
    if applied:
        from ..apply.plan import make_plan
        from ..apply.session import open_database

        _, conn = open_database(settings, read_only=True)
        with conn:
            plan = make_plan(conn, settings, parse=False)
        found = plan.graph
        marks = _marks(plan)
    else:
        found = read_graph(settings)
    click.echo(render(found, fmt, marks))
