"""`python -m benchmarks herd|steady|takeover|coldstart|peers|all [--smoke] [--plot]`: scheduler benchmarks.

Each scenario starts its own real ZooKeeper (integration.zk) and prints its figures as JSON with the machine.
`--smoke` runs the small sizes CI uses (a few seconds each); `--plot` writes PNGs to docs/img/ (matplotlib).
Results are also written to benchmarks/results/<scenario>.json for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bench_coldstart, bench_herd, bench_peers, bench_steady, bench_takeover
from benchmarks.common import emit

RESULTS = Path(__file__).resolve().parent / "results"

# scenario -> (full run, smoke run)
SCENARIOS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[], dict[str, Any]]]] = {
    "herd": (lambda: bench_herd.run([1000, 10_000], [1, 3]), lambda: bench_herd.run([200], [1])),
    "steady": (lambda: bench_steady.run(10_000, 1000, 300.0, [1]), lambda: bench_steady.run(200, 20, 30.0, [1])),
    "takeover": (lambda: bench_takeover.run([1000], [4.0, 10.0], 3), lambda: bench_takeover.run([200], [4.0], 1)),
    "coldstart": (lambda: bench_coldstart.run(100_000, 200_000), lambda: bench_coldstart.run(1000, 10_000)),
    "peers": (lambda: bench_peers.run([1000, 10_000]), lambda: bench_peers.run([200])),
}


def run_scenario(name: str, *, smoke: bool, plot: bool) -> dict[str, Any]:
    full, small = SCENARIOS[name]
    result = emit(name, {"smoke": smoke, **(small() if smoke else full())})
    RESULTS.mkdir(exist_ok=True)
    suffix = "-smoke" if smoke else ""
    (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(result, indent=1, default=str))
    if plot:
        from benchmarks import plots

        plots.plot(name, result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--smoke", action="store_true", help="the small CI sizes")
    parser.add_argument("--plot", action="store_true", help="write PNG plots to docs/img/ (needs matplotlib)")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in names:
        run_scenario(name, smoke=args.smoke, plot=args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
