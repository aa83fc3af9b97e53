"""The printed table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.loadgen import generator
from bench.registry import Context, Metric
from bench.server import ROOT

RESULTS = ROOT / "bench" / "results"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}" if abs(value) < 10 else f"{value:,.1f}"


def table(metrics: list[Metric]) -> str:
    head = ("scenario", "metric", "value", "target", "", "Kasal (old)")
    rows = [head]
    notes: list[str] = []
    for m in metrics:
        status = {True: "PASS", False: "MISS", None: ""}[m.ok]
        rows.append((m.scenario, m.name, f"{_fmt(m.value)} {m.unit}", f"{m.target} {m.unit}" if m.target else "",
                     status, f"{m.kasal} {m.unit}" if m.kasal else ""))
        if m.note:
            notes.append(f"  [{m.scenario}] {m.name}: {m.note}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10, check=False)
        return out.stdout.strip() or None
    except OSError:
        return None


def cpu_calibration_ms() -> float:
    """Best of 3 runs of a fixed pure-Python loop: compare machines and runs (~60-100 ms when idle)."""
    import time

    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i * i
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 1)


def meta(ctx: Context, argv: list[str]) -> dict[str, Any]:
    import psutil

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *argv]),
        "quick": ctx.quick,
        "commit": _commit(),
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                    "platform": platform.platform()},
        "postgres_server": ctx.pg_url.rsplit("@", 1)[-1],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_calibration_ms": cpu_calibration_ms(),
        "web_concurrency": ctx.web_concurrency_values,
        "load_generator": generator(),
    }


def write_json(ctx: Context, argv: list[str], errors: dict[str, str],
               path: Path | None = None) -> tuple[Path, dict[str, Any]]:
    path = path or RESULTS / "latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta(ctx, argv), "metrics": [m.as_dict() for m in ctx.metrics],
           "details": ctx.details, "errors": errors}
    text = json.dumps(doc, indent=2, default=str) + "\n"
    path.write_text(text)
    stamp = doc["meta"]["when"].replace(":", "").replace("+0000", "Z")
    (path.parent / f"run-{stamp}-{ctx.run_id}.json").write_text(text)  # keeps earlier runs
    return path, doc
