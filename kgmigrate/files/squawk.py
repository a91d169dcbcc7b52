"""squawk as the rule engine: run it once per transaction mode, parse its JSON, map findings to files.

kgmigrate adds no rules of its own. It tells squawk the truth about transactions (a transactional file
is linted with --assume-in-transaction, a `-- kgmigrate: no-transaction` file without), decides the
severity (destructive changes are errors, the rest warnings), and hides what its own handling makes
moot: the BEGIN/COMMIT it absorbs, and missing `lock_timeout` while its DDL lock timeout is on.
squawk's own configuration (.squawk.toml, found from the current directory) and its inline
`-- squawk-ignore` comments apply as they do when squawk runs alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LintUnavailable
from .directives import no_transaction
from .migrations import read_text
from .sqltext import is_absorbed_transaction_control

# Destructive changes fail `kgmigrate lint` and `up --lint=error` (Atlas does the same).
ERROR_RULES = frozenset({"ban-drop-table", "ban-drop-column", "ban-drop-schema",
                         "ban-drop-database"})
# Moot while kgmigrate bounds every statement's lock wait itself (--ddl-lock-timeout > 0).
LOCK_TIMEOUT_RULES = frozenset({"require-lock-timeout", "require-timeout-settings"})
# About transaction control; moot when the statement is one kgmigrate absorbs (sqltext.py).
TRANSACTION_RULES = frozenset({"transaction-nesting", "ban-uncommitted-transaction"})
# The usual spellings of what the runner absorbs, recognised without loading the SQL parser.
_PLAIN_CONTROL = {("BEGIN",), ("START", "TRANSACTION"), ("COMMIT",), ("END",)} | {
    (w, k) for w in ("BEGIN", "COMMIT", "END") for k in ("TRANSACTION", "WORK")}
SQUAWK_ENV = "KG_SQUAWK"


@dataclass(frozen=True)
class LintFile:
    """A file to lint: its path as the user named it, its text, how kgmigrate runs it."""

    path: Path
    text: str
    transactional: bool


@dataclass(frozen=True)
class Finding:
    """One squawk finding, 1-based line and column (characters), end exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    rule: str
    severity: str  # "error" | "warning"
    message: str
    help: str | None


@dataclass
class LintReport:
    """What a lint run found: the files linted, the findings shown, how many were hidden."""

    files: list[LintFile]
    findings: list[Finding] = field(default_factory=list)
    hidden: dict[str, int] = field(default_factory=dict)  # rule -> findings hidden as moot

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def as_json(self) -> dict:
        """Return the `--json` object."""
        return {"files": len(self.files), "errors": len(self.errors),
                "warnings": len(self.warnings), "hidden": sum(self.hidden.values()),
                "findings": [asdict(f) for f in self.findings]}


def read_files(paths: Iterable[Path]) -> list[LintFile]:
    """Read SQL files (UTF-8, clear error otherwise) and learn how kgmigrate would run each."""
    out = []
    for path in paths:
        text = read_text(path)
        out.append(LintFile(path, text, not no_transaction(text)))
    return out


def folder_files(directory: Path) -> list[Path]:
    """Return every .sql file in `directory`, up and down migrations alike, in name order."""
    from ..errors import ConfigError

    if not directory.is_dir():
        raise ConfigError(f"migrations directory not found: {directory}")
    return sorted((p for p in directory.iterdir() if p.suffix.lower() == ".sql" and p.is_file()),
                  key=lambda p: p.name)


def find_squawk() -> str:
    """Return the squawk binary: $KG_SQUAWK, else beside this Python (the venv), else on PATH."""
    named = os.environ.get(SQUAWK_ENV)
    if named:
        if os.path.isfile(named) and os.access(named, os.X_OK):
            return named
        raise LintUnavailable(f"squawk not found: {SQUAWK_ENV}={named} is not an executable file")
    beside = Path(sys.executable).with_name("squawk")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    import shutil

    found = shutil.which("squawk")
    if found:
        return found
    raise LintUnavailable("squawk not found: install it with `pip install squawk-cli` "
                          f"(make install does), or set {SQUAWK_ENV} to its path")


def _pattern(path: Path) -> str:
    """squawk reads its arguments as glob patterns: escape names holding *, ? or [."""
    s = str(path)
    if not any(c in s for c in "*?["):
        return s
    import glob  # rare: imported only for such names

    return glob.escape(s)


def _start(exe: str, files: list[LintFile], transactional: bool) -> subprocess.Popen:
    mode = "--assume-in-transaction" if transactional else "--no-assume-in-transaction"
    argv = [exe, "--reporter", "json", mode, "--no-error-on-unmatched-pattern", "--",
            *(_pattern(f.path) for f in files)]
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    except OSError as exc:
        raise LintUnavailable(f"squawk could not start ({exe}): {exc.strerror}") from None


def _finish(proc: subprocess.Popen) -> list[dict]:
    """Wait for squawk; return its findings, or raise naming why it failed."""
    out, err = proc.communicate()
    findings = None
    if proc.returncode in (0, 1):  # 1: it found something
        try:
            findings = json.loads(out)
        except ValueError:
            findings = None
    if isinstance(findings, list):
        return findings
    said = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    why = " ".join(said[:2]) if said and said[0].endswith(":") else (said[0] if said else "")
    code = proc.returncode
    status = f"signal {-code}" if code < 0 else f"exit {code}"
    raise LintUnavailable(f"squawk failed ({status})" + (f": {why}" if why else ""))


class SquawkRun:
    """squawk at work on some files: one process per transaction mode, side by side."""

    def __init__(self, files: list[LintFile]) -> None:
        self.files = files
        self._procs: list[tuple[list[LintFile], subprocess.Popen]] = []
        if not files:
            return
        exe = find_squawk()
        for mode in (True, False):
            group = [f for f in files if f.transactional == mode]
            if group:
                self._procs.append((group, _start(exe, group, mode)))

    def results(self) -> list[tuple[LintFile, dict]]:
        """Wait for squawk; return each raw finding with the file it is about."""
        out = []
        for group, proc in self._procs:
            by_name = {str(f.path): f for f in group}
            by_real: dict[str, LintFile] = {}
            for raw in _finish(proc):
                name = str(raw.get("file", ""))
                lf = by_name.get(name)
                if lf is None:  # squawk spells paths its own way (./a.sql is a.sql): compare files
                    by_real = by_real or {os.path.realpath(f.path): f for f in group}
                    lf = by_real.get(os.path.realpath(name))
                if lf is None:  # never drop a finding silently
                    raise LintUnavailable(f"squawk reported on {name!r}, a file it was not asked "
                                          f"about")
                out.append((lf, raw))
        self._procs = []
        return out

    def report(self, lock_timeout_on: bool = True) -> LintReport:
        """Wait for squawk and judge its findings: severity, hidden as moot, sorted by place."""
        report = LintReport(self.files)
        split: dict[Path, list[str]] = {}
        order = {str(f.path): i for i, f in enumerate(self.files)}
        for lf, raw in self.results():
            lines = split.get(lf.path)
            if lines is None:
                lines = split[lf.path] = lf.text.replace("\r\n", "\n").split("\n")
            if _hidden(raw, lines, lock_timeout_on):
                rule = raw.get("rule_name", "")
                report.hidden[rule] = report.hidden.get(rule, 0) + 1
            else:
                report.findings.append(_finding(lf, lines, raw))
        report.findings.sort(key=lambda f: (order.get(f.path, 0), f.line, f.column, f.rule))
        return report

    def stop(self) -> None:
        """End squawk processes not waited for (the run stopped before their report)."""
        for _, proc in self._procs:
            proc.kill()
            proc.communicate()
        self._procs = []


def _char_column(text_line: str, byte_col: int) -> int:
    """squawk counts columns in UTF-8 bytes from 0; return the 1-based character column."""
    if text_line.isascii():
        return byte_col + 1
    return len(text_line.encode("utf-8")[:byte_col].decode("utf-8", "ignore")) + 1


def _flagged_text(lines: list[str], raw: dict) -> str:
    first, last = int(raw.get("line", 0)), int(raw.get("line_end", raw.get("line", 0)))
    chunk = [s.encode("utf-8") for s in lines[first:last + 1]]
    if not chunk:
        return ""
    if len(chunk) == 1:
        return chunk[0][raw.get("column", 0):raw.get("column_end", len(chunk[0]))].decode(
            "utf-8", "ignore")
    chunk[0] = chunk[0][raw.get("column", 0):]
    chunk[-1] = chunk[-1][:raw.get("column_end", len(chunk[-1]))]
    return b"\n".join(chunk).decode("utf-8", "ignore")


def _absorbed(sql: str) -> bool:
    """Tell whether the flagged statement is transaction control kgmigrate absorbs."""
    words = tuple(sql.strip().rstrip(";").upper().split())
    if words in _PLAIN_CONTROL:
        return True
    return is_absorbed_transaction_control(sql)  # loads the SQL parser: rare spellings only


def _hidden(raw: dict, lines: list[str], lock_timeout_on: bool) -> bool:
    rule = raw.get("rule_name", "")
    if rule in LOCK_TIMEOUT_RULES:
        return lock_timeout_on
    if rule in TRANSACTION_RULES:
        return _absorbed(_flagged_text(lines, raw))
    return False


def _finding(lf: LintFile, lines: list[str], raw: dict) -> Finding:
    line, end_line = int(raw.get("line", 0)), int(raw.get("line_end", raw.get("line", 0)))

    def col(i: int, byte_col: int) -> int:
        return _char_column(lines[i], byte_col) if 0 <= i < len(lines) else byte_col + 1

    rule = str(raw.get("rule_name", "squawk"))
    return Finding(path=str(lf.path), line=line + 1, column=col(line, int(raw.get("column", 0))),
                   end_line=end_line + 1,
                   end_column=col(end_line, int(raw.get("column_end", raw.get("column", 0)))),
                   rule=rule, severity="error" if rule in ERROR_RULES else "warning",
                   message=str(raw.get("message", "")).strip(),
                   help=(str(raw["help"]).strip() or None) if raw.get("help") else None)


def lint_files(files: list[LintFile], lock_timeout_on: bool = True) -> LintReport:
    """Lint `files` with squawk; raise LintUnavailable when squawk is missing or fails."""
    return SquawkRun(files).report(lock_timeout_on)
