"""Load + validate N generated jobs: `python -m benchmarks.bench_load --jobs 10000 [--profile]`.

Figures, not asserts: prints the time per phase and the machine, so runs on different hosts can be compared.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from cronframework.spec import files as specfile
from cronframework.spec import yamlpos

ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo", "Australia/Sydney")
SCHEDULES = ("30 1 * * *", "? ? * * *", "*/5 * * * * *", "@every 90s", "0 9 * * mon-fri", "15 */6 * * *")


def job_yaml(index: int) -> str:
    """A realistic job: half a screen of YAML, a mix of backends, zones and schedule forms."""
    backend = ("process", "docker", "nomad")[index % 3]
    task = '      command: ["/bin/sh", "-c", "echo $CRONFRAMEWORK_LAUNCH"]\n'
    if backend != "process":
        task = f'      image: registry.example/app:{index % 7}\n      args: ["--shard", "{index}"]\n'
    return (
        f"  job-{index:05d}:\n"
        f'    schedule: "{SCHEDULES[index % len(SCHEDULES)]}"\n'
        f"    timezone: {ZONES[index % len(ZONES)]}\n"
        f"    backend: {backend}\n"
        f"    concurrency: forbid\n"
        f"    catchup: {{policy: latest, window: 2h}}\n"
        f"    labels: {{team: team-{index % 20}}}\n"
        f"    task:\n{task}"
        f'      env: {{SHARD: "{index}", MODE: batch}}\n'
        f"      resources: {{cpu: 0.5, memory: 256}}\n"
        f"      timeout: 30m\n"
    )


def generate(root: Path, jobs: int, per_file: int) -> int:
    """Jobs spread over files of `per_file` jobs in nested directories; returns the bytes written."""
    written = 0
    for start in range(0, jobs, per_file):
        path = root / f"team-{start // per_file % 10}" / f"jobs-{start:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "job:\n" + "".join(job_yaml(i) for i in range(start, min(start + per_file, jobs)))
        path.write_text(text)
        written += len(text)
    return written


def timed(label: str, fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` runs, with CPU time beside it (wall time suffers on a shared machine)."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(
        f"{label:<34} wall best {min(walls):6.3f} s  median {statistics.median(walls):6.3f} s  "
        f"cpu best {min(cpus):6.3f} s  ({repeat} runs)"
    )
    return min(walls)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libyaml = "libyaml" if getattr(yaml, "__with_libyaml__", False) else "pure-Python YAML"
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}, {libyaml}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top functions of one load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        size = generate(root, args.jobs, args.per_file)
        files = sorted(root.rglob("*.yaml"))
        print(f"machine: {machine()}, load average {os.getloadavg()[0]:.1f}")
        print(f"input:   {args.jobs} jobs in {len(files)} files, {size / 1e6:.1f} MB")
        texts = [p.read_text() for p in files]
        timed("parse YAML (yamlpos) only", lambda: [yamlpos.parse(t, "f") for t in texts], args.repeat)
        best = timed("load_jobs (read+parse+validate)", lambda: specfile.load_jobs([root]), args.repeat)
        print(f"per job: {best / args.jobs * 1e6:.0f} us   throughput: {args.jobs / best:,.0f} jobs/s")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(specfile.load_jobs, [root])
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
