"""``kasal conformance`` against a real server: a report, exit status 0 and JUnit XML."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_kasal_conformance_passes_against_a_running_server(server: ServerProcess, tmp_path: Path) -> None:
    junit = tmp_path / "conformance.xml"
    done = subprocess.run(
        [sys.executable, "-m", "interface.cli", "conformance", "--base-url", server.base_url, "--examples", "100",
         "--executions", "1", "--seed", "11", "--junit-xml", str(junit)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED         pagination" in done.stdout and "examples/s" in done.stdout
    print(f"\n{done.stdout}")
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests", "0")) == 9


def test_kasal_conformance_says_when_there_is_no_server(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "interface.cli", "conformance", "--base-url", "http://127.0.0.1:9", "--examples", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "cannot check http://127.0.0.1:9" in done.stdout
