"""The dependency graph written out: text, Graphviz dot, or a mermaid flowchart.

Number order is the spine (dashed edges from each version to the next), `requires` edges run
from the required file to the file that requires it, repeatable files hang off what they require.
With marks (from the database) each node says applied (and when, in applied order), pending, or
pending out of order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import Graph, Ref
from .versions import version_text

FORMATS = ("text", "dot", "mermaid")


@dataclass(frozen=True)
class Mark:
    """What the database says of one file."""

    state: str  # applied | pending | out-of-order | changed | current | new
    order: int | None = None  # applied order, for applied versions


def _nodes(graph: Graph) -> list[tuple[Ref, str]]:
    """Return every node (provided versions included) with its label, in spine order."""
    out: list[tuple[Ref, str]] = []
    versions = {mf.version: mf.name for mf in graph.files}
    required = {t for ts in graph.requires.values() for t in ts if isinstance(t, int)}
    for v in sorted(versions.keys() | (graph.provided & required)):
        out.append((v, f"{version_text(v)} {versions.get(v, '(in the baseline)')}"))
    out += [(r.name, f"repeatable {r.name}") for r in graph.repeatables]
    return out


def _node_id(ref: Ref) -> str:
    return f"v{ref}" if isinstance(ref, int) else "r_" + "".join(
        c if c.isalnum() else f"_{ord(c):x}_" for c in ref)


def _edges(graph: Graph) -> tuple[list[tuple[Ref, Ref]], list[tuple[Ref, Ref]]]:
    """Return the spine edges and the `requires` edges (required -> requiring)."""
    versions = sorted({mf.version for mf in graph.files})
    spine = list(zip(versions, versions[1:]))
    requires = [(t, src) for src, ts in graph.requires.items() for t in ts]
    return spine, requires


def _mark_text(mark: Mark | None) -> str:
    if mark is None:
        return ""
    if mark.order is not None:
        return f"{mark.state} #{mark.order}"
    return mark.state


def render_text(graph: Graph, marks: dict[Ref, Mark] | None = None) -> str:
    """Return one line per file in number order, repeatable files last, with what it requires."""
    lines = []
    nodes = _nodes(graph)
    width = max((len(label) for _, label in nodes), default=0)
    for ref, label in nodes:
        reqs = graph.requires.get(ref, [])
        req = ("requires " + ", ".join(version_text(t) if isinstance(t, int) else t
                                       for t in reqs)) if reqs else ""
        parts = [label.ljust(width)]
        if marks is not None:
            parts.append(f"[{_mark_text(marks.get(ref)) or 'provided'}]")
        if req:
            parts.append(req)
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


_FILL = {"applied": "#c8e6c9", "current": "#c8e6c9", "pending": "#fff9c4", "new": "#fff9c4",
         "changed": "#fff9c4", "out-of-order": "#ffcc80"}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: Graph, marks: dict[Ref, Mark] | None = None) -> str:
    """Return the graph as a Graphviz digraph."""
    out = ["digraph migrations {", "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    for ref, label in _nodes(graph):
        mark = _mark_text(marks.get(ref)) if marks else ""
        text = _dot_quote(label + (f"\n{mark}" if mark else "")).replace("\n", "\\n")
        attrs = [f"label={text}"]
        if isinstance(ref, str):
            attrs.append("shape=ellipse")
        if marks and marks.get(ref):
            attrs += ["style=filled", f'fillcolor="{_FILL[marks[ref].state]}"']
        out.append(f"  {_node_id(ref)} [{', '.join(attrs)}];")
    spine, requires = _edges(graph)
    out += [f"  {_node_id(a)} -> {_node_id(b)} [style=dashed, color=gray];" for a, b in spine]
    out += [f'  {_node_id(a)} -> {_node_id(b)} [label="requires", color=blue];'
            for a, b in requires]
    out.append("}")
    return "\n".join(out)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def render_mermaid(graph: Graph, marks: dict[Ref, Mark] | None = None) -> str:
    """Return the graph as a mermaid flowchart."""
    out = ["flowchart TD"]
    for ref, label in _nodes(graph):
        mark = _mark_text(marks.get(ref)) if marks else ""
        text = _mermaid_text(label + (f"<br/>{mark}" if mark else ""))
        out.append(f'  {_node_id(ref)}{"([" if isinstance(ref, str) else "["}"{text}"'
                   f'{"])" if isinstance(ref, str) else "]"}')
    spine, requires = _edges(graph)
    out += [f"  {_node_id(a)} -.-> {_node_id(b)}" for a, b in spine]
    out += [f"  {_node_id(a)} -->|requires| {_node_id(b)}" for a, b in requires]
    if marks:
        for state, fill in _FILL.items():
            members = [_node_id(r) for r, m in marks.items() if m.state == state]
            if members:
                cls = state.replace("-", "_")
                out.append(f"  classDef {cls} fill:{fill}")
                out.append(f"  class {','.join(members)} {cls}")
    return "\n".join(out)


def render(graph: Graph, fmt: str, marks: dict[Ref, Mark] | None = None) -> str:
    """Return the graph in `fmt` (one of FORMATS)."""
    return {"text": render_text, "dot": render_dot, "mermaid": render_mermaid}[fmt](graph, marks)
