"""`python -m benchmarks SCENARIO [--smoke] [--plot] [sizes]`: herd, steady, takeover, coldstart, suspend, peers,
memory, page, results, dockerherd, nomadherd or all.

Each scenario starts its own real ZooKeeper (integration.zk) and prints its figures as JSON with the machine.
`--smoke` runs the small sizes CI uses (a few seconds each); `--plot` writes PNGs to docs/img/ (matplotlib).
Size flags (`--jobs`, `--nodes`, ...) override a scenario's full-run defaults so a run can be repeated or scaled
without editing code. Results are also written to benchmarks/results/<scenario>[-<tag>].json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_coldstart,
    bench_docker_herd,
    bench_herd,
    bench_memory,
    bench_nomad_herd,
    bench_page,
    bench_peers,
    bench_results,
    bench_steady,
    bench_suspend,
    bench_takeover,
)
from benchmarks.common import emit
from cronframework.ops.logs import setup_logging

RESULTS = Path(__file__).resolve().parent / "results"

Runner = Callable[[argparse.Namespace], dict[str, Any]]


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _steady(a: argparse.Namespace) -> dict[str, Any]:
    jobs = _or(a.jobs, [10_000])
    return bench_steady.run(jobs[0], _or(a.every10, 1000), _or(a.seconds, 300.0), _or(a.nodes, [1]))


def _takeover(a: argparse.Namespace) -> dict[str, Any]:
    return bench_takeover.run(_or(a.jobs, [1000]), _or(a.timeouts, [4.0, 10.0]), _or(a.repeats, 3), a.signals or None)


# scenario -> (full run with overrides, smoke run)
SCENARIOS: dict[str, tuple[Runner, Callable[[], dict[str, Any]]]] = {
    "herd": (
        lambda a: bench_herd.run(_or(a.jobs, [1000, 10_000]), _or(a.nodes, [1, 3]), _or(a.repeats, 1), a.run_for),
        lambda: bench_herd.run([200], [1], 1, 5.0),
    ),
    "steady": (_steady, lambda: bench_steady.run(200, 20, 30.0, [1])),
    "takeover": (_takeover, lambda: bench_takeover.run([200], [4.0], 1)),
    "coldstart": (
        lambda a: bench_coldstart.run(_or(a.jobs, [100_000])[0], _or(a.records, 200_000)),
        lambda: bench_coldstart.run(1000, 10_000),
    ),
    "suspend": (
        lambda a: bench_suspend.run(_or(a.jobs, [1000])[0], _or(a.repeats, 5)),
        lambda: bench_suspend.run(200, 1),
    ),
    "peers": (lambda a: bench_peers.run(_or(a.jobs, [1000, 10_000])), lambda: bench_peers.run([200])),
    "results": (
        lambda a: bench_results.run(
            _or(a.backends, ["process", "docker", "nomad"]), _or(a.jobs, [10])[0], _or(a.seconds, 60.0)
        ),
        lambda: bench_results.run(["process"], 3, 12.0),
    ),
    "memory": (
        lambda a: bench_memory.run(_or(a.jobs, [1000, 10_000, 100_000])),
        lambda: bench_memory.run([100, 400]),
    ),
    "dockerherd": (
        lambda a: bench_docker_herd.run(_or(a.jobs, [100, 500]), _or(a.repeats, 1), _or(a.workers, 16)),
        lambda: bench_docker_herd.run([10], 1, 4),
    ),
    "nomadherd": (
        lambda a: bench_nomad_herd.run(
            _or(a.jobs, [100, 1000]),
            _or(a.repeats, 1),
            _or(a.workers, 16),
            _or(a.more_workers, []),
            a.phases,
            a.unplaced,
            a.agent_cpus,
        ),
        lambda: bench_nomad_herd.run([10], 1, 4),
    ),
    "page": (
        lambda a: bench_page.run(_or(a.jobs, [10_000])[0], 3, _or(a.repeats, 5)),
        lambda: bench_page.run(300, 2, 1, ("sqlite",)),
    ),
}


def run_scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    full, small = SCENARIOS[name]
    result = emit(name, {"smoke": args.smoke, **(small() if args.smoke else full(args))})
    RESULTS.mkdir(exist_ok=True)
    suffix = "-smoke" if args.smoke else (f"-{args.tag}" if args.tag else "")
    (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(result, indent=1, default=str))
    if args.plot:
        from benchmarks import plots

        plots.plot(name, result)
    return result


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _agent_cpus(text: str) -> set[int]:
    cpus = set(_ints(text))
    try:
        bench_nomad_herd.other_cpus(cpus)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return cpus


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("scenario", choices=[*SCENARIOS, "all"])
    p.add_argument("--smoke", action="store_true", help="the small CI sizes")
    p.add_argument("--plot", action="store_true", help="write PNG plots to docs/img/ (needs matplotlib)")
    p.add_argument("--jobs", type=_ints, help="job counts, comma-separated (steady/coldstart/suspend: the first)")
    p.add_argument("--nodes", type=_ints, help="ZooKeeper ensemble sizes, comma-separated (herd, steady)")
    p.add_argument("--timeouts", type=_floats, help="session timeouts in seconds (takeover)")
    p.add_argument("--signals", type=lambda t: t.split(","), help="kill -9,SIGTERM,SIGSTOP (takeover)")
    p.add_argument("--repeats", type=int, help="repetitions (takeover, suspend; herd: herds a minute apart)")
    p.add_argument("--seconds", type=float, help="measured window (steady)")
    p.add_argument("--every10", type=int, help="`@every 10s` jobs beside the minutely ones (steady)")
    p.add_argument("--records", type=int, help="history records to preload (coldstart)")
    p.add_argument("--tag", help="results file suffix, so repeated runs do not overwrite each other")
    p.add_argument("--run-for", type=float, help="seconds each noop launch runs before it ends (herd)")
    p.add_argument("--workers", type=int, help="threads of the plain client that is the ceiling (backend herds)")
    p.add_argument("--more-workers", type=_ints, help="nomadherd: ours again with these submit workers")
    p.add_argument("--phases", action="store_true", help="nomadherd: ours and the plain client, time per step")
    p.add_argument("--unplaced", action="store_true", help="nomadherd: registration alone, no job placed")
    p.add_argument("--agent-cpus", type=_agent_cpus, help="nomadherd: the agent on these CPUs, the rest on the others")
    p.add_argument("--backends", type=lambda t: t.split(","), help="process,docker,nomad (results)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.smoke:
        production_zookeeper()
    RESULTS.mkdir(exist_ok=True)
    # The in-process leaders log as a replica does (JSON lines, INFO): one line per launch is part of a herd's cost.
    with (RESULTS / "leader-log.jsonl").open("w") as leader_log:
        setup_logging(json_lines=True, stream=leader_log)
        try:
            return _run(args)
        finally:
            logging.shutdown()  # the last gathered lines, before the file closes


def production_zookeeper() -> None:
    """Full runs measure ZooKeeper as docs/operations.md says to run it for launches spread over the minute: the
    JIT's optimizing tier and a concurrent collector (the 100k herd's command asks for the parallel one). The tests'
    quick-starting servers (C1 only, serial collector) put 15-30 ms stop-the-world pauses and a slower server under
    every launch; the env still overrides either (integration.zk.jvm_flags)."""
    os.environ.setdefault("CRONFRAMEWORK_ZK_FULL_JIT", "1")
    os.environ.setdefault("CRONFRAMEWORK_ZK_GC", "zgc")


def _run(args: argparse.Namespace) -> int:
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in names:
        run_scenario(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
