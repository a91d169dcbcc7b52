"""Restore a snapshot: verify the file, then replace the database's content in one transaction."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import SnapshotError
from ..postgres.clientenv import scrub, tool_target
from ..postgres.programs import find_client
from .manifest import (
    Manifest,
    plain_hazard,
    plain_looks_complete,
    read_manifest,
    sniff_format,
    verify,
)

# Runs first, inside the restore's transaction: empties the database of everything a dump can
# hold (so objects made after the snapshot go too), then recreates `public` as CREATE DATABASE
# leaves it, because pg_dump never dumps a default public schema.
_DROP_EVERYTHING = r"""DO $kgmigrate$
DECLARE r record;
BEGIN
  FOR r IN SELECT evtname FROM pg_catalog.pg_event_trigger LOOP
    EXECUTE format('DROP EVENT TRIGGER %I', r.evtname);
  END LOOP;
  FOR r IN SELECT pubname FROM pg_catalog.pg_publication LOOP
    EXECUTE format('DROP PUBLICATION %I', r.pubname);
  END LOOP;
  PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata;
  FOR r IN SELECT extname FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' LOOP
    EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
  END LOOP;
  FOR r IN SELECT nspname FROM pg_catalog.pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
              AND nspname !~ '^pg_(temp|toast_temp)_[0-9]+$' LOOP
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
  END LOOP;
  IF current_setting('server_version_num')::int >= 150000 THEN
    CREATE SCHEMA public AUTHORIZATION pg_database_owner;
    GRANT USAGE ON SCHEMA public TO PUBLIC;
  ELSE
    EXECUTE format('CREATE SCHEMA public AUTHORIZATION %I',
                   (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = 10));
    GRANT ALL ON SCHEMA public TO PUBLIC;
  END IF;
  COMMENT ON SCHEMA public IS 'standard public schema';
END
$kgmigrate$"""

PREAMBLE = ["SET client_min_messages = warning", "SET lock_timeout = '60s'", _DROP_EVERYTHING]


@dataclass
class Checked:
    """A snapshot file that passed verification, ready to restore."""

    path: Path
    format: str
    manifest: Manifest | None
    warnings: list[str] = field(default_factory=list)

    @property
    def dump_major(self) -> int | None:
        if self.manifest is None:
            return None
        try:
            return int(self.manifest.pg_dump_version.split(".")[0])
        except ValueError:
            return None


def check_file(path: Path) -> Checked:
    """Verify a snapshot against its manifest (or sanity-check one without) before any restore."""
    if not path.is_file():
        raise SnapshotError(f"no such snapshot file: {path}")
    try:
        fmt = sniff_format(path)
        manifest = read_manifest(path)
        if manifest is not None:
            verify(path, manifest)
            if manifest.format != fmt:
                raise SnapshotError(f"{path} is a {fmt} dump but its manifest says "
                                    f"{manifest.format}; refusing to restore")
            return Checked(path, fmt, manifest)
        note = (f"{path.name} has no manifest: its integrity cannot be checked; restoring it "
                f"unverified")
        checked = Checked(path, fmt, None, [note])
        if fmt == "plain" and not plain_looks_complete(path):
            raise SnapshotError(f"{path} does not end with pg_dump's 'dump complete' line: it "
                                f"looks truncated or is not a pg_dump file; refusing to restore")
        hazard = plain_hazard(path) if fmt == "plain" else None
        if hazard:
            raise SnapshotError(f"{path} cannot be restored in one transaction: {hazard}; "
                                f"kgmigrate restores pg_dump output of one database only")
        if fmt == "custom":
            pg_restore, _ = find_client("pg_restore", 0)
            _run_checked([str(pg_restore), "--list", str(path)], "pg_restore --list")
        return checked
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror}") from None


def _run_checked(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        raise SnapshotError(f"{what} cannot read the file (exit {proc.returncode}): "
                            f"{proc.stderr.strip() or 'no message'}; refusing to restore")


def restore_commands(checked: Checked, conninfo: str,
                     server_major: int) -> tuple[list[list[str]], dict[str, str]]:
    """Return the argv lists (no password in them) of the restore pipeline and its environment."""
    target, env = tool_target(conninfo, "kgmigrate restore")
    need = max(server_major, checked.dump_major or 0)
    psql, _ = find_client("psql", need)
    base = [str(psql), "-X", "--no-password", "--quiet", "-v", "ON_ERROR_STOP=1", *target]
    pre = [arg for stmt in PREAMBLE for arg in ("-c", stmt)]
    if checked.format == "plain":
        return [[*base, "--single-transaction", *pre, "-f", str(checked.path)]], env
    pg_restore, _ = find_client("pg_restore", need)
    # pg_restore writes the archive as SQL wrapped in BEGIN ... COMMIT; psql opens the
    # transaction first (the inner BEGIN only warns), so the COMMIT comes only if pg_restore
    # reaches the archive's end: a failure on either side rolls everything back.
    return [[str(pg_restore), "--single-transaction", "--file=-", str(checked.path)],
            [*base, "-c", "BEGIN", *pre, "-f", "-"]], env


def _tail(errfile: BinaryIO, conninfo: str) -> str:
    errfile.seek(0)
    text = errfile.read().decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines()
             if ln.strip() and "there is already a transaction in progress" not in ln]
    return scrub(" / ".join(lines[-4:]), conninfo) or "no message"


def run_restore(checked: Checked, conninfo: str, server_major: int) -> None:
    """Replace the database's content by the snapshot in one transaction, or change nothing."""
    commands, env = restore_commands(checked, conninfo, server_major)
    with tempfile.TemporaryFile() as err_psql, tempfile.TemporaryFile() as err_restore:
        if len(commands) == 1:
            proc = subprocess.run(commands[0], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err_psql, env=env,
                                  check=False)  # the exit code is checked below
            rc_psql, rc_restore = proc.returncode, 0
        else:
            producer = subprocess.Popen(commands[0], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=err_restore, env=env)
            try:
                consumer = subprocess.Popen(commands[1], stdin=producer.stdout,
                                            stdout=subprocess.DEVNULL, stderr=err_psql, env=env)
            except BaseException:
                producer.kill()
                producer.wait()
                raise
            finally:
                producer.stdout.close()  # psql holds the only read end now
            rc_psql = consumer.wait()
            rc_restore = producer.wait()
        if rc_psql != 0:
            raise SnapshotError(f"restore failed and was rolled back, the database is as it "
                                f"was: psql exit {rc_psql}: {_tail(err_psql, conninfo)}")
        if rc_restore != 0:
            raise SnapshotError(f"pg_restore failed (exit {rc_restore}) and nothing was "
                                f"committed, the database is as it was: "
                                f"{_tail(err_restore, conninfo)}")
