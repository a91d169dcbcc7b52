"""The documentation runs as shown: every command line it shows names commands and options that
exist, and every relative link between the pages resolves."""

from __future__ import annotations

import ast
import configparser
import importlib
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tests.support.kgm import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
         REPO / "schema" / "migrations" / "README.md"]
SHELL_BLOCKS = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^\s*```(\S*)\s*$")
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
TERMINATORS = {"|", "||", ";", "&&", "&", ")", "(", ">", "<", ">>"}


def page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


def split_blocks(text: str) -> tuple[list[tuple[int, str, str]], str]:
    """The fenced blocks' lines as (line number, language, line), and the prose with each block
    line blanked (so offsets still give line numbers)."""
    blocks, prose, lang = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            lang = None if lang is not None else fence.group(1)
            prose.append("")
        elif lang is not None:
            blocks.append((number, lang, line))
            prose.append("")
        else:
            prose.append(line)
    return blocks, "\n".join(prose)


def shown_commands(page: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of what the page shows as typed: the lines of shell blocks, `$ ` lines of
    other blocks (the rest of those is output), and inline code in the prose."""
    blocks, prose = split_blocks(page.read_text(encoding="utf-8"))
    pending: tuple[int, str] | None = None  # a shell line continued with a trailing backslash
    for number, lang, line in blocks:
        if pending:
            number, line = pending[0], pending[1] + " " + line.strip()
            pending = None
        if line.endswith("\\"):
            pending = (number, line[:-1])
        elif line.startswith("$ "):
            yield number, line[2:]
        elif lang in SHELL_BLOCKS:
            yield number, line
    for m in INLINE.finditer(prose):
        yield prose.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())


def invocations(text: str, program: str) -> Iterator[list[str]]:
    """The argument lists `program` gets in a shell line or a synopsis: `[...]` groups are
    optional and `a|b` inside them are alternatives; outside them `|`, `;`, `&&` end a command."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: prose, not a command line
        return
    i = 0
    while i < len(tokens):
        if Path(tokens[i]).name != program or tokens[i].startswith("["):
            i += 1
            continue
        args, depth = [], 0
        i += 1
        while i < len(tokens):
            token = tokens[i]
            if token in TERMINATORS and depth == 0:
                break
            depth += token.count("[") - token.count("]")
            args.append(token)
            i += 1
        yield args


def check_invocation(root: click.Command, args: list[str], ctx_name: str) -> list[str]:
    """Walk `args` through Click's command objects; the problems found (none when all exist)."""
    problems: list[str] = []
    command, path = root, [ctx_name]
    positionals = 0
    alternative = False
    tokens = iter(args)
    for raw in tokens:
        token = raw.strip("[]")
        if raw == "|":
            alternative = True  # inside brackets: the next word is another choice
            continue
        if not token or token in {"...", "…"}:
            alternative = False
            continue
        if token.startswith("-") and token != "-":
            alternative = False
            for name in re.split(r"[/|]", token):
                name, _, value = name.partition("=")
                problems += check_option(command, path, name, value, raw, tokens)
            continue
        if alternative:
            alternative = False
            continue
        if isinstance(command, click.Group):
            sub = command.commands.get(token)
            if sub is None:
                problems.append(f"{' '.join(path)}: no command {token!r}")
                return problems
            command, path, positionals = sub, [*path, token], 0
            continue
        positionals += 1
        capacity = [p.nargs for p in command.params if isinstance(p, click.Argument)]
        if -1 not in capacity and positionals > sum(capacity):
            problems.append(f"{' '.join(path)}: unexpected argument {token!r}")
    return problems


def check_option(command: click.Command, path: list[str], name: str, value: str, raw: str,
                 tokens: Iterator[str]) -> list[str]:
    """Check one option (and its value, consumed from `tokens` unless written `--x=value`)."""
    options = {opt: p for p in command.params if isinstance(p, click.Option)
               for opt in [*p.opts, *p.secondary_opts]}
    options["--help"] = options["-h"] = None
    if name not in options:
        return [f"{' '.join(path)}: no option {name!r}"]
    param = options[name]
    if param is None or param.is_flag or param.count or name in param.secondary_opts:
        return []
    if not value and "=" not in raw and not raw.endswith("]"):
        value = next(tokens, "").strip("[]").split("|")[0]
    if isinstance(param.type, click.Choice) and value and value.islower():
        if value not in param.type.choices:
            return [f"{' '.join(path)}: {name} {value!r} is not one of {param.type.choices}"]
    return []


def kgmigrate_command() -> click.Command:
    """The Click command behind the `kgmigrate` console script, found where setup.cfg points."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    scripts = {name.strip(): target.strip() for name, _, target in
               (line.partition("=") for line in
                cfg["options.entry_points"]["console_scripts"].strip().splitlines())}
    module_name, _, attr = scripts["kgmigrate"].partition(":")
    module = importlib.import_module(module_name)
    entry = getattr(module, attr)
    if isinstance(entry, click.Command):
        return entry
    # A plain main() that calls the group: the module's group that no other group contains.
    groups = [v for v in vars(module).values() if isinstance(v, click.Group)]
    nested = {id(c) for g in groups for c in g.commands.values()}
    roots = [g for g in groups if id(g) not in nested]
    assert len(roots) == 1, f"{module_name}: which group is the console script? {roots}"
    return roots[0]


def flask_command() -> click.Command:
    """`flask --app kgserve`'s commands, loaded the way the flask command loads them."""
    from flask.cli import ScriptInfo

    return ScriptInfo(app_import_path="kgserve").load_app().cli


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.MULTILINE)}


def bench_options(script: Path) -> set[str]:
    """The options a bench script's argparse parser declares (read from its source)."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            found |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return found | {"-h", "--help"}


def all_shown() -> list[tuple[str, int, str]]:
    return [(page_id(page), n, text) for page in PAGES for n, text in shown_commands(page)]


def test_every_kgmigrate_command_line_exists():
    root = kgmigrate_command()
    seen, problems = 0, []
    for page, line, text in all_shown():
        for args in invocations(text, "kgmigrate"):
            seen += 1
            problems += [f"{page}:{line}: {p}   [{text}]"
                         for p in check_invocation(root, args, "kgmigrate")]
    assert seen > 80, f"only {seen} kgmigrate command lines found: is the extraction broken?"
    assert not problems, "\n".join(problems)


def test_every_flask_command_line_exists():
    root = flask_command()
    seen, problems = 0, []
    for page, line, text in all_shown():
        for args in invocations(text, "flask"):
            if args[:2] != ["--app", "kgserve"]:
                problems.append(f"{page}:{line}: not `flask --app kgserve`   [{text}]")
                continue
            seen += 1
            problems += [f"{page}:{line}: {p}   [{text}]"
                         for p in check_invocation(root, args[2:], "flask --app kgserve")]
    assert seen > 5, f"only {seen} flask command lines found"
    assert not problems, "\n".join(problems)


def test_every_make_target_and_bench_option_exists():
    targets, problems = make_targets(), []
    for page, line, text in all_shown():
        for args in invocations(text, "make"):
            if args and not args[0].startswith("-") and args[0] not in targets:
                problems.append(f"{page}:{line}: no make target {args[0]!r}")
        for script in re.findall(r"\bbench/\w+\.py\b", text):
            path = REPO / script
            if not path.is_file():
                problems.append(f"{page}:{line}: no {script}")
                continue
            tail = text.split(script, 1)[1]
            used = {w.split("=")[0] for w in tail.split() if w.startswith("-")}
            if "#" not in tail and used - bench_options(path):
                problems.append(f"{page}:{line}: {script} has no {sorted(used - bench_options(path))}")
    assert {"run", "test", "test-fast", "lint"} <= targets
    assert not problems, "\n".join(problems)


def anchors(page: Path) -> set[str]:
    """The fragment ids a renderer gives the page's headings (GitHub's rule)."""
    _, prose = split_blocks(page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", prose, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        unique, n = slug, 0
        while unique in found:
            n += 1
            unique = f"{slug}-{n}"
        found.add(unique)
    return found


def test_every_relative_link_resolves():
    problems, seen = [], 0
    for page in PAGES:
        _, prose = split_blocks(page.read_text(encoding="utf-8"))
        prose = INLINE.sub(lambda m: " " * len(m.group(0)), prose)
        for m in LINK.finditer(prose):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            seen += 1
            where = f"{page_id(page)}:{prose.count(chr(10), 0, m.start()) + 1}"
            path_part, _, fragment = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                problems.append(f"{where}: {target} does not exist")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                problems.append(f"{where}: {target}: no heading #{fragment} in {dest.name}")
    assert seen > 50, f"only {seen} relative links found"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_each_page_has_contents_and_the_readme_stays_short(page):
    text = page.read_text(encoding="utf-8")
    if page.parent == REPO / "docs" or page == REPO / "README.md":
        assert "\n## Contents\n" in text, f"{page_id(page)} has no table of contents"
    if page == REPO / "README.md":
        assert len(text.splitlines()) <= 250
        assert "docs/browser-page.png" in text
