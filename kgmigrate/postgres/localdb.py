"""The project-local PostgreSQL cluster (initdb/pg_ctl) used when no database URL is set."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..errors import ConnectError, ToolError
from .programs import find_server_bindir

DEFAULT_DIR = ".kgdata"
DEFAULT_DBNAME = "kg"
SUPERUSER = "postgres"
_SOCKET_MAX = 100  # sun_path is 108 bytes; leave room for the terminator


def _server_os_user() -> str | None:
    """Return the OS user to run the server as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ToolError("running as root, and PostgreSQL refuses root: create a 'postgres' user "
                        "(useradd postgres) or run as an ordinary user") from None
    return "postgres"


@dataclass
class LocalCluster:
    """A PostgreSQL cluster in a folder of its own, listening only on a unix socket there."""

    root: Path
    dbname: str = DEFAULT_DBNAME
    port: int = 5432
    fast: bool = False  # fsync off: for throwaway test clusters only

    def __post_init__(self) -> None:
        self.root = Path(self.root).absolute()
        self.data = self.root / "data"
        self.sockdir = self.root / "run"
        self.logfile = self.root / "postgres.log"
        self.os_user = _server_os_user()
        self._bindir: Path | None = None

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_server_bindir()
        return self._bindir

    def _cmd(self, program: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / program), *args]
        return ["runuser", "-u", self.os_user, "--", *cmd] if self.os_user else cmd

    def _run(self, program: str, *args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(self._cmd(program, *args), cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise ToolError(f"{program} failed (exit {proc.returncode}): "
                            + (" / ".join(msg[-3:]) if msg else "no output"))
        return proc

    def _chown(self, path: Path) -> None:
        if self.os_user:
            shutil.chown(path, self.os_user, self.os_user)

    # -- state ------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    def running(self) -> bool:
        """Tell whether the server of this cluster is up."""
        if not self.initialized:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def url(self, dbname: str | None = None) -> str:
        """Return the libpq URL of the cluster's database (unix socket in the cluster folder)."""
        return (f"postgresql://{SUPERUSER}@/{quote(dbname or self.dbname)}"
                f"?host={quote(str(self.sockdir), safe='/')}&port={self.port}")

    # -- actions ----------------------------------------------------------------------------
    def init(self) -> None:
        """Create the cluster folder and run initdb (trust auth, socket only)."""
        self._bindir = self._bindir or find_server_bindir()  # missing PostgreSQL: say so first
        sock = self.sockdir / f".s.PGSQL.{self.port}"
        if len(str(sock).encode()) > _SOCKET_MAX:
            raise ToolError(f"path too long for a unix socket: {sock}; use a shorter folder "
                            f"(KG_LOCALDB_DIR)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        self._chown(self.root)
        self._chown(self.sockdir)
        if self.os_user:
            probe = subprocess.run(["runuser", "-u", self.os_user, "--", "test", "-w",
                                    str(self.root)], capture_output=True, check=False)
            if probe.returncode != 0:
                raise ToolError(f"the '{self.os_user}' user cannot reach {self.root} (a parent "
                                f"folder is private); set KG_LOCALDB_DIR to a folder it can reach")
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", *(["--no-sync"] if self.fast else []), timeout=300)
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.sockdir}'",
            "port": str(self.port),
            "max_connections": "200",
        }
        if self.fast:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        conf = "\n".join(f"{k} = {v}" for k, v in settings.items())
        with open(self.data / "postgresql.auto.conf", "a", encoding="utf-8") as fh:
            fh.write(f"\n# written by kgmigrate localdb\n{conf}\n")

    def start(self) -> bool:
        """Initialise if needed, start the server and create the database; True if it was started."""
        if not self.initialized:
            self.init()
        started = False
        if not self.running():
            proc = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                             "-l", str(self.logfile), check=False)
            if proc.returncode != 0 and not self.running():
                tail = self._log_tail()
                raise ToolError(f"the local PostgreSQL did not start: {proc.stderr.strip()}"
                                + (f"\n{tail}" if tail else ""))
            started = proc.returncode == 0
        self.create_database(self.dbname)
        return started

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server; True if it was running."""
        if not self.running():
            return False
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))
        return True

    def create_database(self, dbname: str) -> None:
        """Create `dbname` unless it exists."""
        import psycopg
        from psycopg import errors, sql

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(self.url("postgres"), autocommit=True)
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ConnectError(f"cannot connect to the local PostgreSQL: {exc}") from None
                time.sleep(0.2)
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (dbname,)).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                except errors.DuplicateDatabase:
                    pass

    def _log_tail(self, n: int = 5) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def project_cluster() -> LocalCluster:
    """Return the project's cluster: KG_LOCALDB_DIR or ./.kgdata."""
    return LocalCluster(Path(os.environ.get("KG_LOCALDB_DIR", DEFAULT_DIR)),
                        dbname=os.environ.get("KG_LOCALDB_NAME", DEFAULT_DBNAME))
