"""The two synchronization points around backend.submit, batched for herds.

    sync point one  store.begin(records + advanced job states)   -- ZooKeeper confirms before any backend call
    submit          backend.submit(name) per launch, in parallel, idempotent, bounded retries
    sync point two  store.finish(records with outcomes)

If the leader dies after sync point one, the records stay open and the next leader concludes them by lookup
(recovery.py). If it dies before, the job's watermark did not move and the next leader launches the same identity
under the same name. Skipped instants are written already finished in sync point one: they never call a backend.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import chain, islice
from queue import Empty, SimpleQueue
from typing import Any, cast

from cronframework import metrics
from cronframework.abc import Backend, Clock, Confirming, Leadership, LeaderStore, PreparedBegin
from cronframework.adapters import BackendSet
from cronframework.crashhook import maybe_crash
from cronframework.engine.notify import Notifier
from cronframework.engine.plan import Planned
from cronframework.engine.submit import register_first, submit_with_retries
from cronframework.errors import BackendError, BeginRefused, ConflictError, CronframeworkError, LeadershipLost
from cronframework.launch import Launch, LaunchState, SubmitOutcome
from cronframework.naming import LaunchIdentity
from cronframework.records import Begin, LaunchRecord, Notice, Outcome
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.launcher")
Pending = tuple[int, Callable[[], "LaunchRecord | None"]]  # a launch's index in its batch and the rest of its submit
Submitted = tuple[list[tuple[Planned, LaunchRecord]], list[LaunchRecord]]  # a slice begun; what its submits finished
Written = tuple[list[LaunchRecord], list[LaunchRecord]]  # sync point two written: the finished records, the skipped
# launches in a herd's first slice: its submits start once a small sync point one is committed, not a whole slice's
# (1,000 records took ZooKeeper 0.07 s, while the backend waited: issue 18, docs/benchmarks.md)
FIRST_SLICE = 100


@dataclass(frozen=True)
class SentBegin:
    """A slice's sync point one on its way: the records, the call that waits for the store's answer, and whether
    the store refused it at once (a store that applies at once)."""

    items: list[tuple[Planned, LaunchRecord]]
    wait: Callable[[], None]
    refused: bool = False


@dataclass(frozen=True)
class PreparedSlice:
    """Up to one slice of launches with sync point one built and not sent (`Launcher.prepare`)."""

    items: list[tuple[Planned, LaunchRecord]]
    begin: PreparedBegin


class Launcher:
    def __init__(
        self,
        store: LeaderStore,
        backends: BackendSet,
        leadership: Leadership,
        clock: Clock,
        *,
        cluster: str,
        workers: int = 16,
        slice_size: int = 1000,
        finish_every: int = 10_000,
        notifier: Notifier | None = None,
    ) -> None:
        self._store = store
        self._notifier = notifier or Notifier()
        self._backends = backends
        self._leadership = leadership
        self._clock = clock
        self._cluster = cluster
        self._workers = workers
        self._slice = slice_size  # launches per pipeline stage (see `execute`)
        self._finish_every = finish_every
        self._pools: dict[str, ThreadPoolExecutor] = {}  # per blocking backend, made on its first launch
        self._pools_lock = threading.Lock()
        self.left_open = 0  # launches whose outcome nobody could tell; the leader runs recovery for them
        self._build_cost = 0.0  # seconds per launch to plan and build sync point one, as last measured (`prepare`)

    def execute(self, planned: Iterable[Planned], staged: Sequence[PreparedSlice] = ()) -> list[LaunchRecord]:
        """Run both sync points for a batch; returns the finished records. LeadershipLost propagates.

        `staged` slices (from `prepare`, built before their instant) go first, then `planned`, built slice by
        slice as it goes. A herd is cut into slices that flow through a pipeline: this thread commits sync point
        one slice after slice, while a second thread submits each begun slice at once. Sync point two waits until
        the herd is all begun, or `finish_every` launches are submitted, so that ZooKeeper and the GIL serve the
        launches first, and a third thread writes it while the submits go on; the launches' log lines and counts
        follow the herd's last sync point two. Every launch still has its record committed before its submit,
        every sync point two is confirmed before `execute` returns, and a launch submitted but not yet finished is
        an open record that recovery concludes by lookup if this leader dies.
        """
        items = iter(planned)
        parts = self._cut(items, first=not staged)
        head: list[PreparedSlice | list[Planned]] = [*staged, *islice(parts, max(0, 2 - len(staged)))]
        slices = (s if isinstance(s, PreparedSlice) else self._prepare(s) for s in chain(head, parts))
        if len(head) == 1:
            begun, _ = self._confirm_begin(self._send_begin(next(slices)))
            return self._finish(begun, self._submit_begun(begun))
        return self._pipelined(slices) if head else []

    def prepare(
        self, planned: Iterator[Planned], at: datetime, until: float, *, first: bool = True
    ) -> list[PreparedSlice]:
        """Build whole slices of `planned` -- records dated `at`, their instant, and sync point one encoded --
        while the next one can be done before the monotonic clock reaches `until`; nothing is sent. What is left
        of `planned` is built by `execute` as before (`first`: nothing of this instant is built yet, so the first
        slice is a small one, `FIRST_SLICE`). A slice that ran past `until` would delay its instant's
        every launch, so each is priced from what building the previous ones cost (a busy loop at 100k jobs a
        minute has a tenth of a second to spare, less than one slice)."""
        slices: list[PreparedSlice] = []
        clock = self._clock
        parts = self._cut(planned, first=first)  # planned lazily: the planning is part of the price
        try:
            while clock.monotonic() + self._slice * self._build_cost < until:
                started = clock.monotonic()
                part = next(parts, [])
                if not part:
                    break
                slices.append(self._prepare(part, at))
                self._prepare_writes(part)
                self._build_cost = (clock.monotonic() - started) / len(part)
        except BaseException:
            self.discard(slices)  # the store must not count on what the built ones assumed
            raise
        return slices

    def _prepare_writes(self, planned: Sequence[Planned]) -> None:
        """A staged slice's writes to `Confirming` backends, built before their instant (`Confirming.prepare`): a
        Nomad registration's job and JSON were about 40 % of the leader's CPU for it at the instant (issue 18). A
        launch whose backend cannot be had now is left to its submit, which says why."""
        launches: dict[int, tuple[Confirming, list[Launch]]] = {}
        for item in planned:
            if item.skip_reason is not None:
                continue
            try:
                backend = self._backends.for_spec(item.spec)
            except CronframeworkError:
                continue
            if backend.confirms:
                entry = launches.setdefault(id(backend), (cast(Confirming, backend), []))
                entry[1].append(self.launch_for(item.spec, item.identity))
        for confirming, batch in launches.values():
            confirming.prepare(batch)

    def _cut(self, items: Iterator[Planned], *, first: bool) -> Iterator[list[Planned]]:
        """Slices of `items`, the first of them small when `first` (`FIRST_SLICE`)."""
        if first and (part := list(islice(items, min(FIRST_SLICE, self._slice)))):
            yield part
        yield from iter(lambda: list(islice(items, self._slice)), [])

    @staticmethod
    def discard(staged: Sequence[PreparedSlice]) -> None:
        for part in staged:
            part.begin.discard()

    def _pipelined(self, slices: Iterable[PreparedSlice]) -> list[LaunchRecord]:
        """Every slice whose sync point one was confirmed is submitted and finished, whatever failed after it;
        after a failure in either stage no new slice is begun or submitted; then the first error propagates."""
        handoff: SimpleQueue[list[tuple[Planned, LaunchRecord]] | None] = SimpleQueue()
        records: list[LaunchRecord] = []
        stage_errors: list[BaseException] = []  # the launch stage's own: it stops submitting after one

        def launch_stage() -> None:
            finishing: SimpleQueue[list[Submitted] | None] = SimpleQueue()
            finisher = threading.Thread(target=finish_stage, args=(finishing,), name="finish-stage", daemon=True)
            finisher.start()
            submitted: list[Submitted] = []
            herd = _Herd(self, stage_errors)
            try:
                while (begun := handoff.get()) is not None:
                    if stage_errors:  # no new submit; what was submitted is still finished
                        continue
                    self._guarded(stage_errors, herd.add, begun)
                    submitted += herd.done()
                    if sum(len(b) for b, _ in submitted) >= self._finish_every:
                        finishing.put(submitted)
                        submitted = []
                herd.close()
                finishing.put(submitted + herd.done())
            finally:
                herd.close()
                finishing.put(None)
                finisher.join()

        def finish_stage(finishing: SimpleQueue[list[Submitted] | None]) -> None:
            """Sync point two of each batch, in order, while the launch stage goes on submitting: waiting for
            ZooKeeper to confirm 10k finished records had held up the next slices' submits. The log lines and
            counts of the launches written (two thirds of this thread's CPU: 17 us a line) come after the
            herd's last write, so that no write and no submit waits behind them on two cores."""
            written, last = [], False
            while not last:
                batch, last = _waiting(finishing)
                written.append(self._write_submitted(batch, stage_errors))
            for finished, skipped in written:
                records.extend(self._guarded(stage_errors, self._account, finished, skipped))

        stage = threading.Thread(target=launch_stage, name="launch-stage", daemon=True)
        stage.start()
        failure: BaseException | None = None
        try:
            self._begin_slices(slices, handoff, stage_errors)
        except BaseException as exc:
            failure = exc
        finally:
            handoff.put(None)
            stage.join()
        if failure is not None:
            raise failure
        if stage_errors:
            raise stage_errors[0]
        return records

    def _begin_slices(
        self,
        slices: Iterable[PreparedSlice],
        handoff: SimpleQueue[list[tuple[Planned, LaunchRecord]] | None],
        stage_errors: list[BaseException],
    ) -> None:
        """Double-buffered: slice k+1 is planned, built and sent while the store commits slice k. Once a slice had
        to be begun again (a record it makes already existed), each slice is confirmed before the next is sent: a
        slice applied ahead of one still to be begun again could move a job's watermark past that one's instants
        (the store refuses one sent behind a failed one; it is begun again in its turn)."""
        parts = iter(slices)
        in_flight: SentBegin | None = None
        ordered = False
        while not stage_errors:
            if in_flight is not None and (ordered or in_flight.refused):
                ordered |= self._hand_off(in_flight, handoff)
                in_flight = None
            try:
                part = next(parts, None)  # building it reads the store too: inside the guard below
                sent = None if part is None else self._send_begin(part)
            finally:  # slice k is confirmed and launched even when building or sending slice k+1 failed
                if in_flight is not None:
                    previous, in_flight = in_flight, None
                    ordered |= self._hand_off(previous, handoff)
            if sent is None:
                return
            in_flight = sent
        # the launch stage failed: nothing more is launched; what is in flight stays open for recovery

    def _hand_off(self, sent: SentBegin, handoff: SimpleQueue[list[tuple[Planned, LaunchRecord]] | None]) -> bool:
        """Confirm a sent slice and hand what it began to the launch stage; whether it had to be begun again."""
        begun, again = self._confirm_begin(sent)
        handoff.put(begun)
        return again

    @staticmethod
    def _guarded(errors: list[BaseException], step: Callable[..., Any], *args: Any) -> list[LaunchRecord]:
        """Run a launch-stage step; its error goes to the caller's thread through `errors`."""
        try:
            return step(*args) or []
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)
            return []

    def _write_submitted(self, submitted: list[Submitted], errors: list[BaseException]) -> Written:
        """Sync point two of the slices submitted; what was written, for `_account`. A failed write is left to
        recovery: its records stay open, and its launches are neither logged nor counted as finished."""
        begun = [pair for slice_begun, _ in submitted for pair in slice_begun]
        finished = [record for _, slice_finished in submitted for record in slice_finished]
        try:
            return self._write_finish(begun, finished)
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)
            return [], []

    def _prepare(self, planned: Sequence[Planned], at: datetime | None = None) -> PreparedSlice:
        """Sync point one, built: the records (dated `at`, else now) and the store's transaction for them."""
        fence = self._leadership.fence
        now = at or self._clock.now()
        return self._prepare_items([(p, self._record(p, now, fence.replica, fence.epoch)) for p in planned])

    def _prepare_items(self, items: list[tuple[Planned, LaunchRecord]]) -> PreparedSlice:
        begins = [Begin(r, p.next_state, p.trigger_id, self._skip_notices(p, r)) for p, r in items]
        return PreparedSlice(items, self._store.prepare_begin(self._leadership.fence, begins))

    def _skip_notices(self, planned: Planned, record: LaunchRecord) -> tuple[Notice, ...]:
        """A skipped instant's notifications, written with its record (one cheap test per launch of a herd)."""
        if planned.skip_reason is None or not self._notifier.wants(planned.spec):
            return ()
        return self._notifier.for_skip(record, planned.spec)

    @staticmethod
    def _send_begin(part: PreparedSlice) -> SentBegin:
        """Sync point one, sent: the records and the call that waits for the store to confirm them."""
        try:
            return SentBegin(part.items, part.begin.send())
        except ConflictError as exc:  # a store that applies at once refuses at once: confirm it the same way
            return SentBegin(part.items, partial(_raise, exc), refused=True)

    def _confirm_begin(self, sent: SentBegin, *, again: bool = True) -> tuple[list[tuple[Planned, LaunchRecord]], bool]:
        """What sync point one confirmed, to be launched, and whether any of it had to be begun again. A record
        that already existed (a manual trigger in the same second, a replay) fails its transaction: the launches
        of transactions that did apply are kept, the rest are begun one by one. A slice the store refused untried,
        sent behind one that failed (`BeginRefused`), is sent again whole."""
        items = sent.items
        try:
            sent.wait()
            begun, redone = items, False
        except BeginRefused as exc:
            if not again:
                raise
            applied = set(exc.applied)
            begun = [(p, r) for p, r in items if r.name in applied]
            rest = [(p, r) for p, r in items if r.name not in applied]
            begun += self._confirm_begin(self._send_begin(self._prepare_items(rest)), again=False)[0]
            redone = True
        except ConflictError as exc:
            applied = set(exc.applied)
            begun = [(p, r) for p, r in items if r.name in applied]
            begun += self._begin_one_by_one([(p, r) for p, r in items if r.name not in applied])
            redone = True
        self._notifier.wrote(n for p, r in begun for n in self._skip_notices(p, r))
        launching = sum(p.skip_reason is None for p, _ in begun)
        metrics.launches_begun(launching)
        if launching:
            maybe_crash("after_sync_one", next(r.job for p, r in begun if p.skip_reason is None))
        return begun, redone

    def _submit_begun(self, begun: list[tuple[Planned, LaunchRecord]]) -> list[LaunchRecord]:
        """A single slice's submits, in order (a herd of several goes through `_Herd` in `_pipelined`)."""
        errors: list[BaseException] = []
        herd = _Herd(self, errors)
        try:
            herd.add(begun)
        finally:
            herd.close()
        if errors:
            raise errors[0]
        return [record for _, finished in herd.done() for record in finished]

    def _finish(self, begun: list[tuple[Planned, LaunchRecord]], finished: list[LaunchRecord]) -> list[LaunchRecord]:
        return self._account(*self._write_finish(begun, finished))

    def _write_finish(self, begun: list[tuple[Planned, LaunchRecord]], finished: list[LaunchRecord]) -> Written:
        """Sync point two; the records it finished and the skipped ones among `begun`, for `_account`."""
        if finished:
            specs = {r.name: p.spec for p, r in begun}
            notices = [n for r in finished for n in self._failure_notices(r, specs[r.name])]
            self._store.finish(self._leadership.fence, finished, notices)  # sync point two
            self._notifier.wrote(notices)
            maybe_crash("after_sync_two", finished[0].job)
        return finished, [r for p, r in begun if p.skip_reason is not None]

    @staticmethod
    def _account(finished: list[LaunchRecord], skipped: list[LaunchRecord]) -> list[LaunchRecord]:
        """The log lines and counts of launches whose sync point two is written (or that were skipped)."""
        for record in finished:
            log.info("launch outcome recorded", extra=_fields(record))  # sync point two: not the task's end
        for record in skipped:
            log.info("launch skipped", extra=_fields(record))
        metrics.launches_finished(finished + skipped, were_open=len(finished))
        return finished + skipped

    def _failure_notices(self, record: LaunchRecord, spec: JobSpec) -> tuple[Notice, ...]:
        if record.outcome is not Outcome.FAILED or not self._notifier.wants(spec):
            return ()
        return self._notifier.for_failed_launch(record, spec)

    def _pool_for(self, backend: str) -> ThreadPoolExecutor:
        with self._pools_lock:
            pool = self._pools.get(backend)
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=f"submit-{backend}")
                self._pools[backend] = pool
            return pool

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)

    def _begin_one_by_one(self, items: list[tuple[Planned, LaunchRecord]]) -> list[tuple[Planned, LaunchRecord]]:
        """A record already existed (a manual trigger in the same second, or a replay): keep the others."""
        kept = []
        for planned, record in items:
            try:
                self._store.begin(self._leadership.fence, [Begin(record, planned.next_state, planned.trigger_id)])
                kept.append((planned, record))
            except BeginRefused:
                raise  # untried, not "already recorded": the tick fails, and its instants are decided again
            except ConflictError:
                log.warning("launch already recorded; not launching it again", extra=_fields(record))
        return kept

    @staticmethod
    def _record(planned: Planned, now: datetime, replica: str, epoch: int) -> LaunchRecord:
        record = LaunchRecord.begin(planned.identity, leader=replica, epoch=epoch, now=now)
        if planned.skip_reason is not None:
            return record.finish(Outcome.SKIPPED, now=now, reason=planned.skip_reason)
        return record

    def _stopped(self, backend: Backend, previous: str) -> bool:
        """`concurrency: replace`, after sync point one: the new launch's record is written, so a leader that dies
        here leaves it open for recovery rather than the previous launch stopped with nothing recorded."""
        self._leadership.check()
        try:
            backend.stop(previous)
        except BackendError as exc:
            log.warning("previous launch not stopped", extra={"launch": previous, "error": str(exc)})
            return False
        log.info("previous launch stopped (concurrency: replace)", extra={"launch": previous})
        return True

    def launch_for(self, spec: JobSpec, identity: LaunchIdentity, attempt: int = 1) -> Launch:
        epoch = self._leadership.fence.epoch
        return Launch(identity=identity, spec=spec, attempt=attempt, leader_epoch=epoch, cluster=self._cluster)

    def _submit(self, planned: Planned, record: LaunchRecord) -> LaunchRecord | None:
        """The finished record, or None to leave it open for recovery (the backend could not say what happened)."""
        launch = self.launch_for(planned.spec, planned.identity)
        backend = self._backends.for_spec(planned.spec)
        refused = self._not_replaced(backend, planned, record)
        return refused or self._submitted(backend, launch, record, planned)

    def _start(self, planned: Planned, record: LaunchRecord) -> Callable[[], LaunchRecord | None]:
        """A launch's first step, the rest of `_submit` returned: for a `Confirming` backend the first attempt's
        write alone (its check and any retry are the rest); for any other backend the whole submit."""
        backend = self._backends.for_spec(planned.spec)
        if not backend.confirms:
            return partial(_given, self._submit(planned, record))
        launch = self.launch_for(planned.spec, planned.identity)
        refused = self._not_replaced(backend, planned, record)
        if refused is not None:
            return partial(_given, refused)
        first = register_first(cast(Confirming, backend), launch, clock=self._clock, leadership=self._leadership)
        return partial(self._submitted, backend, launch, record, planned, first)

    def _not_replaced(self, backend: Backend, planned: Planned, record: LaunchRecord) -> LaunchRecord | None:
        """`concurrency: replace` whose previous launch could not be stopped: the record, failed; else None."""
        unstopped = next((name for name in planned.replaces if not self._stopped(backend, name)), None)
        if unstopped is None:
            return None
        reason = f"could not stop previous launch {unstopped}; not launched (concurrency: replace)"
        return record.finish(Outcome.FAILED, now=self._clock.now(), reason=reason)

    def _submitted(
        self,
        backend: Backend,
        launch: Launch,
        record: LaunchRecord,
        planned: Planned,
        first: Callable[[], SubmitOutcome] | None = None,
    ) -> LaunchRecord | None:
        result = submit_with_retries(
            backend,
            launch,
            clock=self._clock,
            leadership=self._leadership,
            deadline=planned.deadline,
            first=first,
            may_exist=planned.replayed,
        )
        now = self._clock.now()
        if not result.ambiguous:
            return record.finish(result.outcome, now=now, reason=result.reason, attempt=result.attempts)
        # A submit that failed transiently may have landed, and a replayed launch may have been made by the cluster
        # a restore replaced: "failed" is only true if the backend has no such launch. After a timeout even "not
        # found" is not final -- the request may still be inside a slow daemon -- so the record stays open and
        # recovery settles it next tick (found, or resubmitted idempotently by name).
        try:
            self._leadership.check()
            status = backend.lookup(launch.name)
        except BackendError:
            self.left_open += 1
            return None
        if (status is None and result.in_doubt) or (status is not None and status.state is LaunchState.PENDING):
            # a launch made but not begun (Docker: created, never started) runs only if somebody starts it: recovery
            # resubmits a pending launch by name, which starts it
            self.left_open += 1
            return None
        if status is None:
            return record.finish(result.outcome, now=now, reason=result.reason, attempt=result.attempts)
        reason = f"the submit failed ({result.reason}) but the backend has the launch"
        return record.finish(
            Outcome.ALREADY_EXISTED, now=now, reason=reason, attempt=result.attempts, backend_state=status.state.value
        )


class _Herd:
    """A herd's submits, slice after slice as sync point one confirms each, through one lane per blocking backend.

    Each lane's workers pull the next write of any slice before any check (`Confirming`: a submit is a write, then a
    check), and take a check only while none of the lane's writes is left or in flight: a check sent beside a write
    holds that write up at the agent, and the herd's last registration is what counts (issue 18). So slice k+1's
    writes go out before slice k's checks, not after them. A lane has at most `workers` threads from its backend's
    pool, so a 10k herd costs that many futures rather than 10k, a slow submit holds up only its own thread, and a
    slow daemon never delays another backend's launches. In-process backends are submitted inline, by the caller of
    `add`, while the lanes work. After the first error (LeadershipLost) no worker takes another write or check; a
    slice not done by then gives no finished record (its records stay open, for recovery)."""

    def __init__(self, launcher: Launcher, errors: list[BaseException]) -> None:
        self._launcher = launcher
        self._errors = errors  # the first error stops every lane; the caller raises it
        self._cond = threading.Condition()
        self._lanes: dict[str, _Lane] = {}
        self._slices: deque[_SliceSubmits] = deque()  # in the order they came, until handed out by `done`
        self._futures: list[Future[None]] = []
        self._closed = False

    def add(self, begun: list[tuple[Planned, LaunchRecord]]) -> None:
        """Queue a begun slice's launches (a skipped instant needs none); its inline ones are submitted now."""
        launcher = self._launcher
        to_launch = [(p, r) for p, r in begun if p.skip_reason is None]
        part = _SliceSubmits(begun, len(to_launch))
        inline = []
        with self._cond:
            self._slices.append(part)
            for index, item in enumerate(to_launch):
                spec = item[0].spec
                if launcher._backends.for_spec(spec).blocking:
                    lane = self._lanes.setdefault(spec.backend, _Lane())
                    lane.writes.append((part, index, item))
                    lane.queued += 1
                else:
                    inline.append((index, item))  # in-process backends: threads would only add cost
            self._cond.notify_all()
            starting = []  # each lane's workers: as many as its writes so far, up to `workers`, kept until `close`
            for name, lane in self._lanes.items():
                more = min(launcher._workers, lane.queued) - lane.workers
                lane.workers += more
                starting += [name] * more
        for name in starting:
            self._futures.append(launcher._pool_for(name).submit(self._work, self._lanes[name]))
        for index, (planned, record) in inline:
            if self._errors:
                break
            result = launcher._submit(planned, record)
            with self._cond:
                part.put(index, result)

    def _work(self, lane: _Lane) -> None:
        launcher = self._launcher
        try:
            while (job := self._next(lane)) is not None:
                part, index, step = job
                if isinstance(step, tuple):
                    rest = None
                    try:
                        rest = launcher._start(*step)
                    finally:
                        with self._cond:
                            lane.in_flight -= 1
                            if rest is not None:
                                lane.checks.append((part, index, rest))
                            self._cond.notify_all()
                else:
                    result = step()
                    with self._cond:
                        part.put(index, result)
                        self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._errors.append(exc)
                self._cond.notify_all()

    def _next(self, lane: _Lane) -> tuple[_SliceSubmits, int, Any] | None:
        """The lane's next write, else (none left or in flight) its next check; None once nothing is to come."""
        with self._cond:
            while not self._errors:
                if lane.writes:
                    lane.in_flight += 1
                    return lane.writes.popleft()
                if lane.checks and lane.in_flight == 0:
                    return lane.checks.popleft()
                if self._closed and not lane.checks and lane.in_flight == 0:
                    return None
                self._cond.wait()
            return None

    def done(self) -> list[Submitted]:
        """The slices, in order, whose every launch has its outcome (or whose lanes stopped on an error)."""
        out: list[Submitted] = []
        with self._cond:
            while self._slices and (self._slices[0].complete or self._errors):
                part = self._slices.popleft()
                finished = part.finished() if part.complete else []
                if finished:
                    maybe_crash("after_submit", finished[0].job)
                out.append((part.begun, finished))
        return out

    def close(self) -> None:
        """No slice comes after this: wait until every lane's worker has stopped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()


class _SliceSubmits:
    """One begun slice's launches: their outcomes by index (None: left open), complete once each has one."""

    def __init__(self, begun: list[tuple[Planned, LaunchRecord]], launches: int) -> None:
        self.begun = begun
        self._results: list[LaunchRecord | None] = [None] * launches
        self._left = launches
        self.complete = launches == 0

    def put(self, index: int, result: LaunchRecord | None) -> None:
        self._results[index] = result
        self._left -= 1
        self.complete = self._left == 0

    def finished(self) -> list[LaunchRecord]:
        return [r for r in self._results if r is not None]


class _Lane:
    """A blocking backend's launches in a herd: the writes not taken yet, what is left of each written one
    (`checks`), and the writes in flight; `workers` threads of its pool work it."""

    def __init__(self) -> None:
        self.writes: deque[tuple[_SliceSubmits, int, tuple[Planned, LaunchRecord]]] = deque()
        self.checks: deque[tuple[_SliceSubmits, int, Callable[[], LaunchRecord | None]]] = deque()
        self.in_flight = 0
        self.queued = 0  # writes ever queued
        self.workers = 0


def _fields(record: LaunchRecord) -> dict[str, object]:
    """A launch's log fields; one without a value is left out (`reason=None` said nothing)."""
    fields = {
        "job": record.job,
        "launch": record.name,
        "scheduled": record.scheduled.isoformat(),
        "outcome": record.outcome.value if record.outcome else None,
        "reason": record.reason,
        "epoch": record.epoch,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _waiting(finishing: SimpleQueue[list[Submitted] | None]) -> tuple[list[Submitted], bool]:
    """Every batch waiting to be finished, as one (after waiting for one), and whether the herd's last is among
    them: a sync point two that fell behind catches up in one write, its transactions all on the wire at once."""
    batch: list[Submitted] = []
    got: list[Submitted] | None = finishing.get()
    while got is not None:
        batch += got
        try:
            got = finishing.get_nowait()
        except Empty:
            return batch, False
    return batch, True


def _given(record: LaunchRecord | None) -> LaunchRecord | None:
    return record


def _raise(exc: BaseException) -> None:
    raise exc


__all__ = ["Launcher", "LeadershipLost"]
