"""Tool factories for crew children that misbehave on purpose.

A factory is pickled into each crew child and called there, so crewai is
imported only inside ``__call__`` (the test process never imports it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

EXIT_CODE = 7


class HostileToolFactory:
    """``exit_now`` (and ``calculator``, so a crew the API accepts can use it) ends the child with
    ``EXIT_CODE`` and no outcome; ``stubborn`` ignores SIGTERM and never returns.

    With ``orphan_pid_file``, the exiting tool first forks a process that sleeps holding every
    descriptor the child had, the write end of its pipe included (its pid goes to that file so
    the test can end it): the parent then never sees EOF on that pipe.
    """

    def __init__(self, orphan_pid_file: Path | None = None) -> None:
        self.orphan_pid_file = None if orphan_pid_file is None else str(orphan_pid_file)

    def __call__(self, name: str) -> Any:
        from crewai.tools import BaseTool

        orphan_pid_file = self.orphan_pid_file

        class ExitTool(BaseTool):
            name: str = "exit_now"
            description: str = "Ends the process abruptly."

            def _run(self, **_: Any) -> str:
                if orphan_pid_file is not None:
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(60)
                        os._exit(0)
                    Path(orphan_pid_file).write_text(str(pid))
                os._exit(EXIT_CODE)

        class StubbornTool(BaseTool):
            name: str = "stubborn"
            description: str = "Ignores SIGTERM and never finishes."

            def _run(self, **_: Any) -> str:
                time.sleep(60)
                return "too late"

        if name == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # here: tools run off the main thread
            return StubbornTool()
        if name in ("exit_now", "calculator"):
            return ExitTool(name=name)
        raise LookupError(f"no hostile tool {name!r}")


def end_orphan(pid_file: Path) -> None:
    """Kill the process an exiting tool left behind, if it left one."""
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
