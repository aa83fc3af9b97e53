"""A tiny stdio MCP server for the MCPTool tests: one tool with a reply no model could guess.

Run as ``python mcp_server_fixture.py [PID_FILE]``; it speaks MCP on
stdin/stdout until its client closes them, having written its process id to
``PID_FILE`` (so a test can check the process is gone afterwards).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP

server = FastMCP("hive-counter")


@server.tool()
def hive_count(plot: str) -> str:
    """How many hives stand on a plot."""
    return f"plot {plot} has 13 hives (counted by the stdio MCP fixture)"


if __name__ == "__main__":
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(str(os.getpid()))
    server.run("stdio")
