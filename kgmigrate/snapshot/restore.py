"""Restore a snapshot: verify the file, then replace the database's content in one transaction."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import SnapshotError
from ..postgres.clientenv import client_target, scrub
from ..postgres.programs import find_client
from .dumpinfo import DumpInfo, read_info
from .manifest import (
    Manifest,
    manifest_path,
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
    info: DumpInfo | None = None  # what the dump records about itself
    # Why kgmigrate cannot vouch for the file (empty: it wrote it and the checksum matches).
    unverified: list[str] = field(default_factory=list)
    # Manifest fields the dump does not record: shown as the manifest's claims.
    claims: list[str] = field(default_factory=list)

    @property
    def dump_major(self) -> int | None:
        version = (self.info.pg_dump_version if self.info else None) or (
            self.manifest.pg_dump_version if self.manifest else None)
        try:
            return int(version.split(".")[0]) if version else None
        except ValueError:
            return None


# How far apart the manifest's time and the archive's own may be: the manifest's is taken just
# before pg_dump starts, the archive's when pg_dump starts.
_CLOCK_SLACK = dt.timedelta(minutes=10)


def cross_check(path: Path, m: Manifest, info: DumpInfo) -> list[str]:
    """Check what the manifest says against what the dump records; return the unchecked fields.

    A field both record and that differs means the manifest was edited: SnapshotError.
    """
    differs = []
    for name, claimed, recorded in (("database", m.database, info.database),
                                    ("pg_dump version", m.pg_dump_version, info.pg_dump_version),
                                    ("server version", m.server_version, info.server_version)):
        if recorded is not None and str(claimed) != recorded:
            differs.append(f"{name} {claimed!r} (the dump says {recorded!r})")
    if info.created is not None:
        try:
            off = abs(m.created - info.created) > _CLOCK_SLACK
        except (TypeError, ValueError):
            off = True
        if off:
            differs.append(f"taken at {m.created_at!r} (the dump says "
                           f"{info.created:%Y-%m-%d %H:%M:%S} UTC)")
    if differs:
        raise SnapshotError(f"the manifest of {path} does not match the dump: it says "
                            f"{'; '.join(differs)}: the manifest was edited; refusing to restore")
    claims = ["schema version"]  # no dump records kgmigrate's version
    if info.database is None:
        claims.append("database")
    if info.created is None:
        claims.append("taken at")
    return claims


def _not_ours(path: Path, backups_dir: Path, manifest: Manifest | None) -> list[str]:
    """Return why `path` is not a file kgmigrate wrote into its backups folder (empty if it is)."""
    reasons = []
    if manifest is None:
        reasons.append("it has no manifest")
    if path.is_symlink() or manifest_path(path).is_symlink():
        reasons.append("it is a symbolic link")
    if path.resolve().parent != backups_dir.resolve():
        reasons.append(f"it is outside the backups folder {backups_dir}")
    return reasons


def check_file(path: Path, backups_dir: Path, unverified: bool = False) -> Checked:
    """Verify a snapshot before any restore: checksum and header against its manifest, or, for a
    file kgmigrate did not write (allowed only with `unverified`), pg_dump's own header and
    footer and nothing that could escape the one transaction."""
    if not path.is_file():
        raise SnapshotError(f"no such snapshot file: {path}")
    try:
        fmt = sniff_format(path)
        manifest = read_manifest(path)
        reasons = _not_ours(path, backups_dir, manifest)
        if reasons and not unverified:
            raise SnapshotError(f"{path} was not written by kgmigrate ({'; '.join(reasons)}): "
                                f"nothing vouches for what it runs. Check where it comes from, "
                                f"then restore it with --unverified")
        if manifest is not None:
            verify(path, manifest)
            if manifest.format != fmt:
                raise SnapshotError(f"{path} is a {fmt} dump but its manifest says "
                                    f"{manifest.format}; refusing to restore")
        info = read_info(path, fmt)
        checked = Checked(path, fmt, manifest, info=info, unverified=reasons)
        if manifest is not None:
            checked.claims = cross_check(path, manifest, info)
        if fmt == "plain":
            if not plain_looks_complete(path):
                raise SnapshotError(f"{path} does not end with pg_dump's 'dump complete' line: "
                                    f"it looks truncated or is not a pg_dump file; refusing to "
                                    f"restore")
            if reasons and (hazard := plain_hazard(path)):
                raise SnapshotError(f"{path} cannot be restored in one transaction: {hazard}; "
                                    f"kgmigrate restores pg_dump output of one database only")
        if manifest is None:
            checked.warnings.append(f"{path.name} has no manifest: its integrity cannot be "
                                    f"checked; restoring it unverified")
        return checked
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror}") from None


def restore_commands(checked: Checked, target: list[str], server_major: int) -> list[list[str]]:
    """Return the argv lists of the restore pipeline for a `client_target` (no secret in them)."""
    need = max(server_major, checked.dump_major or 0)
    psql, _ = find_client("psql", need)
    base = [str(psql), "-X", "--no-password", "--quiet", "-v", "ON_ERROR_STOP=1", *target]
    pre = [arg for stmt in PREAMBLE for arg in ("-c", stmt)]
    if checked.format == "plain":
        return [[*base, "--single-transaction", *pre, "-f", str(checked.path)]]
    pg_restore, _ = find_client("pg_restore", need)
    # pg_restore writes the archive as SQL wrapped in BEGIN ... COMMIT; psql opens the
    # transaction first (the inner BEGIN only warns), so the COMMIT comes only if pg_restore
    # reaches the archive's end: a failure on either side rolls everything back.
    return [[str(pg_restore), "--single-transaction", "--file=-", str(checked.path)],
            [*base, "-c", "BEGIN", *pre, "-f", "-"]]


def _tail(errfile: BinaryIO, conninfo: str) -> str:
    errfile.seek(0)
    text = errfile.read().decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines()
             if ln.strip() and "there is already a transaction in progress" not in ln]
    return scrub(" / ".join(lines[-4:]), conninfo) or "no message"


def run_restore(checked: Checked, conninfo: str, server_major: int) -> None:
    """Replace the database's content by the snapshot in one transaction, or change nothing."""
    with (tempfile.TemporaryFile() as err_psql, tempfile.TemporaryFile() as err_restore,
          client_target(conninfo, "kgmigrate restore") as (target, env)):
        commands = restore_commands(checked, target, server_major)
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
