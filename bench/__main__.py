"""``python -m bench [--quick] [--only a[,b]] [--web-concurrency 1,2]``: run scenarios, print a table, write JSON."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
import traceback

import bench
from bench.registry import SCENARIOS, Context
from bench.report import table, write_json

NOT_SCENARIOS = {"__main__", "registry", "report", "server", "loadgen", "rawload", "floor", "floor_app", "granian_app"}


def discover() -> None:
    """Import every module of the package so its ``@scenario`` functions register."""
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name not in NOT_SCENARIOS and not info.name.startswith("_"):
            importlib.import_module(f"bench.{info.name}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    discover()
    ordered = sorted(SCENARIOS.values(), key=lambda s: (s.order, s.name))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     epilog="scenarios: " + "; ".join(f"{s.name}: {s.help}" for s in ordered))
    parser.add_argument("--only", help="comma-separated scenario names to run")
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    parser.add_argument("--web-concurrency", default="1", metavar="N[,N]",
                        help="run the HTTP scenarios once per value, on a service started with "
                             "KASAL_WEB_CONCURRENCY=N (figures labelled N=...)")
    args = parser.parse_args(argv)
    try:
        processes = [int(n) for n in args.web_concurrency.split(",") if n.strip()]
    except ValueError:
        processes = []
    if not processes or min(processes) < 1:
        parser.error(f"--web-concurrency takes positive whole numbers, got {args.web_concurrency!r}")
    chosen = ordered
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        chosen = [s for s in ordered if s.name in names]

    # The HTTP scenarios run as a group per process count, each on its own service; the rest once.
    labelled = processes != [1]
    plan = [(s, n) for n in processes for s in chosen if s.web] + [(s, None) for s in chosen if not s.web]
    ctx = Context(quick=args.quick, web_concurrency_values=processes)
    errors: dict[str, str] = {}
    print(f"bench run {ctx.run_id} on {ctx.pg_url.rsplit('@', 1)[-1]}"
          f"{' (quick)' if args.quick else ''}: {', '.join(s.name for s in chosen)}", flush=True)
    try:
        for item, n in plan:
            if n is not None and n != ctx.web_concurrency:
                ctx.stop_server()
                ctx.web_concurrency = n
            if n is None:
                ctx.stop_server()  # the HTTP group is over: its service is no longer needed
                ctx.web_concurrency = 1
            ctx.current = f"{item.name} N={n}" if labelled and n is not None else item.name
            began = time.perf_counter()
            ctx.detail("load_average_before", [round(x, 2) for x in os.getloadavg()])
            print(f"-- {ctx.current}: {item.help}", flush=True)
            if n is not None:
                ctx.detail("web_concurrency", n)
            try:
                item.run(ctx)
            except Exception as exc:  # one failing scenario must not lose the others' numbers
                errors[ctx.current] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            ctx.detail("scenario_seconds", round(time.perf_counter() - began, 1))
    except KeyboardInterrupt:
        errors["interrupted"] = "KeyboardInterrupt"
    finally:
        ctx.close()
    print()
    print(table(ctx.metrics))
    busy = {k: v["load_average_before"][0] for k, v in ctx.details.items() if "load_average_before" in v}
    if any(v > (os.cpu_count() or 1) * 0.5 for v in busy.values()):
        print(f"\nWARNING: the machine was busy with other work (1-min load average before each "
              f"scenario: {busy}, {os.cpu_count()} CPUs); latencies include waiting for a CPU.")
    path, doc = write_json(ctx, argv, errors)
    print(f"\nCPU calibration: {doc['meta']['cpu_calibration_ms']} ms for a fixed Python loop "
          f"(~60-100 ms on an idle core); load average after: {doc['meta']['load_average_after']}")
    print(f"wrote {path}")
    if errors:
        print("FAILED scenarios: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
