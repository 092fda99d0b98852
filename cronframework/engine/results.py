"""The leader's side of following launches: what ended becomes the record's result, written once, fenced and batched.

The follower (follower.py) calls backends in its own threads; everything here runs in the leader's thread, after a
tick's launches: take what ended, classify it (`classify`, pure), decide its retry (`plan.decide_retry`, pure),
write the results and the jobs' summaries in one `record_results` batch, then log an event per result and count
it. A write that fails for want of the store keeps its results for the next tick; LeadershipLost ends the session
like any fenced write, and the next leader follows on from the store's list of launches still followed
(`following_launches`), so no result is lost or written twice.

Summaries. Each job's summary is read from the store just before its results are added to it (one multiRead per
batch): the leader keeps in memory only the times the overdue check needs of the jobs with `expect` (`_heads`), so
what it holds does not grow with each run; the strip of last runs lives in the store alone.

Retries. A result with a retry to come is written with `retry_at` and stays on the store's list; when that time
comes the tick plans the retry (`due_retries`) and, once the retry's record is begun, the retried run is concluded
(`retry_at` cleared) in the next results batch. A leader that dies in between leaves the retried run listed with
`retry_at`: its successor finds the retry's record already there and concludes it, or plans the retry itself
(begun by name, so never twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, replace
from datetime import datetime

from cronframework import metrics
from cronframework.abc import Clock, Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.crashhook import maybe_crash
from cronframework.engine.follower import Ended, FollowConfig, ResultFollower
from cronframework.engine.notify import Notifier
from cronframework.engine.plan import DueRetry, decide_retry
from cronframework.errors import LeadershipLost, StateStoreError
from cronframework.launch import BackendStatus, LaunchState
from cronframework.records import JobResults, LaunchRecord, Notice, Outcome, ResultBatch, TaskResult
from cronframework.spec.model import Concurrency, JobSpec

SpecOf = Callable[[str], JobSpec | None]  # the spec of a job the leader knows (scheduled or not), by name
NextInstant = Callable[[str, datetime], datetime | None]  # a scheduled job's first instant after one, by name
log = logging.getLogger("cronframework.results")
_NONE: frozenset[str] = frozenset()
NOT_FOUND = "the backend has no record of the launch"
JOB_GONE = "not followed: the job no longer exists"


@dataclass(frozen=True)
class Verdict:
    """What a terminal status means for the record (`LaunchRecord.with_result`'s arguments)."""

    result: TaskResult
    reason: str | None
    exit_code: int | None
    started_at: datetime | None
    ended_at: datetime | None


def with_verdict(record: LaunchRecord, verdict: Verdict) -> LaunchRecord:
    """`record` with its task's end written in as `verdict` says."""
    return record.with_result(
        verdict.result,
        reason=verdict.reason,
        exit_code=verdict.exit_code,
        started_at=verdict.started_at,
        ended_at=verdict.ended_at,
    )


def classify(status: BackendStatus | None, *, stopped_for_timeout: bool, now: datetime) -> Verdict:
    """The result of a launch its backend reports terminal (None: no longer known). A launch the leader stopped past
    its `task.timeout` (Docker, Nomad) timed out, whatever the backend calls the stop."""
    if status is None:
        return Verdict(TaskResult.LOST, NOT_FOUND, None, None, now)
    ended = status.finished_at or now
    if status.state is LaunchState.SUCCEEDED:
        result = TaskResult.SUCCEEDED
    elif status.state is LaunchState.LOST:
        result = TaskResult.LOST
    elif status.timed_out or stopped_for_timeout:
        result = TaskResult.TIMED_OUT
    else:
        result = TaskResult.FAILED
    return Verdict(result, status.reason, status.exit_code, status.started_at, ended)


class Results:
    def __init__(
        self,
        store: LeaderStore,
        backends: BackendSet,
        leadership: Leadership,
        clock: Clock,
        config: FollowConfig | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self._store, self._backends, self._leadership, self._clock = store, backends, leadership, clock
        self.follower = ResultFollower(clock, config)
        self._config = config or FollowConfig()
        self.notifier = notifier or Notifier()
        self._expecting: dict[str, JobSpec] = {}  # jobs with `expect`: watched for overdue
        self._heads: dict[str, JobResults] = {}  # their summaries without the strip of last runs (`_head`)
        self._stopped_for_timeout: set[str] = set()
        self._unwritten: list[Ended] = []  # taken, and not yet written (the store failed): written next tick
        self._retries: dict[str, LaunchRecord] = {}  # runs with a retry to come, by name
        # the followed launches of `forbid`/`replace` jobs, by job: a new launch of the job asks about each
        self._exclusive: dict[str, set[str]] = {}
        # retried runs whose retry was decided, `retry_at` cleared in the next write; True: given up (the retry was
        # skipped or dropped), so the run's failure is final
        self._concluding: list[tuple[LaunchRecord, bool]] = []

    def resume(self, spec_of: SpecOf) -> None:
        """At promotion: the jobs' summaries (for the metrics; `expect` keeps the heads of those it watches), and every
        launch the last leader left to follow or to retry."""
        self._heads = self._load_heads()
        following = self._store.following_launches()
        self.follow(following, spec_of, soon=True)  # they may have ended while no leader watched
        for record in following:
            if record.retry_at is not None:
                self._pending_retry(record)

    def _load_heads(self) -> dict[str, JobResults]:
        """Every job's summary, as read (`expect`, which comes next, keeps the heads of the jobs it watches only)."""
        summaries = self._store.read_job_results()
        metrics.job_results_loaded(summaries.values())
        return summaries

    def _pending_retry(self, record: LaunchRecord) -> None:
        """A run with a retry to come, found at promotion: concluded if its retry was begun already."""
        retry = record.identity.retry(record.task_attempt + 1).name
        found = self._store.get_launch(retry)
        if found is not None:
            self._concluding.append((replace(record, retry_at=None), found.outcome is Outcome.SKIPPED))
        else:
            self._retries[record.name] = record

    def follow(self, records: Iterable[LaunchRecord], spec_of: SpecOf, *, soon: bool = False) -> None:
        """Follow each record that is launched and not concluded; one whose job is gone is concluded as lost."""
        by_backend: dict[str, list[LaunchRecord]] = {}
        for record in records:
            if not record.following or record.result is not None:
                continue
            spec = spec_of(record.job)
            if spec is None:
                self._unwritten.append(Ended(record, None))
                continue
            by_backend.setdefault(spec.backend, []).append(record)
            if spec.concurrency is not Concurrency.ALLOW:
                self._exclusive.setdefault(record.job, set()).add(record.name)
        for name, followed in by_backend.items():
            self.follower.follow(name, self._backends.get(name), followed, soon=soon)
        metrics.following(len(self.follower))

    def expect(self, specs: Iterable[JobSpec]) -> None:
        """The jobs the leader schedules (at promotion and after spec changes): those with `expect` are watched, and
        the launches of `concurrency: forbid | replace` jobs are indexed by job (a job may have just turned so)."""
        specs = list(specs)
        exclusive = {s.name for s in specs if s.concurrency is not Concurrency.ALLOW}
        self._exclusive = self.follower.names_by_job(exclusive)
        self._expecting = {s.name: s for s in specs if s.expect is not None}
        self._heads = {job: _head(head) for job, head in self._heads.items() if job in self._expecting}
        metrics.job_results_loaded(self._heads.values(), self._expecting)

    def live(self, job: str) -> Set[str]:
        """The launches of a `forbid`/`replace` job followed and not yet seen ended."""
        return self._exclusive.get(job, _NONE)

    def stopped_for_timeout(self, names: Iterable[str]) -> None:
        """Launches the run-time limits stopped: their end is a time-out, not a failure."""
        self._stopped_for_timeout.update(names)

    def due_retries(self, now: datetime, spec_of: SpecOf, next_instant: NextInstant) -> list[DueRetry]:
        """The retries whose time has come, for the tick to plan; each stays pending until `retried`."""
        due = []
        for record in self._retries.values():
            if record.retry_at is not None and record.retry_at <= now:
                spec = spec_of(record.job)
                past_next = spec is not None and spec.retry is not None and spec.retry.past_next
                deadline = None if past_next else next_instant(record.job, record.scheduled)
                identity = record.identity.retry(record.task_attempt + 1)
                due.append(DueRetry(identity, record.name, deadline))
        return due

    def retried(self, names: Iterable[str], *, given_up: bool = False) -> None:
        """The runs whose retry this tick began, or gave up (recorded it skipped, or dropped it: the run's failure is
        then final): concluded in the next write."""
        for name in names:
            record = self._retries.pop(name, None)
            if record is not None:
                self._concluding.append((replace(record, retry_at=None), given_up))

    def after_tick(self, spec_of: SpecOf, next_instant: NextInstant, *, busy: bool = False) -> list[LaunchRecord]:
        """Write what ended since the last tick, with each one's retry decided; returns the results written. `busy`
        (an instant is near) writes fewer at once, leaving the rest for the next tick."""
        self.follower.step()
        taken = [*self._unwritten, *self.follower.take()]
        self._not_live(item.record for item in taken)
        config = self._config
        cap = config.max_results_per_tick if busy else config.max_results_per_quiet_tick
        ended, self._unwritten = taken[:cap], taken[cap:]  # the rest next tick
        concluding, self._concluding = self._concluding, []
        if not ended and not concluding and not self._expecting:
            return []
        now = self._clock.now()
        jobs = {item.record.job for item in ended} | {r.job for r, gave_up in concluding if gave_up}
        try:
            stored = self._stored(jobs, self._overdue_candidates(now))
        except LeadershipLost:
            raise
        except StateStoreError as exc:
            self._put_back(ended, concluding, exc)
            return []
        records = [self._retry(self._with_result(item, spec_of, now), spec_of, next_instant) for item in ended]
        given_up = [r for r, gave_up in concluding if gave_up]
        summaries, notices = self._summaries(records, given_up, spec_of, now, stored)
        notices += self._overdue(summaries, stored, now)
        failed = {r.job for r in records if r.retry_at is None and r.result is not TaskResult.SUCCEEDED}
        pause = self._suspend(summaries, failed | {r.job for r in given_up}, spec_of)
        batch = ResultBatch([*records, *(r for r, _ in concluding)], list(summaries.values()), notices, pause)
        if not batch:
            return []
        try:
            self._store.record_results(self._leadership.fence, batch)
        except LeadershipLost:
            raise
        except StateStoreError as exc:
            self._put_back(ended, concluding, exc)
            return []
        self._remember(summaries)
        self._retries.update({r.name: r for r in records if r.retry_at is not None})
        self._done(records, summaries.values())
        if records:
            maybe_crash("after_results", records[0].job)  # written and logged; its notices not yet sent
        self.notifier.wrote(notices)
        return records

    def _not_live(self, records: Iterable[LaunchRecord]) -> None:
        for record in records:
            names = self._exclusive.get(record.job)
            if names is not None:
                names.discard(record.name)
                if not names:
                    del self._exclusive[record.job]

    def _put_back(self, ended: list[Ended], concluding: list[tuple[LaunchRecord, bool]], exc: StateStoreError) -> None:
        """The store failed: these are written next tick."""
        self._unwritten, self._concluding = ended + self._unwritten, concluding + self._concluding
        log.warning("task results not written; again next tick", extra={"count": len(ended), "error": str(exc)})

    def _stored(self, jobs: set[str], watched: set[str]) -> dict[str, JobResults]:
        """The summaries of `jobs` (their results come in) and of `watched` (jobs with `expect` whose summary may
        change without one), as the store has them: one entry each, a fresh summary for a job without one yet."""
        asked = jobs | watched
        found = self._store.read_job_results(asked) if asked else {}
        stored = {job: found.get(job) or JobResults(job) for job in asked}
        self._remember({job: stored[job] for job in watched})
        metrics.job_results_loaded((stored[job] for job in watched), self._expecting)
        return stored

    def _remember(self, summaries: dict[str, JobResults]) -> None:
        self._heads.update({job: _head(s) for job, s in summaries.items() if job in self._expecting})

    def _with_result(self, item: Ended, spec_of: SpecOf, now: datetime) -> LaunchRecord:
        record = item.record
        if item.status is None and spec_of(record.job) is None:
            verdict = Verdict(TaskResult.LOST, JOB_GONE, None, None, now)
        else:
            timed_out = record.name in self._stopped_for_timeout
            verdict = classify(item.status, stopped_for_timeout=timed_out, now=now)
        return with_verdict(record, verdict)

    def _retry(self, record: LaunchRecord, spec_of: SpecOf, next_instant: NextInstant) -> LaunchRecord:
        spec = spec_of(record.job)
        decision = decide_retry(record, spec, next_instant(record.job, record.scheduled))
        if decision.at is None:
            if spec is not None and spec.retry is not None and record.result is not TaskResult.SUCCEEDED:
                log.info("not retried", extra={"job": record.job, "launch": record.name, "why": decision.why})
            return record
        log.info("retry planned", extra={"job": record.job, "launch": record.name, "retry": decision.why})
        return replace(record, retry_at=decision.at)

    def _summaries(
        self,
        records: list[LaunchRecord],
        given_up: list[LaunchRecord],
        spec_of: SpecOf,
        now: datetime,
        stored: dict[str, JobResults],
    ) -> tuple[dict[str, JobResults], list[Notice]]:
        """Each job's summary once these results are in, and the notifications they raise (in order of their ends,
        so that a success after a failure in the same batch is a recovery). A result the stored summary has already
        (a batch written again after a write that applied in part) is not counted twice."""
        out: dict[str, JobResults] = {}
        notices: list[Notice] = []
        for record in given_up:
            previous = out.get(record.job) or stored[record.job]
            if previous.last_launch == record.name:
                continue
            out[record.job] = previous.conclude(record, now=now)
            notices += self.notifier.for_given_up(record, spec_of(record.job))
        for record in sorted(records, key=lambda r: (r.ended_at or now, r.name)):
            previous = out.get(record.job) or stored[record.job]
            if any(run.launch == record.name for run in previous.recent):
                continue
            out[record.job] = previous.add(record, final=record.retry_at is None, now=now)
            spec = spec_of(record.job)
            if self.notifier.wants(spec):
                notices += self.notifier.for_result(record, spec, previous)
        return out, notices

    def _overdue_candidates(self, now: datetime) -> set[str]:
        """The jobs with `expect` whose summary this tick may change (their overdue clock starts, or they become
        overdue), judged from what the leader keeps of them."""
        return {
            job
            for job, spec in self._expecting.items()
            if _turns_overdue(self._heads.get(job) or JobResults(job), spec, now) is not None
        }

    def _overdue(self, out: dict[str, JobResults], stored: dict[str, JobResults], now: datetime) -> list[Notice]:
        """Jobs with `expect` that have not succeeded within `success_within` since their last success (or since
        first watched) become overdue: once per spell, until their next success. A job that was not read this tick
        cannot change (`_overdue_candidates`)."""
        notices: list[Notice] = []
        for job, spec in self._expecting.items():
            summary = out.get(job) or stored.get(job)
            if summary is None:
                continue
            turned = _turns_overdue(summary, spec, now)
            if turned is None:
                continue
            out[job] = turned
            if turned.overdue_since is not None and summary.overdue_since is None:
                baseline = summary.last_success or summary.since
                assert baseline is not None
                notices += self.notifier.for_overdue(spec, baseline, now)
                log.warning("job overdue", extra={"job": job, "since": baseline.isoformat()})
        return notices

    def _suspend(self, out: dict[str, JobResults], failed: set[str], spec_of: SpecOf) -> list[str]:
        """Jobs that just failed (finally) and whose failures in a row reached `suspend_after_failures` are paused
        (with the reason in their summary), unless paused already. A resumed job that fails again is suspended again;
        a success resets the count."""
        due = []
        for job in failed:
            spec = spec_of(job)
            limit = spec.suspend_after_failures if spec is not None else None
            if limit is not None and out[job].failures >= limit:
                due.append(job)
        if not due:
            return []
        paused = self._store.read_paused()
        pause = [job for job in due if job not in paused]
        for job in pause:
            summary = out[job]
            reason = f"suspended after {summary.failures} failed results in a row (last: {summary.last_launch})"
            out[job] = replace(summary, suspended=reason)
            log.warning("job suspended", extra={"job": job, "reason": reason})
        return pause

    @property
    def pending_retries(self) -> int:
        return len(self._retries)

    def _done(self, records: list[LaunchRecord], summaries: Iterable[JobResults]) -> None:
        epoch = self._leadership.fence.epoch
        for record in records:
            self._stopped_for_timeout.discard(record.name)
            log.info("task result recorded", extra={**result_fields(record), "epoch": epoch})
        metrics.task_results(records, summaries, self._expecting)
        metrics.following(len(self.follower))

    def close(self) -> None:
        self.follower.close()


def _head(summary: JobResults) -> JobResults:
    """What the leader keeps of a watched job's summary: its times, without the strip of last runs or any text."""
    return replace(summary, recent=(), last_launch=None, suspended=None)


def _turns_overdue(summary: JobResults, spec: JobSpec, now: datetime) -> JobResults | None:
    """The summary of a job with `expect` once this tick's overdue check is done, or None when it does not change:
    its overdue clock starts now (never watched before), or it has not succeeded within `success_within`."""
    assert spec.expect is not None
    baseline = summary.last_success or summary.since
    if baseline is None:
        return replace(summary, since=now)
    if summary.overdue_since is None and now - baseline >= spec.expect.success_within:
        return replace(summary, overdue_since=now)
    return None


def result_fields(record: LaunchRecord) -> dict[str, object]:
    """A result's log fields (the JSON log's stable keys); one without a value is left out."""
    fields = {
        "job": record.job,
        "launch": record.name,
        "result": record.result.value if record.result else None,
        "exit_code": record.exit_code,
        "result_reason": record.result_reason,
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
        "duration": record.duration,
        "task_attempt": record.task_attempt,
        "retry_at": record.retry_at.isoformat() if record.retry_at else None,
    }
    return {key: value for key, value in fields.items() if value is not None}
