r"""Read a plain pg_dump file as `psql -f` would, without running it, for what could break out of
the restore's one transaction: a top-level COMMIT, ROLLBACK or PREPARE TRANSACTION, or a psql
meta-command other than pg_dump's own `\restrict` / `\unrestrict`; and for `COPY` to or from a
program or a server file, which pg_dump never writes.

PostgreSQL's scanner (pglast) finds the statements: dollar quotes with tags, standard and E''
strings, quoted identifiers, nested comments, parentheses. psql's own rules sit on top: the data
after `COPY ... FROM stdin;` runs to a `\.` line and is never SQL; semicolons inside a
`BEGIN ATOMIC ... END` routine body do not end it; a backslash outside all of those starts a
meta-command that runs to the end of its line. The file is read in chunks, decoded as latin-1 so
that one character is one byte and every server encoding lexes alike (all of SQL's punctuation is
ASCII; any other byte is an identifier character to the scanner, as in UTF-8).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import BinaryIO

from ..files.psqlmeta import is_dump_guard

CHUNK = 4 << 20
_ENDS_TXN = frozenset({"TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"})
# Statements starting with another word cannot end a transaction or carry inline data.
_LOOK_CLOSER = ("COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE", "COPY", "CREATE")
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_SPACE = " \t\n\r\f\v"  # the scanner's whitespace
_COPY_END = (b"\\.\n", b"\\.\r\n")  # psql ends inline COPY data at such a line (or end of file)


class Found(Exception):
    """Something in the dump could end the restore's transaction; `offset` is in the window."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset, self.reason = offset, reason


def _parser():
    from pglast import parser

    return parser


@dataclass
class _Atomic:
    """psql's rule for `CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END`."""

    words: str = ""  # first letters of the statement's first four create/or/replace/function words
    count: int = 0
    depth: int = 0
    parens: int = 0

    def feed(self, text: str, tokens: list) -> None:
        for tok in tokens:
            word = text[tok.start:tok.end + 1]
            if tok.name == "ASCII_40":
                self.parens += 1
            elif tok.name == "ASCII_41":
                self.parens = max(self.parens - 1, 0)
            if not (tok.kind != "NO_KEYWORD" or (tok.name == "IDENT" and word[:1] != '"')):
                continue
            low = word.lower()
            if self.count < 4:
                known = low in ("create", "function", "procedure", "or", "replace")
                self.words += low[0] if known else "-"
            self.count += 1
            w = self.words
            if w[:1] == "c" and w[1:2] in ("f", "p") or (w[:3] == "cor" and w[3:4] in ("f", "p")):
                if self.parens:
                    continue
                if low == "begin" or (low == "case" and self.depth):
                    self.depth += 1
                elif low == "end" and self.depth:
                    self.depth -= 1


def _meta(text: str, at: int) -> int:
    """Judge the meta-command whose backslash is at `at`; return where its line ends."""
    end = text.find("\n", at)
    end = len(text) if end < 0 else end
    line = text[at:end].rstrip("\r")
    if is_dump_guard(line):
        return end
    shown = line[:60].encode("latin-1").decode("utf-8", "replace")
    raise Found(at, f"it contains the psql command {shown!r}")


def _significant(text: str, start: int, stop: int, inside: bool = False) -> list:
    """Return the tokens of text[start:stop] psql sends to the server, meta-commands judged."""
    out, skip_to = [], -1
    for tok in _parser().scan(text[start:stop]):
        at = start + tok.start
        if at < skip_to or tok.name in _COMMENTS:
            continue
        if tok.name == "ASCII_92":
            if out or inside:
                raise Found(at, "it has a psql meta-command inside a statement: "
                                f"{text[at:at + 40].splitlines()[0]!r}")
            skip_to = _meta(text, at)
            continue
        out.append(tok)
    return out


def _gap(text: str, start: int, stop: int) -> None:
    """Judge what lies between two statements: semicolons, comments, meta-command lines."""
    if text.find("\\", start, stop) >= 0:
        _significant(text, start, stop)


def _harmless(text: str, start: int, stop: int) -> bool:
    """Tell cheaply whether a statement is harmless: no backslash, and a first word that is none
    of the few that need the scanner and the parser (an INSERT of an `--inserts` dump, say)."""
    first = text[start]
    if first in "-/" or text.find("\\", start, stop) >= 0:
        return False  # a comment or a meta-command comes first: look at the tokens
    return not text[start:start + 8].upper().startswith(_LOOK_CLOSER)


def _statement(text: str, tokens: list, start: int, stop: int) -> dict | None:
    """Parse one statement (from its first significant token) with PostgreSQL's grammar."""
    sql = text[start + tokens[0].start:stop]
    try:
        stmts = json.loads(_parser().parse_sql_json(sql)).get("stmts", [])
    except _parser().ParseError:
        return None
    return stmts[0]["stmt"] if len(stmts) == 1 else None


def _judge(text: str, start: int, stop: int, atomic: _Atomic) -> bool:
    """Judge one statement; return True for `COPY ... FROM stdin` (inline data follows)."""
    if _harmless(text, start, stop):
        return False
    tokens = _significant(text, start, stop)
    if not tokens:
        return False
    at = start + tokens[0].start
    word = text[at:start + tokens[0].end + 1].upper()
    atomic.feed(text[start:stop], tokens)
    if word not in ("COPY", "COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE"):
        return False
    node = _statement(text, tokens, start, stop)
    shown = " ".join(text[at:stop].split())[:60]
    if word == "COPY":
        if node is None or "CopyStmt" not in node:
            raise Found(at, f"kgmigrate cannot read the statement {shown!r}")
        copy = node["CopyStmt"]
        if copy.get("is_program") or copy.get("filename"):
            raise Found(at, f"it runs a program or opens a file on the server ({shown}), which "
                            f"pg_dump never writes")
        return bool(copy.get("is_from"))
    kind = node.get("TransactionStmt", {}).get("kind") if node else "unknown"
    if kind in _ENDS_TXN or node is None:
        raise Found(at, f"it ends a transaction itself ({shown};)")
    return False


@dataclass
class _Step:
    consumed: int  # characters of the window read to the end
    copy: bool = False  # COPY data starts at `consumed`


def _terminator(text: str, stop: int) -> int | None:
    """Return the offset of the `;` ending the statement that ends at `stop`, if it has one."""
    semi = text.find(";", stop)
    return semi if semi >= 0 and not text[stop:semi].strip(_SPACE) else None


def walk(text: str, final: bool) -> _Step:
    """Judge the complete statements of a window of SQL text; say how far it was read."""
    parser = _parser()
    limit, error = len(text), None
    try:
        pieces = parser.split(text, with_parser=False, only_slices=True)
    except parser.ParseError as exc:
        # A statement runs past the window, or COPY data (not SQL) follows a COPY: the text
        # before the token the scanner stopped at tells which.
        limit, error = max(exc.args[1], 0), exc.args[0]
        pieces = parser.split(text[:limit], with_parser=False, only_slices=True)
    read_on = error is not None and not final and error.startswith("unterminated")
    cursor, i = 0, 0
    while i < len(pieces):
        start = cursor
        _gap(text, cursor, pieces[i].start)
        atomic = _Atomic()
        copy = _judge(text, pieces[i].start, pieces[i].stop, atomic)
        semi = _terminator(text, pieces[i].stop)
        while semi is not None and atomic.depth and i + 1 < len(pieces):
            i += 1  # BEGIN ATOMIC: the body's semicolons belong to the statement
            _gap(text, semi + 1, pieces[i].start)
            atomic.feed(text[pieces[i].start:pieces[i].stop],
                        _significant(text, pieces[i].start, pieces[i].stop, inside=True))
            semi = _terminator(text, pieces[i].stop)
        if semi is None or atomic.depth:
            if error is None and final:
                return _Step(limit)  # psql sends an unterminated last statement at end of file
            break
        if copy:
            eol = text.find("\n", semi)
            if eol < 0:
                return _Step(start)
            if text[semi + 1:eol].strip(_SPACE):
                raise Found(semi, "text follows `COPY ... FROM stdin;` on its line")
            return _Step(eol + 1, copy=True)
        cursor, i = semi + 1, i + 1
    else:
        start = cursor
        if error is None and final:
            _gap(text, cursor, limit)
            return _Step(limit)
    if error is not None:
        _meta_on_error_line(text, start, limit)
        if not read_on:
            raise Found(limit, f"kgmigrate cannot read it as SQL: {error}")
    return _Step(start)  # the rest is read again with more of the file


class Blank(Exception):
    """A meta-command line was judged harmless; its text is not SQL and must not be lexed."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start, self.end = start, end


def _meta_on_error_line(text: str, start: int, limit: int) -> None:
    """Judge a meta-command on the line where the scanner stopped: its arguments are not SQL.

    pg_dump's `\\restrict` key may start with a digit, which SQL's scanner rejects.
    """
    line_start = text.rfind("\n", 0, limit) + 1
    if "\\" not in text[max(start, line_start):limit]:
        return
    for tok in _parser().scan(text[start:limit]):
        if tok.name == "ASCII_92" and start + tok.start >= line_start:
            raise Blank(start + tok.start, _meta(text, start + tok.start))


def _copy_end(buf: bytes, eof: bool) -> int | None:
    """Return where the SQL after inline COPY data starts in `buf`, None when not in it yet."""
    for marker in _COPY_END:
        if buf.startswith(marker):
            return len(marker)
    ends = [i for i in (buf.find(b"\n" + m) for m in _COPY_END) if i >= 0]
    if ends:
        i = min(ends)
        return i + 1 + (3 if buf.startswith(_COPY_END[0], i + 1) else 4)
    return len(buf) if eof else None


def find_hazard(fh: BinaryIO, chunk: int = CHUNK) -> str | None:
    """Return why the plain dump read from `fh` could escape one transaction (with its line)."""
    buf, line, eof, in_copy, want = b"", 1, False, False, chunk
    while True:
        while not eof and len(buf) < want:
            data = fh.read(max(chunk, want - len(buf)))
            eof = not data
            buf += data
        if in_copy:  # `buf` starts at the start of a line of COPY data
            end = _copy_end(buf, eof)
            if end is None:
                keep = buf.rfind(b"\n")  # the rest of the data from the last line end on
                if keep <= 0:
                    want = len(buf) + chunk
                    continue
                line += buf.count(b"\n", 0, keep)
                buf, want = buf[keep:], chunk
                continue
            line += buf.count(b"\n", 0, end)
            buf, in_copy, want = buf[end:], False, chunk
            continue
        cut = len(buf) if eof else buf.rfind(b"\n") + 1
        text = buf[:cut].decode("latin-1")
        try:
            step = walk(text, final=eof)
        except Blank as blank:
            buf = buf[:blank.start] + b" " * (blank.end - blank.start) + buf[blank.end:]
            continue
        except Found as found:
            where = line + text.count("\n", 0, found.offset)
            return f"line {where}: {found.reason}"
        line += text.count("\n", 0, step.consumed)
        buf = buf[step.consumed:]
        if step.copy:
            in_copy = True
        elif eof:
            return None
        elif step.consumed == 0 or cut == 0:
            want = 2 * len(buf) + chunk  # one statement longer than the window: read on
        else:
            want = chunk
