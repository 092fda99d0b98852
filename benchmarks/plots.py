"""PNG plots of benchmark results for docs/img/ (full runs only: `python -m benchmarks SCENARIO --plot`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


def plot(scenario: str, result: dict[str, Any]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.get("rows", [])
    fig, ax = plt.subplots(figsize=(7, 4))
    if scenario == "herd":
        for nodes in sorted({r["zk_nodes"] for r in rows}):
            mine = [r for r in rows if r["zk_nodes"] == nodes]
            ax.plot([r["jobs"] for r in mine], [r["all_finished_s"] for r in mine], "o-", label=f"{nodes} ZK node(s)")
        ax.set(xscale="log", xlabel="jobs due in one second", ylabel="all finished in ZooKeeper (s)")
    elif scenario == "steady" and rows:
        minutes = rows[0]["per_minute"]
        ax.plot(range(len(minutes)), [m["p99"] * 1000 for m in minutes], "o-", label="p99")
        ax.plot(range(len(minutes)), [m["p50"] * 1000 for m in minutes], "o-", label="p50")
        ax.set(xlabel="minute of the run", ylabel="lag scheduled -> submitted (ms)")
    elif scenario == "peers":
        labels = [str(r["jobs"]) for r in rows]
        ax.bar(
            [i - 0.2 for i in range(len(rows))],
            [r["cronframework"]["lag_s"]["p99"] for r in rows],
            0.4,
            label="cronframework (ZooKeeper, 2 sync points)",
        )
        ax.bar(
            [i + 0.2 for i in range(len(rows))],
            [r["apscheduler"]["lag_s"]["p99"] for r in rows],
            0.4,
            label="APScheduler 3 (in memory)",
        )
        ax.set_xticks(range(len(rows)), labels)
        ax.set(xlabel="jobs due in one second", ylabel="p99 lag (s)")
    else:
        plt.close(fig)
        return None
    ax.set_title(f"{scenario}")
    ax.legend()
    IMG.mkdir(parents=True, exist_ok=True)
    path = IMG / f"bench-{scenario}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
