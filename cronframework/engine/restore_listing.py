"""After a restore: manual launches that the restored store names nowhere, found by listing each job's launches.

A restore's replay finds by name every instant, trigger and retry the restored store can name (plan.py). A trigger
requested after the snapshot was read and launched before the data was lost is named nowhere: neither its request
nor its record is in the snapshot. Its launch name carries its request time to the second (naming.py), so listing
the job's launches on the backend finds it. Each one found is requested again as a trigger at that same instant;
the next tick takes it as a trigger from before the restore, whose launch by name finds it (`already_existed`), and
from then on it is recorded and followed like any other launch. Nothing is launched a second time: the name is
the one the backend already has.

The same listing corrects a record that says its launch never ran (failed to launch, skipped) while the backend says
its task started: two restores in a row, the second from a snapshot that recorded the launch failed before an era
restored from an older snapshot launched it, and that era's data was lost too. Once the task has ended, the record
is rewritten as launched (`already_existed`) with its result, concluded as the result follower would have written
it (not counted in the job's result summary, notified, or retried: it is history by then). A launch the backend
holds but never started (a container whose start was refused) keeps its record, and so does one still running (it
would need following, which a record concluded long ago has left). One read of the job's history and a lookup per
such record.

Listing is one backend call per job, so at 100k jobs it is paced: a slice of at most `budget` seconds after a tick, and
only as much of the time before the next instant as it leaves free. A job the backend cannot list is asked again later.
Once every job has been listed, the restore's marker in the takeover report says so (`LISTED`) and later leaders do not
list again; a leader deposed before that lists again from the start, and a launch already recorded or requested is not
requested twice.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cronframework.abc import Clock, Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.engine.results import classify, with_verdict
from cronframework.engine.retention import SLACK
from cronframework.errors import BackendError
from cronframework.naming import LaunchIdentity, parse_launch_name
from cronframework.ops.snapshot import restored_at, restored_snapshot_at
from cronframework.records import Outcome, RecordState
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.restore_listing")
LISTED = "listed"  # the restore marker's key once every job's launches have been listed (ISO time)
MARGIN = timedelta(minutes=5)  # before the capture: a trigger's time is its requester's clock, not the leader's
BUDGET = 0.2  # seconds of listing after one tick
NOT_LAUNCHED = (Outcome.FAILED, Outcome.SKIPPED)


class RestoreListing:
    def __init__(
        self,
        store: LeaderStore,
        backends: BackendSet,
        leadership: Leadership,
        clock: Clock,
        budget: float = BUDGET,
    ) -> None:
        self._store, self._backends, self._leadership, self._clock = store, backends, leadership, clock
        self._budget = budget
        self._marker: Mapping[str, Any] | None = None
        self._window: tuple[datetime, datetime] | None = None
        self._jobs: deque[str] = deque()
        self.requested = 0  # triggers requested again by this leader (for tests and the log)

    def start(self, marker: Mapping[str, Any] | None, jobs: Iterable[str]) -> None:
        """Begin listing `jobs` when the store came from a restore whose jobs have not all been listed yet."""
        self._window = _window(marker)
        if self._window is None or marker is None or LISTED in marker:
            self._jobs.clear()
            return
        self._marker = marker
        self._jobs = deque(sorted(jobs))
        log.info("listing each job's launches after a restore", extra={"jobs": len(self._jobs)})

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def step(self, spec_of: Callable[[str], JobSpec | None], room: float) -> Mapping[str, Any] | None:
        """List jobs for up to the budget, and at most `room` seconds (the next instant needs the thread).
        Returns the restore marker with `LISTED` once the last job is listed (the leader writes it into the takeover
        report), else None."""
        if not self._jobs or self._window is None or self._marker is None:
            return None
        deadline = self._clock.monotonic() + min(self._budget, room)
        while self._jobs and self._clock.monotonic() < deadline:
            job = self._jobs[0]
            spec = spec_of(job)
            if spec is not None and not self._list(job, spec, self._window):
                self._jobs.rotate(-1)  # asked again after the others: its backend may be away for a while
                return None
            self._jobs.popleft()
        if self._jobs:
            return None
        listed = {**self._marker, LISTED: self._clock.now().astimezone(UTC).isoformat()}
        log.info("every job's launches listed after a restore", extra={"requested_again": self.requested})
        self._marker = None
        return listed

    def _list(self, job: str, spec: JobSpec, window: tuple[datetime, datetime]) -> bool:
        """Correct `job`'s records the backend contradicts, and request again each unrecorded manual launch of it
        in the window; False when the backend did not answer (nothing requested for the job then)."""
        self._leadership.check()
        try:
            names = self._backends.for_spec(spec).list(job)
            self._correct(job, spec, set(names))
        except BackendError as exc:
            log.warning("launches not listed after a restore", extra={"job": job, "error": str(exc)})
            return False
        found = [i for i in map(_identity, names) if i is not None and _unnamed_manual(i, job, window)]
        if not found:
            return True
        pending = {(t.job, t.requested_at) for t in self._store.pending_triggers()}
        for identity in found:
            if (job, identity.scheduled) in pending or self._store.get_launch(identity.name) is not None:
                continue
            self._store.request_trigger(job, force=False, now=identity.scheduled)
            self.requested += 1
            log.warning(
                "manual launch after the snapshot found on the backend; requested again to be recorded",
                extra={"job": job, "launch": identity.name, "epoch": self._leadership.fence.epoch},
            )
        return True

    def _correct(self, job: str, spec: JobSpec, names: set[str]) -> None:
        """Rewrite as launched, with its result, each of `job`'s records that says its launch never ran while the
        backend, which holds `names`, says its task ran and ended (module docstring)."""
        if not names:
            return
        backend = self._backends.for_spec(spec)
        for record in self._store.history(job, limit=spec.retention.count + SLACK):
            if record.name not in names or record.state is not RecordState.FINISHED:
                continue
            if record.outcome not in NOT_LAUNCHED:
                continue
            status = backend.lookup(record.name)
            if status is None or status.started_at is None or status.state.active:
                continue
            now = self._clock.now()
            verdict = classify(status, stopped_for_timeout=False, now=now)
            corrected = with_verdict(
                record.finish(
                    Outcome.ALREADY_EXISTED,
                    now=now,
                    reason=f"found run on the backend after a restore; it had been recorded {record.outcome.value}",
                    backend_state=status.state.value,
                ),
                verdict,
            )
            self._store.finish(self._leadership.fence, [corrected])
            log.warning(
                "launch recorded as not launched found run on the backend after a restore; recorded launched",
                extra={"job": job, "launch": record.name, "was": record.outcome.value},
            )


def _window(marker: Mapping[str, Any] | None) -> tuple[datetime, datetime] | None:
    """From the snapshot's capture (less the margin) to the restore; None when the marker does not say both."""
    since, until = restored_snapshot_at(marker), restored_at(marker)
    if since is None or until is None:
        return None
    return since - MARGIN, until


def _identity(name: str) -> LaunchIdentity | None:
    try:
        return parse_launch_name(name)
    except ValueError:
        return None


def _unnamed_manual(identity: LaunchIdentity, job: str, window: tuple[datetime, datetime]) -> bool:
    """A trigger's own launch (not a retry: a retry is found from its first run's record) in the window."""
    since, until = window
    return identity.job == job and identity.manual and identity.attempt == 1 and since <= identity.scheduled < until
