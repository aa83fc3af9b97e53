"""Subprocess handling: fresh databases and real ``kasal serve`` processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Databases:
    """Creates ``<prefix>[_n]`` databases on one server and drops them all at the end."""

    def __init__(self, server_url: str, *, prefix: str) -> None:
        self.server_url = server_url
        self.prefix = prefix
        self.created: list[str] = []

    def create(self) -> str:
        name = self.prefix if not self.created else f"{self.prefix}_{len(self.created) + 1}"
        with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        params = conninfo_to_dict(self.server_url)
        params["dbname"] = name
        return make_conninfo(**params)

    def drop_all(self) -> None:
        if not self.created:
            return
        with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


class ServerProcess:
    """One ``python -m interface.cli serve`` (one uvicorn worker), or another ``kasal`` command.

    ``database_url=None`` means the embedded PostgreSQL under ``home``; ``command="worker"``
    starts a crew worker (no HTTP: ``start`` returns once it runs, not once it answers).
    ``module`` runs another module's HTTP server instead (``python -m module *args``, on
    ``KASAL_HOST:KASAL_PORT``), which is ready once ``ready_path`` answers 200.
    """

    def __init__(self, database_url: str | None, *, name: str, home: Path | None = None,
                 env: dict[str, str] | None = None, command: str = "serve",
                 module: tuple[str, ...] = (), ready_path: str = "/health") -> None:
        self.command = command
        self.module = module
        self.ready_path = ready_path
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self._tmp: str | None = None
        if home is None:
            self._tmp = tempfile.mkdtemp(prefix=f"kasal-bench-{name}-")
            home = Path(self._tmp) / "home"
        self.home = home
        base = {k: v for k, v in os.environ.items() if k != "KASAL_DATABASE_URL"}
        self.env = {
            **base,
            "KASAL_PORT": str(self.port),
            "KASAL_HOST": HOST,
            "KASAL_HOME": str(self.home),
            "KASAL_SECRET_KEY": "bench-secret-key",
            "KASAL_LOG_LEVEL": "WARNING",
            **({"KASAL_DATABASE_URL": database_url} if database_url else {}),
            **(env or {}),
        }
        self.database_url = database_url
        self.log = self.home.parent / f"server-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> float:
        """Start and wait for ``/health`` = 200; returns the seconds that took."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            began = time.perf_counter()
            argv = [sys.executable, "-m", *(self.module or ("interface.cli", self.command))]
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        if self.command != "serve" and not self.module:
            return time.perf_counter() - began
        deadline = began + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.perf_counter() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.tail()}")
                try:
                    if client.get(f"{self.base_url}{self.ready_path}").status_code == 200:
                        return time.perf_counter() - began
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def _tree(self) -> list[psutil.Process]:
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Resident memory of the server process and its children, in bytes."""
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def rss_each(self) -> list[int]:
        """Resident memory of each process of the server's tree, in bytes."""
        sizes = []
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                sizes.append(proc.memory_info().rss)
        return sizes

    def pss(self) -> int:
        """Proportional memory of the server and its children, in bytes.

        Forked crew children share the forkserver's pages (copy-on-write);
        summing their RSS counts those pages once per child, PSS once in all.
        """
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                total += proc.memory_full_info().pss
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server process and its children."""
        total = 0.0
        for proc in self._tree():
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def db_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend serving this server's database (pid → s)."""
        if not self.database_url:
            return {}
        needle = f" {conninfo_to_dict(self.database_url).get('dbname')} "
        found: dict[int, float] = {}
        for proc in psutil.process_iter(["cmdline"]):
            try:
                line = " ".join(proc.info["cmdline"] or [])
                if line.startswith("postgres:") and needle in line:
                    t = proc.cpu_times()
                    found[proc.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def stop(self) -> int | None:
        """Stop the server with SIGINT (SIGKILL after 30 s), then any child that outlived it."""
        children = self._tree()[1:]
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        _, alive = psutil.wait_procs(children, timeout=5)
        for proc in alive:  # e.g. a granian worker whose parent exited first
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        code = self.process.returncode if self.process else None
        self.process = None
        return code

    def cleanup(self) -> None:
        """Remove the temporary home (only one this object created)."""
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
