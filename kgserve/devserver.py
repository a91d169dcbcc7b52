"""`make run`: serve with gunicorn on 127.0.0.1:8000 and print ready-to-paste examples.

The database and the active config are set up before this runs (see the Makefile's run target:
`kgmigrate localdb start`, `kgmigrate up -y`, `flask --app kgserve embedding set ...`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kgserve.gunicorn_hooks import PROBE_AGENT

REPO = Path(__file__).resolve().parent.parent
READY_WAIT = 600  # seconds to wait for the first model load before giving up
STILL_RUNNING = ("The project-local PostgreSQL (.kgdata) is still running; stop it with "
                 "`.venv/bin/kgmigrate localdb stop` (`make clean` also deletes its data).")


def _ready(base: str) -> dict | None:
    req = urllib.request.Request(f"{base}/readyz", headers={"User-Agent": PROBE_AGENT})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read()) if resp.status == 200 else None
    except (OSError, ValueError):
        return None


def _browser_line(base: str) -> str:
    """Where the browser page is, or why this config has none (GET /embedding/config)."""
    try:
        with urllib.request.urlopen(f"{base}/embedding/config", timeout=5) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return ""
    if body.get("supports_browser"):
        return (f"  open {base}/browser/  (the same vectors computed in your browser with "
                "transformers.js; offline after the first load)\n\n")
    return f"  /browser/: not for this config ({body.get('browser_unavailable')})\n\n"


def _status(base: str, token: str) -> dict:
    """This worker's model_status from the admin API ({} when it cannot be read)."""
    req = urllib.request.Request(f"{base}/admin/embedding/config",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read()).get("model_status") or {}
    except (OSError, ValueError):
        return {}


def describe_backend(status: dict) -> str:
    """'backend openvino int8, min cosine 0.9885 to torch float32' (or what is known)."""
    if not status.get("backend"):
        return "backend unknown"
    text = f"backend {status['backend']} {status.get('precision') or ''}".rstrip()
    accuracy = status.get("accuracy")
    if accuracy:
        text += f", min cosine {accuracy['min_cosine']:.4f} to {accuracy['reference']}"
    return text


def banner(base: str, model: str, token: str, generated: bool, backend: str = "",
           browser: str = "") -> str:
    """Return the examples printed once the server is ready."""
    where = "generated for this run" if generated else "from KG_ADMIN_TOKEN"
    python = os.path.relpath(sys.executable) if sys.executable.startswith(str(REPO)) else "python"
    return f"""
kgserve is ready on {base}  (model: {model}; {backend})

  curl -s {base}/v1/embeddings -H 'Content-Type: application/json' \\
       -d '{{"input": ["hello world"], "model": "{model}"}}'

  {python} -c 'from openai import OpenAI; c = OpenAI(base_url="{base}/v1", api_key="unused"); \\
print(len(c.embeddings.create(model="{model}", input="hello").data[0].embedding))'

  curl -s {base}/admin/embedding/config -H "Authorization: Bearer {token}"

{browser}  KG_ADMIN_TOKEN={token}   ({where})

Stop with Ctrl-C.
"""


def main() -> int:
    """Start gunicorn, wait until it is ready, print the examples, then wait for it."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    token, generated = env.get("KG_ADMIN_TOKEN"), False
    if not token:
        token, generated = secrets.token_urlsafe(24), True
        env["KG_ADMIN_TOKEN"] = token
    bind = env.setdefault("KG_BIND", "127.0.0.1:8000")
    base = f"http://{bind}"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen([str(gunicorn), "-c", str(REPO / "gunicorn.conf.py"), "kgserve:app"],
                            cwd=REPO, env=env)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        deadline = time.monotonic() + READY_WAIT
        while proc.poll() is None and time.monotonic() < deadline:
            body = _ready(base)
            # /readyz and the admin status may reach different workers (each reports itself):
            # describe the backend only once the worker answering the status is ready too.
            status = _status(base, token) if body else {}
            if body and status.get("state") == "ready":
                print(banner(base, body["model"], token, generated, describe_backend(status),
                             _browser_line(base)),
                      file=sys.stderr, flush=True)
                break
            time.sleep(0.5)
        else:
            if proc.poll() is None:
                print(f"kgserve did not become ready within {READY_WAIT} s; see the log above",
                      file=sys.stderr)
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()
    finally:
        words = closing_words(env)
        if words:
            print(words, file=sys.stderr, flush=True)


def closing_words(env: dict[str, str]) -> str | None:
    """What to say on the way out: that the project-local PostgreSQL (which make run started,
    and which serves when neither KG_DATABASE_URL nor libpq's PG* variables name another) keeps
    running."""
    if env.get("KG_DATABASE_URL") or any(env.get(v) for v in ("PGHOST", "PGDATABASE",
                                                               "PGSERVICE")):
        return None
    return STILL_RUNNING


if __name__ == "__main__":
    sys.exit(main())
