"""The leader's session: conclude what the previous leader left open, then one loop that launches what is due.

The loop only sleeps and wakes; each `tick` asks the dispatcher what is due, asks `policy` what to do with each
instant, and hands the batch to the launcher (two sync points). Ticks are driven by an injected clock, so tests run
whole days of schedules in milliseconds. LeadershipLost ends the session at once: the caller rejoins the election.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from cronframework.abc import Clock, Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.catalog.cache import Job, SpecCache
from cronframework.engine.concurrency import ALLOWED, Verdict, begun_in_the_same_tick, check_previous
from cronframework.engine.dispatcher import Dispatcher, Entry
from cronframework.engine.launcher import Launcher, Planned
from cronframework.engine.policy import JobPlan, plan_job
from cronframework.engine.recovery import Recovery, takeover_report
from cronframework.engine.retention import Pruner
from cronframework.engine.runtime_limits import RuntimeLimits
from cronframework.engine.staging import STAGE_MARGIN, Stage, stageable
from cronframework.errors import StateStoreError
from cronframework.naming import LaunchIdentity
from cronframework.ops.snapshot import PeriodicSnapshots, SnapshotPolicy
from cronframework.records import JobState, LaunchRecord, Outcome, TriggerRequest
from cronframework.spec.model import Concurrency, JobSpec

log = logging.getLogger("cronframework.leader")
RECOVERY_RETRY = timedelta(seconds=1)  # how often launches left open are asked about again


@dataclass(frozen=True)
class LeaderConfig:
    cluster: str = "/cronframework"
    tolerance: timedelta = timedelta(seconds=30)  # later than this, an instant counts as missed (catch-up applies)
    poll_interval: float = 1.0  # upper bound on a sleep, so triggers and pauses are seen within it
    max_clock_skew: timedelta = timedelta(seconds=5)
    clock_check_every: float = 30.0
    prune_per_tick: int = 20
    workers: int = 16
    herd_slice: int = 1000  # launches per pipeline slice when many are due at once (see Launcher.execute)
    stage_ahead: float = 1.0  # seconds before an instant its launches are planned and built (staging.py); 0: off
    snapshot: SnapshotPolicy | None = None  # periodic backups, written by the leader only


@dataclass
class LeaderState:
    """What `status` and the API show about this session."""

    epoch: int
    since: datetime
    jobs: int = 0
    launched: int = 0
    skipped: int = 0
    failed: int = 0
    clock_ok: bool = True
    last_tick: datetime | None = None
    takeover: dict[str, Any] = field(default_factory=dict)


class LeaderSession:
    def __init__(
        self,
        store: LeaderStore,
        specs: SpecCache,
        backends: BackendSet,
        leadership: Leadership,
        clock: Clock,
        config: LeaderConfig,
        stop: threading.Event,
    ) -> None:
        self._store, self._specs, self._backends = store, specs, backends
        self._leadership, self._clock, self._config, self._stop = leadership, clock, config, stop
        self._wake = threading.Event()
        specs.listeners.append(self._wake.set)
        self._dispatcher = Dispatcher()
        self._launcher = Launcher(
            store,
            backends,
            leadership,
            clock,
            cluster=config.cluster,
            workers=config.workers,
            slice_size=config.herd_slice,
        )
        self._recovery = Recovery(store, backends, self._launcher, leadership, clock)
        self._pruner = Pruner(store, backends, leadership, per_tick=config.prune_per_tick)
        self._snapshots = PeriodicSnapshots(store, config.snapshot, clock) if config.snapshot else None
        self._limits = RuntimeLimits(backends, leadership, clock)
        self._next_clock_check = 0.0
        self._needs_recovery = False
        self._stage: Stage | None = None
        self._recovery_retry_at = datetime.min.replace(tzinfo=UTC)
        self.state = LeaderState(epoch=leadership.fence.epoch, since=clock.now())

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        """Promote, then tick until stopped; LeadershipLost propagates to the replica."""
        try:
            self.promote()
            while not self._stop.is_set():
                self.tick()
                self._sleep()
        finally:
            if self._stage is not None:
                self._unstage(self._stage)
            self._launcher.close()

    def _sleep(self) -> None:
        """Until the next instant, at most `poll_interval`; with staging on, a wait longer than `stage_ahead`
        ends `stage_ahead` before the instant, so that the stage has all of that time to be built."""
        if self._stage is None:
            self._stage = self._prepare_stage(self._clock.now())
        now = self._clock.now()
        due = self._stage.at if self._stage is not None else self._dispatcher.next_due()
        seconds = self._config.poll_interval
        if due is not None:
            until = (due - now).total_seconds()
            ahead = self._stage_ahead()
            if self._stage is None and ahead > 0 and until > ahead:
                until -= ahead
            seconds = min(seconds, max(0.0, until))
        self._clock.sleep(seconds, self._wake)
        self._wake.clear()

    def _stage_ahead(self) -> float:
        return min(self._config.stage_ahead, self._config.poll_interval)  # a poll wake-up inside it would undo it

    # -- promotion --------------------------------------------------------------------------------------------
    def promote(self) -> list[LaunchRecord]:
        started = self._clock.now()
        self._specs.changed.clear()  # this read covers every change so far; a later one sets it again
        jobs = self._specs.current()  # the follower's warm specs when the store's stamp says none changed
        concluded = self._recovery.conclude_open({n: j.spec for n, j in jobs.items()})
        self._needs_recovery = self._recovery.unanswered > 0
        self._recovery_retry_at = self._clock.now() + RECOVERY_RETRY
        self._load_jobs(jobs, started)
        freeze_heap()
        records = self.tick()  # catch-up of instants missed while no leader ran, per each job's policy
        summary = {
            "launched": sum(r.outcome is not Outcome.SKIPPED for r in records),
            "skipped": sum(r.outcome is Outcome.SKIPPED for r in records),
        }
        fence = self._leadership.fence
        report = takeover_report(fence.replica, fence.epoch, started, concluded, summary)
        self._store.write_takeover(fence, report)
        self.state.takeover = report
        log.info("took over", extra={"epoch": fence.epoch, "open_concluded": len(concluded), **summary})
        return records

    def _load_jobs(self, jobs: dict[str, Job], now: datetime) -> None:
        states = self._store.read_job_states()
        fresh: list[JobState] = []
        for name, job in jobs.items():
            state = states.get(name)
            fresh += self._place(job, state, now)
        if fresh:
            self._store.put_job_states(self._leadership.fence, fresh)
        self.state.jobs = len(self._dispatcher)

    def _place(self, job: Job, state: JobState | None, now: datetime) -> list[JobState]:
        """Put a job on the heap at its stored watermark; a new or re-enabled job starts after `now`."""
        last = state.last_launch if state else None
        if not job.spec.enabled:
            self._dispatcher.remove(job.spec.name)
            return [JobState(job.spec.name, None, last)] if state and state.next_scheduled else []
        if state is not None and state.next_scheduled is not None:
            self._dispatcher.upsert(Entry(job.spec, job.schedule, state.next_scheduled, last))
            return []
        watermark = job.schedule.next_after(now)
        self._dispatcher.upsert(Entry(job.spec, job.schedule, watermark, last))
        return [JobState(job.spec.name, watermark, last)]

    def _reconcile(self, now: datetime, stage: Stage | None = None) -> Stage | None:
        """Apply spec changes; a stage built on the old specs is thrown away first. Returns the stage if kept."""
        if not self._specs.changed.is_set():
            return stage
        if stage is not None:
            self._unstage(stage)
        self._specs.changed.clear()
        jobs = self._specs.latest()
        for name in [e.spec.name for e in self._dispatcher.entries() if e.spec.name not in jobs]:
            self._dispatcher.remove(name)
        fresh: list[JobState] = []
        for name, job in jobs.items():
            entry = self._dispatcher.get(name)
            if entry is not None and job.spec.enabled:
                self._dispatcher.upsert(Entry(job.spec, job.schedule, entry.watermark, entry.last_launch))
            elif entry is None or not job.spec.enabled:
                fresh += self._place(job, None if job.spec.enabled else JobState(name, now), now)
        if fresh:
            self._store.put_job_states(self._leadership.fence, fresh)
        self.state.jobs = len(self._dispatcher)
        freeze_heap()
        log.info("job specs reloaded", extra={"jobs": len(self._dispatcher)})
        return None

    # -- the tick ---------------------------------------------------------------------------------------------
    def tick(self) -> list[LaunchRecord]:
        now = self._clock.now()
        self.state.last_tick = now
        stage = self._take_stage(now)
        if not self._clock_ok(now):
            if stage is not None:
                self._unstage(stage)
            return []
        if self._needs_recovery and now >= self._recovery_retry_at:
            self._conclude_left_open(now)
        stage = self._reconcile(now, stage)
        due = self._dispatcher.pop_due(now)
        try:
            records = self._launch_due(due, now, stage)
        except StateStoreError:
            for entry in [*due, *(stage.due if stage else ())]:  # nothing of an unapplied batch happened
                self._dispatcher.upsert(entry)
            if stage is not None:
                self._launcher.discard(stage.slices)
            self._needs_recovery = True
            raise
        self._limits.check()
        self._recheck_clock()  # after this tick's launches: a write queued behind a busy ZooKeeper delays none
        self._pruner.note(records)
        self._pruner.step(self._dispatcher.entries(), now)
        if self._snapshots is not None:
            self._snapshots.maybe_run()  # guarded by time; writes in its own thread
        if records:
            settle_heap()
        return records

    def _conclude_left_open(self, now: datetime) -> None:
        """Ask again about launches nobody could account for yet: one lookup each, at most once a second, so a
        backend that stays down costs a refused connection per tick, not a retry loop inside it."""
        specs = {e.spec.name: e.spec for e in self._dispatcher.entries()}
        self._recovery.conclude_open(specs, lookup_attempts=1)
        self._needs_recovery = self._recovery.unanswered > 0
        self._recovery_retry_at = now + RECOVERY_RETRY

    def _launch_due(self, due: list[Entry], now: datetime, stage: Stage | None = None) -> list[LaunchRecord]:
        paused = self._store.read_paused() if due or stage else set()
        if stage is not None and paused != stage.paused:  # paused or resumed since it was staged: decide anew
            self._launcher.discard(stage.slices)
            due, stage = [*stage.due, *due], None
        planned: list[Planned] = stage.planned if stage else []
        advanced: dict[str, tuple[datetime, str | None]] = stage.advanced if stage else {}
        # planned lazily: the launcher begins a herd's first slice while the rest is still being planned
        plans = chain(
            stage.rest if stage else (),
            self._plan_due(due, now, paused, advanced, planned),
            self._plan_triggers(now, advanced, planned),
        )
        records = self._launcher.execute(plans, stage.slices if stage else ())
        if self._launcher.left_open:  # submits nobody could account for: conclude them by lookup next tick
            self._launcher.left_open = 0
            self._needs_recovery = True
        for job_name, (watermark, last) in advanced.items():  # due jobs, and jobs launched by a trigger
            self._dispatcher.advance(job_name, watermark, last)
        self._account(records)
        self._limits.watch(records, {p.identity.name: p.spec for p in planned})
        return records

    def _plan_due(
        self,
        due: list[Entry],
        now: datetime,
        paused: set[str],
        advanced: dict[str, tuple[datetime, str | None]],
        planned: list[Planned],
    ) -> Iterator[Planned]:
        """Each due job's sync-point-one items, lazily; fills `advanced` (each job's next watermark and last
        launch) and `planned` (everything yielded) as it goes."""
        for entry in due:
            plan = plan_job(
                entry.spec,
                entry.schedule,
                entry.watermark,
                now,
                tolerance=self._config.tolerance,
                paused=entry.spec.name in paused,
            )
            items = self._decide(entry, plan)
            planned += items
            last = next((p.identity.name for p in reversed(items) if p.skip_reason is None), entry.last_launch)
            advanced[entry.spec.name] = (plan.watermark or entry.watermark, last)
            yield from items

    def _plan_triggers(
        self, now: datetime, advanced: dict[str, tuple[datetime, str | None]], planned: list[Planned]
    ) -> Iterator[Planned]:
        """The manual triggers, after the due jobs (a trigger sees the watermark their planning left)."""
        triggered = self._triggered(now, advanced)
        planned += triggered
        yield from triggered

    # -- staging (staging.py) ---------------------------------------------------------------------------------
    def _prepare_stage(self, now: datetime) -> Stage | None:
        """When the next instant is within `stage_ahead`, plan and build its launches now; None otherwise, or
        when building failed (the instant is then planned when it comes, as without staging)."""
        ahead = self._stage_ahead()
        at = self._dispatcher.next_due()
        if at is None or at <= now or (at - now).total_seconds() > ahead or self._specs.changed.is_set():
            return None
        popped = self._dispatcher.pop_due(at)
        for entry in popped:
            if not stageable(entry):
                self._dispatcher.upsert(entry)  # decided at the instant, after asking its backend
        due = [e for e in popped if stageable(e)]
        if not due:
            return None
        planned: list[Planned] = []
        advanced: dict[str, tuple[datetime, str | None]] = {}
        try:
            paused = self._store.read_paused()
            rest = self._plan_due(due, at, paused, advanced, planned)
            until = self._clock.monotonic() + (at - self._clock.now()).total_seconds() - STAGE_MARGIN
            slices = self._launcher.prepare(rest, at, until)  # discards what it built if it fails
        except StateStoreError as exc:
            for entry in due:
                self._dispatcher.upsert(entry)
            log.warning("staging failed; planning at the instant", extra={"at": at.isoformat(), "error": str(exc)})
            return None
        built = sum(len(s.items) for s in slices)
        log.debug("staged", extra={"at": at.isoformat(), "jobs": len(due), "built": built})
        return Stage(at, due, paused, planned, advanced, rest, slices)

    def _take_stage(self, now: datetime) -> Stage | None:
        """The stage, if this tick may fire it: at or after its instant, and within tolerance of it."""
        stage, self._stage = self._stage, None
        if stage is None:
            return None
        if stage.at <= now <= stage.at + self._config.tolerance:
            return stage
        self._unstage(stage)
        return None

    def _unstage(self, stage: Stage) -> None:
        """Throw a stage away: nothing of it was sent; its jobs go back on the dispatcher at their instant."""
        self._stage = None
        self._launcher.discard(stage.slices)
        for entry in stage.due:
            self._dispatcher.upsert(entry)
        log.debug("stage dropped", extra={"at": stage.at.isoformat(), "jobs": len(stage.due)})

    def _decide(self, entry: Entry, plan: JobPlan) -> list[Planned]:
        """Turn a plan into sync-point-one items, applying the concurrency policy to the launches."""
        spec, watermark = entry.spec, plan.watermark or entry.watermark
        last = entry.last_launch
        items: list[Planned] = []
        for skip in plan.skips:
            items.append(Planned(skip.identity, spec, JobState(spec.name, watermark, last), skip.reason))
        launches = plan.launches
        if spec.concurrency.value != "allow" and len(launches) > 1:
            reason = f"skipped: superseded by a later instant in the same tick (concurrency: {spec.concurrency})"
            items += [Planned(i, spec, JobState(spec.name, watermark, last), reason) for i in launches[:-1]]
            launches = launches[-1:]
        for identity in launches:
            verdict = self._check_previous(spec, last)
            skip_reason = None if verdict.launch else verdict.reason
            last = identity.name if verdict.launch else last
            state = JobState(spec.name, watermark, last)
            items.append(Planned(identity, spec, state, skip_reason, deadline=watermark))
        return items

    def _check_previous(self, spec: JobSpec, last: str | None) -> Verdict:
        if spec.concurrency is Concurrency.ALLOW or last is None:
            return ALLOWED  # no backend to resolve, no lookup: the herd path
        backend = self._backends.for_spec(spec)
        return check_previous(spec, last, backend, clock=self._clock, leadership=self._leadership)

    def _triggered(self, now: datetime, advanced: dict[str, tuple[datetime, str | None]]) -> list[Planned]:
        items = []
        for request in self._store.pending_triggers():
            entry = self._dispatcher.get(request.job)
            if entry is None:
                extra = {"job": request.job, "trigger": request.id, "epoch": self._leadership.fence.epoch}
                log.warning("trigger for an unknown or disabled job dropped", extra=extra)
                self._store.drop_trigger(self._leadership.fence, request.id)
                continue
            items.append(self._manual(entry, request, now, advanced))
        return items

    def _manual(
        self,
        entry: Entry,
        request: TriggerRequest,
        now: datetime,
        advanced: dict[str, tuple[datetime, str | None]],
    ) -> Planned:
        spec = entry.spec
        watermark, last = advanced.get(spec.name, (entry.watermark, entry.last_launch))
        identity = LaunchIdentity(spec.name, request.requested_at, manual=True)
        skip = None
        if not request.force:
            verdict = self._check_trigger(entry, last)
            skip = None if verdict.launch else verdict.reason
        if skip is None:
            last = identity.name
        advanced[spec.name] = (watermark, last)
        state = JobState(spec.name, watermark, last)
        return Planned(identity, spec, state, skip, trigger_id=request.id, deadline=now + timedelta(minutes=5))

    def _check_trigger(self, entry: Entry, last: str | None) -> Verdict:
        """`last` is the job's latest launch as this tick left it. One that differs from the dispatcher's was
        decided in this tick (the job's due instant, or an earlier trigger) and is not in the backend yet."""
        if last is not None and last != entry.last_launch:
            return begun_in_the_same_tick(entry.spec, last)
        return self._check_previous(entry.spec, last)

    def _account(self, records: list[LaunchRecord]) -> None:
        for record in records:
            if record.outcome is Outcome.SKIPPED:
                self.state.skipped += 1
            elif record.outcome is Outcome.FAILED:
                self.state.failed += 1
            else:
                self.state.launched += 1

    def _clock_ok(self, now: datetime) -> bool:
        """Refuse to launch, loudly, while our clock and the store's disagree by more than the bound. Checked here
        only before the first launch and while the clocks disagree; otherwise `_recheck_clock` re-checks after a
        tick's launches (the check is a ZooKeeper write, and one queued behind a herd's transactions had put up to
        0.3 s on every launch of the second it ran in)."""
        if self._next_clock_check and self.state.clock_ok:
            return True
        return self._check_clock(now)

    def _recheck_clock(self) -> None:
        if self._clock.monotonic() >= self._next_clock_check:
            self._check_clock(self._clock.now())

    def _check_clock(self, now: datetime) -> bool:
        self._next_clock_check = self._clock.monotonic() + self._config.clock_check_every
        skew = abs((self._store.server_time() - now).total_seconds())
        ok = skew <= self._config.max_clock_skew.total_seconds()
        if not ok:
            log.error("clock skew with the state store too large; not launching", extra={"skew_seconds": skew})
        self.state.clock_ok = ok
        return ok


def freeze_heap() -> None:
    """Move what is alive now (specs, schedules, the heap of 100k jobs) out of the cyclic GC's reach: otherwise a
    full collection in the middle of a herd walks all of it, a pause of a few hundred ms at 10k jobs. Garbage is
    still freed by reference counting; only cycles among frozen objects would wait, and the job tables have none.
    A follower freezes its warm specs too (replica.py), so the collection at promotion walks only what is new."""
    gc.collect()
    gc.freeze()


def settle_heap() -> None:
    """After a tick that launched: collect the young generations, then freeze what survived. Every launch replaces
    its job's heap entry and state, so at 100k jobs a minute the survivors reached the oldest generation by the
    hundred thousand and CPython walked them all in a full collection every ~2 s, 110-160 ms each (steady 100k,
    docs/benchmarks.md). Frozen, they are still freed by reference counting when replaced. Young cycles are
    collected first, so only a cycle reaching back into frozen objects could outlive its use; the leader makes none
    in steady state (every full collection of that run found nothing), and `benchmarks memory` watches for growth."""
    gc.collect(1)
    gc.freeze()
