"""A real ``kasal serve`` process on a free port, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTakenError(RuntimeError):
    """Between picking a free port and binding it, another process took it."""


class ServerProcess:
    """One service process; ``restart`` keeps the same database and port."""

    def __init__(self, database_url: str, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "KASAL_DATABASE_URL": database_url,
            "KASAL_HOME": str(home),
            "KASAL_SECRET_KEY": "e2e-secret-key",
            "KASAL_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"
        self._use_port(free_port())

    def _use_port(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.env["KASAL_PORT"] = str(port)

    def start(self, timeout: float = 60) -> None:
        """Start and wait for health; a port another process took meanwhile is swapped for a new one."""
        for _ in range(3):
            try:
                self._start(timeout)
                return
            except PortTakenError:
                self._use_port(free_port())
        self._start(timeout)

    def _start(self, timeout: float) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        log = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "interface.cli", "serve"], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text()[offset:]
                if "address already in use" in output:
                    raise PortTakenError(output)
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{output[-3000:]}")
            try:
                # A server of another test that took the port would answer too: ours must hold it.
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200 and self._listening():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.log.read_text()[-3000:]}")

    def _listening(self) -> bool:
        assert self.process is not None
        try:
            connections = psutil.Process(self.process.pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            return False
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port for c in connections)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode if self.process else None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, tmp_path / "home")
    process.start()
    yield process
    process.stop()
