"""The leader's session: conclude what the previous leader left open, then one loop that launches what is due.

Each tick reads what it needs (due jobs, pause flags, triggers), lets `plan.plan_tick` decide, asks the backend
about the previous launches the plan names, lets `plan.settle` finish the decisions, and hands the items to the
launcher (the two sync points); housekeeping follows. The steps read like docs/design.md's "One launch". Ticks are
driven by an injected clock, so tests run whole days of schedules in milliseconds. LeadershipLost ends the session
at once: the caller rejoins the election.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from cronframework.abc import Clock, Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.catalog.cache import SpecCache
from cronframework.engine import job_table
from cronframework.engine.clock_guard import ClockGuard
from cronframework.engine.concurrency import Verdict, check_previous
from cronframework.engine.dispatcher import Dispatcher, Entry
from cronframework.engine.follower import FollowConfig
from cronframework.engine.housekeeping import Housekeeping, freeze_heap
from cronframework.engine.launcher import Launcher
from cronframework.engine.notify import Notifier, NotifyConfig
from cronframework.engine.outbox import Outbox
from cronframework.engine.plan import Planned, TickPlan, hold_unanswered, plan_tick, settle
from cronframework.engine.recovery import Recovery, takeover_report
from cronframework.engine.replay_finds import ReplayFinds
from cronframework.engine.restore_listing import RestoreListing
from cronframework.engine.results import Results
from cronframework.engine.retention import Pruner
from cronframework.engine.runtime_limits import RuntimeLimits
from cronframework.engine.staging import STAGE_MARGIN, Stage, stageable
from cronframework.errors import StateStoreError
from cronframework.heap import gc_paused
from cronframework.ops.snapshot import RESTORED, PeriodicSnapshots, SnapshotPolicy, restored_at
from cronframework.records import JobState, LaunchRecord, Outcome, TriggerRequest
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.leader")
RECOVERY_RETRY = timedelta(seconds=1)  # how often launches left open are asked about again
MIN_SLICE = 0.25  # seconds a tick always gives to open launches and a restore's replayed ones, however near an instant


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
    stage_ahead: float = 10.0  # seconds before an instant its launches are planned and built (staging.py); 0: off
    snapshot: SnapshotPolicy | None = None  # periodic backups, written by the leader only
    recovery_slice: float = 2.0  # seconds promotion gives to open launches; the rest are concluded in later ticks
    follow: FollowConfig = field(default_factory=FollowConfig)  # how launched tasks are followed (follower.py)
    notify: NotifyConfig = field(default_factory=NotifyConfig)  # webhook delivery and the cluster's default hooks


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
        self._notifier = Notifier(config.notify)
        self._launcher = Launcher(
            store,
            backends,
            leadership,
            clock,
            cluster=config.cluster,
            workers=config.workers,
            slice_size=config.herd_slice,
            notifier=self._notifier,
        )
        self._recovery = Recovery(store, backends, self._launcher, leadership, clock, self._notifier)
        self._results = Results(store, backends, leadership, clock, config.follow, self._notifier)
        self._outbox = Outbox(store, leadership, clock, config.notify)
        self._housekeeping = Housekeeping(
            RuntimeLimits(backends, leadership, clock),
            Pruner(store, backends, leadership, per_tick=config.prune_per_tick),
            PeriodicSnapshots(store, config.snapshot, clock, leadership) if config.snapshot else None,
        )
        self._listing = RestoreListing(store, backends, leadership, clock)
        self._replays = ReplayFinds(backends, leadership, clock)
        self._clock_guard = ClockGuard(store, clock, config.max_clock_skew, config.clock_check_every)
        self._needs_recovery = False
        self._catching_up = False  # in promotion's catch-up tick
        self._stage: Stage | None = None
        self._recovery_retry_at = datetime.min.replace(tzinfo=UTC)
        self._restored: Mapping[str, Any] | None = None  # the restore the store came from (ops/snapshot.py), if any
        self.state = LeaderState(epoch=leadership.fence.epoch, since=clock.now())

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        """Promote, then tick until stopped; LeadershipLost propagates to the replica."""
        try:
            self.promote()
            self.start_threads()
            while not self._stop.is_set():
                self.tick()
                self._sleep()
        finally:
            if self._stage is not None:
                self._unstage(self._stage)
            self.close_threads()
            self._launcher.close()

    def start_threads(self) -> None:
        """The result follower's and the outbox's threads (run() starts them; tests step both inline per tick)."""
        self._results.follower.start()
        self._outbox.start()

    def close_threads(self) -> None:
        self._results.close()
        self._outbox.close()

    def _sleep(self) -> None:
        """Until the next instant, at most `poll_interval`; with staging on, a wait longer than `stage_ahead`
        ends `stage_ahead` before the instant, so that the stage has all of that time to be built (a poll interval
        of building at a time, then a tick). While the clock guard refuses, a poll: to a clock running ahead every
        instant looks due, and the loop would spin on the guard's check (a ZooKeeper write)."""
        if not self.state.clock_ok:
            self._clock.sleep(self._config.poll_interval, self._wake)
            self._wake.clear()
            return
        started = self._clock.monotonic()
        if self._stage is None:
            self._stage = self._prepare_stage(self._clock.now())
        else:
            self._build_more(self._stage)
        now = self._clock.now()
        due = self._next_due()
        seconds = max(0.0, self._config.poll_interval - (self._clock.monotonic() - started))
        if due is not None:
            until = (due - now).total_seconds()
            ahead = self._stage_ahead()
            if self._stage is None and ahead > 0 and until > ahead:
                until -= ahead
            seconds = min(seconds, max(0.0, until))
        self._clock.sleep(seconds, self._wake)
        self._wake.clear()

    def _stage_ahead(self) -> float:
        return self._config.stage_ahead

    # -- promotion --------------------------------------------------------------------------------------------
    def promote(self) -> list[LaunchRecord]:
        started = self._clock.now()
        self._restored = (self._store.read_takeover() or {}).get(RESTORED)  # carried on from takeover to takeover
        self._specs.changed.clear()  # this read covers every change so far; a later one sets it again
        with gc_paused():  # 100k job states read and placed: see gc_paused; freeze_heap collects once after
            jobs = self._specs.current()  # the follower's warm specs when the store's stamp says none changed
            self._listing.start(self._restored, jobs)
            specs = {n: j.spec for n, j in jobs.items()}
            concluded = self._recovery.conclude_open(specs, budget=self._config.recovery_slice)
            self._needs_recovery = self._recovery.unanswered > 0
            self._recovery_retry_at = self._clock.now() + RECOVERY_RETRY
            self._write_states(job_table.load(self._dispatcher, jobs, self._store.read_job_states(), started))
            # before the catch-up tick, which may be long; after the job states, so that a restore from it replays
            # each job from its watermark (a snapshot of a new cluster's specs alone would let its launches vanish)
            self._housekeeping.snapshot()
            self._recovery.take_finished()  # the store's list of launches to follow has them too
            self._results.resume(self._spec_of)
            self._results.expect(e.spec for e in self._dispatcher.entries())
            self._outbox.load()  # what recovery wrote just now is in the store too
            self._notifier.take_written()
        freeze_heap()
        self._catching_up = True
        try:
            records = self.tick()  # catch-up of instants missed while no leader ran, per each job's policy
        finally:
            self._catching_up = False
        summary = {
            "launched": sum(r.outcome is not Outcome.SKIPPED for r in records),
            "skipped": sum(r.outcome is Outcome.SKIPPED for r in records),
        }
        fence = self._leadership.fence
        report = takeover_report(fence.replica, fence.epoch, started, concluded, summary)
        if self._restored is not None:
            report[RESTORED] = self._restored
        self._store.write_takeover(fence, report)
        self.state.takeover = report
        log.info("took over", extra={"epoch": fence.epoch, "open_concluded": len(concluded), **summary})
        return records

    def _write_states(self, fresh: list[JobState]) -> None:
        if fresh:
            self._store.put_job_states(self._leadership.fence, fresh)
        self.state.jobs = len(self._dispatcher)

    def _reconcile(self, now: datetime, stage: Stage | None = None) -> Stage | None:
        """Apply spec changes; a stage built on the old specs (this tick's, or one held for a later instant) is
        thrown away first. Returns the stage if kept."""
        if not self._specs.changed.is_set():
            return stage
        for dropped in (stage, self._stage):
            if dropped is not None:
                self._unstage(dropped)
        self._specs.changed.clear()
        self._write_states(job_table.reconcile(self._dispatcher, self._specs.latest(), now))
        self._results.expect(e.spec for e in self._dispatcher.entries())
        freeze_heap()
        log.info("job specs reloaded", extra={"jobs": len(self._dispatcher)})
        return None

    # -- the tick ---------------------------------------------------------------------------------------------
    def tick(self) -> list[LaunchRecord]:
        now = self._clock.now()
        self.state.last_tick = now
        stage = self._take_stage(now)
        if not self._clock_guard.allows(now):
            self.state.clock_ok = False
            for dropped in (stage, self._stage):
                if dropped is not None:
                    self._unstage(dropped)
            return []
        self.state.clock_ok = True
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
        self._clock_guard.recheck()  # after this tick's launches: a write queued behind a busy ZooKeeper delays none
        self.state.clock_ok = self._clock_guard.ok
        self._results.after_tick(self._spec_of, self._next_instant, busy=self._instant_near())  # after the launches
        self._outbox.add(self._notifier.take_written())
        self._outbox.after_tick()
        stopped = self._housekeeping.after_tick(records, self._dispatcher, now)
        self._results.stopped_for_timeout(stopped)
        if self._listing.pending and self.state.takeover:  # promoted: the report the listing's end goes into exists
            self._note_listed(self._listing.step(self._spec_of, self._room()))
        return records

    def _room(self) -> float:
        """Seconds this thread may spend before the next instant (or its stage) needs it."""
        due = self._next_due()
        if due is None:
            return self._config.poll_interval
        return (due - self._clock.now()).total_seconds() - STAGE_MARGIN

    def _slice(self) -> float:
        """Seconds a tick gives to beginning lookups of open or replayed launches."""
        return max(self._room(), MIN_SLICE)

    def _finds_slice(self) -> float:
        """Seconds a tick gives to a restore's replayed lookups: promotion's catch-up tick gives `recovery_slice`,
        so a leader deposed before its second tick still gets hundreds of answers written down (60-minute runs,
        docs/reliability.md)."""
        return max(self._slice(), self._config.recovery_slice) if self._catching_up else self._slice()

    def _note_listed(self, marker: Mapping[str, Any] | None) -> None:
        """Every job listed after the restore (restore_listing.py): later leaders need not list again."""
        if marker is None:
            return
        self._restored = marker
        report = {**self.state.takeover, RESTORED: marker}
        self._store.write_takeover(self._leadership.fence, report)
        self.state.takeover = report

    def _instant_near(self) -> bool:
        """An instant comes within the stage's lead (or a poll interval) and a second: writes that are not launches
        stay short, so that a burst of results neither holds up the building of the stage nor its launches."""
        due = self._next_due()
        lead = timedelta(seconds=max(self._stage_ahead(), self._config.poll_interval) + 1.0)
        return due is not None and due - self._clock.now() <= lead

    def _next_due(self) -> datetime | None:
        """The next instant this thread must be ready for: the held stage's, else the dispatcher's."""
        return self._stage.at if self._stage is not None else self._dispatcher.next_due()

    def _next_instant(self, job: str, after: datetime) -> datetime | None:
        """A scheduled job's first instant after `after` (the deadline of its retries); None when not scheduled."""
        entry = self._dispatcher.get(job)
        return entry.schedule.next_after(after) if entry is not None else None

    def _spec_of(self, job: str) -> JobSpec | None:
        """A job's spec, scheduled or not (a disabled job's launches are still followed)."""
        entry = self._dispatcher.get(job)
        if entry is not None:
            return entry.spec
        compiled = self._specs.jobs().get(job)
        return compiled.spec if compiled is not None else None

    def _conclude_left_open(self, now: datetime) -> None:
        """Ask again about launches nobody could account for yet: one lookup each, at most once a second and
        within the time before the next instant, so a backend that stays down costs a refused connection per tick,
        not a retry loop inside it, and hundreds left open are concluded a slice per tick."""
        specs = {e.spec.name: e.spec for e in self._dispatcher.entries()}
        self._recovery.conclude_open(specs, lookup_attempts=1, budget=self._slice())
        finished = self._recovery.take_finished()
        self._replays.forget(r.name for r in finished)
        self._results.follow(finished, self._spec_of)
        self._needs_recovery = self._recovery.unanswered > 0
        self._recovery_retry_at = now + RECOVERY_RETRY

    def _launch_due(self, due: list[Entry], now: datetime, stage: Stage | None = None) -> list[LaunchRecord]:
        """Plan (pure), ask the backend what the plan needs, settle (pure), then the launcher's two sync points."""
        retries = self._results.due_retries(now, self._spec_of, self._next_instant)
        triggers = self._store.pending_triggers()
        if self._stage is not None and (triggers or retries):
            self._unstage(self._stage)  # held for a later instant: its jobs may be the ones these name
        paused = self._store.read_paused() if due or stage or retries else set()
        if stage is not None and paused != stage.paused:  # paused or resumed since it was staged: decide anew
            self._launcher.discard(stage.slices)
            due, stage = [*stage.due, *due], None
        earlier = stage.planned if stage else []
        plan = plan_tick(
            due,
            triggers,
            self._dispatcher.get,
            now=now,
            tolerance=self._config.tolerance,
            paused=paused,
            earlier=earlier,
            retries=retries,
            replayed_before=restored_at(self._restored),
            live=self._live,
        )
        self._drop_triggers(plan.dropped)
        found = self._replays.find(plan.finds, self._finds_slice()) if plan.finds else {}
        plan, waiting = hold_unanswered(plan, found)
        self._hold(due, waiting, plan.watermarks)
        self._replays.forget(plan.finds)
        items = settle(plan, self._ask_previous(plan), earlier, found)
        records = self._launcher.execute(chain(stage.rest if stage else (), items), stage.slices if stage else ())
        if self._launcher.left_open:  # submits nobody could account for: conclude them by lookup next tick
            self._launcher.left_open = 0
            self._needs_recovery = True
        self._advance(plan.watermarks | (stage.watermarks if stage else {}), [*earlier, *items])
        self._results.follow(records, self._spec_of)
        # begun (or refused as already recorded), or given up: either way the retried run is concluded
        self._results.retried(p.retry_of for p in items if p.retry_of and p.skip_reason is None)
        gave_up = [p.retry_of for p in items if p.retry_of and p.skip_reason is not None]
        self._results.retried([*gave_up, *(r.previous for r in plan.dropped_retries)], given_up=True)
        self._account(records)
        self._housekeeping.launched(records, [*earlier, *items])
        return records

    def _live(self, job: str) -> Set[str]:
        """A `forbid`/`replace` job's launches that may still run: followed to their end, or left open by recovery."""
        return self._results.live(job) | self._recovery.left_open(job)

    def _ask_previous(self, plan: TickPlan) -> dict[str, Verdict]:
        """The backend's word on each previous launch the plan names (`forbid`/`replace`); fails closed."""
        verdicts: dict[str, Verdict] = {}
        for previous, spec in plan.lookups.items():
            backend = self._backends.for_spec(spec)
            record = self._store.get_launch(previous)
            verdicts[previous] = check_previous(
                spec, previous, record, backend, clock=self._clock, leadership=self._leadership
            )
        return verdicts

    def _hold(self, due: Sequence[Entry], waiting: set[str], decided: Mapping[str, datetime]) -> None:
        """The due jobs a restore's replay could not decide any of back in the dispatcher as they were; those
        decided up to a launch the backend did not answer about go on from there (`decided`, plan.hold_unanswered).
        The next tick asks the backend again."""
        for entry in due:
            if entry.spec.name in waiting and entry.spec.name not in decided:
                self._dispatcher.advance(entry.spec.name, entry.watermark, entry.last_launch)
        if waiting:
            log.warning("replayed launches wait for the backend", extra={"jobs": sorted(waiting)})

    def _drop_triggers(self, dropped: Sequence[TriggerRequest]) -> None:
        for request in dropped:
            extra = {"job": request.job, "trigger": request.id, "epoch": self._leadership.fence.epoch}
            log.warning("trigger for an unknown or disabled job dropped", extra=extra)
            self._store.drop_trigger(self._leadership.fence, request.id)

    def _advance(self, watermarks: Mapping[str, datetime], items: Sequence[Planned]) -> None:
        """Every due job to its next watermark, with the last launch its last item of the tick left; a triggered
        job that was not due keeps its watermark and takes its new last launch."""
        last = {p.spec.name: p.next_state for p in items}
        for job, watermark in watermarks.items():
            state = last.get(job)
            self._dispatcher.advance(job, watermark, state.last_launch if state else None)
        for job in last.keys() - watermarks.keys():
            state = last[job]
            if state.next_scheduled is not None:
                self._dispatcher.advance(job, state.next_scheduled, state.last_launch)

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
        try:
            paused = self._store.read_paused()
            plan = plan_tick(due, (), self._dispatcher.get, now=at, tolerance=self._config.tolerance, paused=paused)
            planned = settle(plan, {})  # stageable jobs need no lookup
            rest = iter(planned)
            slices = self._launcher.prepare(rest, at, self._build_until(at))  # discards what it built if it fails
        except StateStoreError as exc:
            for entry in due:
                self._dispatcher.upsert(entry)
            log.warning("staging failed; planning at the instant", extra={"at": at.isoformat(), "error": str(exc)})
            return None
        built = sum(len(s.items) for s in slices)
        log.debug("staged", extra={"at": at.isoformat(), "jobs": len(due), "built": built})
        return Stage(at, due, paused, planned, plan.watermarks, rest, slices)

    def _build_until(self, at: datetime) -> float:
        """The monotonic time building stops: just before the instant, and a poll interval from now at most (the
        tick between keeps triggers and pauses seen as often as without a stage)."""
        until = min((at - self._clock.now()).total_seconds() - STAGE_MARGIN, self._config.poll_interval)
        return self._clock.monotonic() + until

    def _build_more(self, stage: Stage) -> None:
        """Build more of a held stage's slices (a large instant takes several poll intervals to build)."""
        if stage.at <= self._clock.now():
            return
        try:
            stage.slices.extend(self._launcher.prepare(stage.rest, stage.at, self._build_until(stage.at), first=False))
        except StateStoreError as exc:
            self._unstage(stage)
            extra = {"at": stage.at.isoformat(), "error": str(exc)}
            log.warning("staging failed; planning at the instant", extra=extra)

    def _take_stage(self, now: datetime) -> Stage | None:
        """The stage, if this tick may fire it: at or after its instant, and within tolerance of it. A tick before
        its instant leaves it held (a tick that reads a trigger or a due retry, or sees the specs changed, drops it)."""
        stage = self._stage
        if stage is None or now < stage.at:
            return None
        self._stage = None
        if now <= stage.at + self._config.tolerance:
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

    def _account(self, records: list[LaunchRecord]) -> None:
        for record in records:
            if record.outcome is Outcome.SKIPPED:
                self.state.skipped += 1
            elif record.outcome is Outcome.FAILED:
                self.state.failed += 1
            else:
                self.state.launched += 1
