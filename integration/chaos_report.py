"""The chaos run's report: faults injected by type, what was checked, every violation, and the figures."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from integration import chaos_invariants as inv
from integration.chaos_evidence import Evidence
from integration.chaos_faults import FaultEvent
from integration.chaos_invariants import Violation

NETWORKS = {
    "netns": "each replica in its own network namespace; a partition drops its packets in the kernel",
    "gate": "all on loopback; a partition is a userland gate in front of ZooKeeper going silent",
}


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Report:
    seed: int
    backend: str
    duration: float
    network: str = "gate"
    faults: list[FaultEvent] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    launches_checked: int = 0
    instants_checked: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    task_runs: int = 0
    zombie_windows: int = 0
    forbid_runs: int = 0  # runs of forbid jobs judged for overlap
    attempts_followed: int = 0  # launched attempts judged for a result (and a retry when one was due)
    triggers: int = 0  # triggers sent just before a forbid job's instants
    takeover: list[tuple[str, float, float | None]] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, ev: Evidence, outcomes: Counter[str], unaccounted: int) -> None:
        """What was checked, and the figures, from the evidence the invariants judged (`outcomes`: the instants
        accounted for, by outcome; `unaccounted`: those that were not)."""
        self.outcomes = dict(outcomes)
        self.instants_checked = sum(outcomes.values()) + unaccounted
        self.launches_checked = len(ev.launches)
        self.task_runs = len(ev.task_lines)
        self.takeover = inv.takeovers(ev, self.faults)
        self.lags = inv.launch_lags(ev)

    def fault_counts(self) -> dict[str, int]:
        return dict(Counter(f.kind for f in self.faults))

    def figures(self) -> dict[str, float | None]:
        up = [t[1] for t in self.takeover]
        ready = [t[2] for t in self.takeover if t[2] is not None]
        return {
            "leader_losses": float(len(self.takeover)),
            "takeover_p50_s": percentile(up, 50),
            "takeover_max_s": max(up) if up else None,
            "takeover_ready_p50_s": percentile(ready, 50),
            "takeover_ready_max_s": max(ready) if ready else None,
            "lag_p50_s": percentile(self.lags, 50),
            "lag_p99_s": percentile(self.lags, 99),
            "lag_max_s": max(self.lags) if self.lags else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "seed": self.seed, "backend": self.backend, "network": self.network,
            "duration": self.duration, "faults_by_type": self.fault_counts(),
            "faults": [asdict(f) for f in self.faults],
            "launches_checked": self.launches_checked, "instants_checked": self.instants_checked,
            "outcomes": self.outcomes, "task_runs": self.task_runs, "zombie_windows": self.zombie_windows,
            "forbid_runs": self.forbid_runs, "triggers": self.triggers,
            "attempts_followed": self.attempts_followed,
            "violations": [asdict(v) for v in self.violations], "figures": self.figures(), "notes": self.notes,
        }  # fmt: skip

    def render(self) -> str:
        lines = [f"chaos run: seed {self.seed}, backend {self.backend}, {self.duration:.0f}s of faults"]
        lines.append(f"network: {self.network} ({NETWORKS.get(self.network, '?')})")
        lines.append("faults injected: " + ", ".join(f"{k} {n}" for k, n in sorted(self.fault_counts().items())))
        lines += [f"  {f.kind:10} {f.detail}" for f in self.faults]
        lines.append(
            f"checked: {self.instants_checked} scheduled instants, {self.launches_checked} backend launches, "
            f"{self.task_runs} task runs, {self.zombie_windows} zombie windows, {self.forbid_runs} runs of forbid "
            f"jobs for overlap ({self.triggers} triggers sent just before their instants), "
            f"{self.attempts_followed} launched attempts followed to their result"
        )
        lines.append("outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items())))
        lines += [f"note: {n}" for n in self.notes]
        lines.append("figures: " + ", ".join(f"{k}={_num(v)}" for k, v in self.figures().items()))
        lines.append(f"violations: {len(self.violations)}")
        lines += [f"  [{v.invariant}] {v.detail}" for v in self.violations[:50]]
        lines.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return "\n".join(lines)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
