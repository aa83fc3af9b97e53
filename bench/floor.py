"""The floor process (``bench.floor_app``), started once per run and measured beside each figure."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.floor_app import BODY_ENV, PATH
from bench.loadgen import LoadResult, Request, measure
from bench.server import ServerProcess


class Floor:
    """A bare Litestar app serving ``body`` (our page of 100 agents) on the same uvicorn settings.

    ``args`` go to ``python -m bench.floor_app`` (``--server granian``, ``--http h11``, ...).
    It is measured right before each figure of ours rather than once per run: on a machine
    whose other load comes and goes, the ratio of two measurements taken seconds apart is
    what stays comparable.
    """

    def __init__(self, body: bytes, *, seconds: int, warmup: int = 1, args: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.warmup = warmup
        self._dir = tempfile.mkdtemp(prefix="kasal-bench-floor-")
        body_file = Path(self._dir) / "page.json"
        body_file.write_bytes(body)
        self.server = ServerProcess(None, name="floor", home=Path(self._dir) / "home",
                                    module=("bench.floor_app", *args), ready_path=PATH,
                                    env={BODY_ENV: str(body_file)})

    def start(self) -> Floor:
        self.server.start()
        return self

    def measure(self, concurrency: int) -> LoadResult:
        """The floor's figures at ``concurrency``, measured now."""
        return measure(self.server.base_url, Request("GET", PATH), concurrency=concurrency,
                       seconds=self.seconds, warmup=self.warmup, server=self.server)

    def close(self) -> None:
        self.server.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
