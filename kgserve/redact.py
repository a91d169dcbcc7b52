"""What kgserve shows of text it did not write, in messages to clients and in logs: nothing of a
secret (URLs lose their credentials, API keys become ***), and of a client's own value (a header,
a query or path parameter, a field) no more than ECHO_CHARS characters.

A URL keeps its scheme, host, port and path (what an operator needs to see which endpoint is
meant). Its userinfo (`user:password@`, a proxy's credentials) and the value of every query
parameter not known to be public (`?api-key=...`, `?sig=...`) become `***`; the fragment goes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are never secret (Azure OpenAI's API version).
_PUBLIC_PARAMS = frozenset({"api-version", "api_version", "version"})
# A URL inside free text: a scheme, then everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# Anything shaped like an OpenAI key (sk-..., sk-proj-...).
_KEYLIKE = re.compile(r"\bsk-[A-Za-z0-9_\-*.]*")
MAX_TEXT = 500  # characters of an upstream message shown
ECHO_CHARS = 40  # characters of a client's value shown back to it
_SECRET_VARIABLES = ("OPENAI_API_KEY", "KG_ADMIN_TOKEN", "KG_API_TOKEN")


def url(value: object) -> str:
    """Return `value` (a URL) without userinfo, secret query values or fragment."""
    text = str(value)
    try:
        parts = urlsplit(text)
        port = parts.port  # ValueError on a bad port
    except ValueError:
        return _scheme_only(text)
    if not parts.scheme or not parts.netloc:
        return text if "@" not in text and "?" not in text else _scheme_only(text)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{MASK}@" if "@" in parts.netloc else ""
    netloc += host + (f":{port}" if port is not None else "")
    query = "&".join(f"{quote(k, safe='-_.')}={v if k.lower() in _PUBLIC_PARAMS else MASK}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def text(value: object, secrets: Iterable[str] = (), limit: int | None = MAX_TEXT) -> str:
    """Return `value` with every URL scrubbed, each of `secrets` and anything shaped like an
    API key replaced, cut to `limit` characters."""
    out = str(value)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    out = _URL_IN_TEXT.sub(lambda m: url(m.group(0)), out)
    return _KEYLIKE.sub(f"sk-{MASK}", out)[:limit]


def echo(value: object) -> str:
    """A client's `value`, quoted, to show back in an error: at most ECHO_CHARS characters of
    it and its length (a header can hold kilobytes)."""
    raw = str(value)
    if len(raw) <= ECHO_CHARS:
        return repr(raw)
    return f"{raw[:ECHO_CHARS]!r}... ({len(raw)} characters)"


def _scheme_only(text: str) -> str:
    """A URL that cannot be parsed: only its scheme is safe to show."""
    scheme = text.split("://", 1)[0] if "://" in text else ""
    return f"{scheme}://{MASK}" if scheme.isascii() and scheme.isalnum() else MASK


class ScrubFilter(logging.Filter):
    """Scrub a record before any handler sees it: its message (the HTTP clients log every URL
    they call, with its userinfo) and its traceback; the secrets kgserve holds are masked too."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _held_secrets()
        message = record.getMessage()
        scrubbed = text(message, secrets, limit=None)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # A traceback's last line is the exception's message (a URL with its password, an
            # upstream error echoing the key): handlers print exc_text when it is set.
            record.exc_text = text(logging.Formatter().formatException(record.exc_info), secrets,
                                   limit=None)
        return True


def _held_secrets() -> tuple[str, ...]:
    """The secrets in kgserve's environment (OpenAI's key, the admin and API tokens)."""
    return tuple(v for v in (os.environ.get(n, "") for n in _SECRET_VARIABLES) if len(v) >= 4)
