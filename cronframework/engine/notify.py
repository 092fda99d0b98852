"""Which notifications a result, a skip, a failed launch or an overdue job raises: values, written by the caller into
the outbox in the same fenced transaction as what they are about (docs/design.md, "Notifications").

The leader, the launcher and recovery ask `Notifier` for the notices of what they are about to write, hand them to
the store with it, and once the store confirmed, tell the notifier (`wrote`); the leader then hands them to the
outbox (`outbox.py`), which delivers them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronframework.metrics import reason_class
from cronframework.ops.status import LAST_LAUNCH_KEYS
from cronframework.records import JobResults, LaunchRecord, Notice, Outcome, TaskResult
from cronframework.spec.model import JobSpec, NotifyEvent, Webhook

MISSED_CLASSES = frozenset({"missed", "stale"})
QUIET_CLASSES = frozenset({"paused"})  # a pause is an operator's act: its skips notify nobody


@dataclass(frozen=True)
class NotifyConfig:
    """Delivery (outbox.py) and the cluster's default webhooks, for jobs that declare none."""

    defaults: tuple[Webhook, ...] = ()
    attempts: int = 5  # POSTs per notice before it is undeliverable
    backoff: timedelta = timedelta(seconds=1)  # doubled after each failed POST
    max_backoff: timedelta = timedelta(seconds=30)
    timeout: float = 10.0  # seconds one POST may take
    workers: int = 4  # POSTs in flight at once: a slow receiver holds up only its own notices
    keep_undeliverable: int = 1000  # the newest kept for `status`; older ones are dropped


class Notifier:
    def __init__(self, config: NotifyConfig | None = None) -> None:
        self.config = config or NotifyConfig()
        self._written: list[Notice] = []  # confirmed in the store, not yet handed to the outbox
        self._lock = threading.Lock()  # a herd's begin thread and its launch stage both write notices

    def wrote(self, notices: Iterable[Notice]) -> None:
        with self._lock:
            self._written.extend(notices)

    def take_written(self) -> list[Notice]:
        with self._lock:
            written, self._written = self._written, []
        return written

    def hooks(self, spec: JobSpec | None) -> tuple[Webhook, ...]:
        if spec is None:
            return ()
        return spec.notify or self.config.defaults

    def wants(self, spec: JobSpec | None) -> bool:
        """Cheap, for every launch of a herd: does the job notify anyone at all?"""
        return spec is not None and bool(spec.notify or self.config.defaults)

    def for_skip(self, record: LaunchRecord, spec: JobSpec) -> tuple[Notice, ...]:
        """A skipped instant (sync point one): `missed` when no leader ran it in time, else `skipped`."""
        kind = reason_class(record.reason)
        if kind in QUIET_CLASSES:
            return ()
        event = NotifyEvent.MISSED if kind in MISSED_CLASSES else NotifyEvent.SKIPPED
        return self._make(spec, event, record.name, record.job, launch_payload(record), _at(record))

    def for_failed_launch(self, record: LaunchRecord, spec: JobSpec | None) -> tuple[Notice, ...]:
        if record.outcome is not Outcome.FAILED:
            return ()
        payload = launch_payload(record)
        return self._make(spec, NotifyEvent.FAILED_TO_LAUNCH, record.name, record.job, payload, _at(record))

    def for_result(self, record: LaunchRecord, spec: JobSpec | None, before: JobResults | None) -> tuple[Notice, ...]:
        """A result just written: `succeeded` (and `recovered` after failures), or `failed` when final."""
        if record.result is None or record.retry_at is not None:
            return ()
        payload = launch_payload(record)
        if record.result is TaskResult.SUCCEEDED:
            events = [NotifyEvent.SUCCEEDED]
            if before is not None and before.failures > 0:
                events.append(NotifyEvent.RECOVERED)
        else:
            events = [NotifyEvent.FAILED]
        at = _at(record)
        return tuple(n for e in events for n in self._make(spec, e, record.name, record.job, payload, at))

    def for_given_up(self, record: LaunchRecord, spec: JobSpec | None) -> tuple[Notice, ...]:
        """A failed run whose retry was given up (skipped or dropped): its failure is final now."""
        if record.result is None or record.result is TaskResult.SUCCEEDED:
            return ()
        return self._make(spec, NotifyEvent.FAILED, record.name, record.job, launch_payload(record), _at(record))

    def for_overdue(self, spec: JobSpec, since: datetime, now: datetime) -> tuple[Notice, ...]:
        """One `overdue` per overdue spell: keyed by when the job last succeeded (or was first watched)."""
        assert spec.expect is not None
        subject = f"{spec.name}.overdue.{int(since.timestamp())}"
        payload = {
            "job": spec.name,
            "last_success_or_since": since.isoformat(),
            "success_within": spec.expect.success_within.total_seconds(),
            "overdue_since": now.isoformat(),
        }
        return self._make(spec, NotifyEvent.OVERDUE, subject, spec.name, payload, now)

    def _make(
        self,
        spec: JobSpec | None,
        event: NotifyEvent,
        subject: str,
        job: str,
        payload: Mapping[str, Any],
        at: datetime,
    ) -> tuple[Notice, ...]:
        hooks = [(i, hook) for i, hook in enumerate(self.hooks(spec)) if event in hook.events]
        if not hooks:
            return ()
        key = f"{subject}:{event.value}"
        body = {"text": summary_text(event, job, payload), "event": event.value, "key": key, **payload}
        return tuple(
            Notice(
                id=f"{key}:{index}",
                key=key,
                job=job,
                event=event.value,
                url=hook.url,
                payload=body,
                created_at=at,
                secret_env=hook.secret_env,
                secret_file=hook.secret_file,
            )
            for index, hook in hooks
        )


def _at(record: LaunchRecord) -> datetime:
    """When what a notice is about happened: the task's end, else when the record was finished."""
    return record.ended_at or record.finished_at or record.begun_at or record.scheduled


def launch_payload(record: LaunchRecord) -> dict[str, Any]:
    """What a notification says about a launch: the stable keys `status` shows of a last launch, and its job."""
    data = record.to_dict()
    out = {"job": record.job, "manual": record.manual, **{k: data[k] for k in LAST_LAUNCH_KEYS}}
    out["launch"] = out.pop("name")
    return out


def summary_text(event: NotifyEvent, job: str, payload: Mapping[str, Any]) -> str:
    """One line a chat tool shows as is (Slack and Mattermost take `text` from any incoming webhook body)."""
    launch = payload.get("launch", "")
    if event is NotifyEvent.FAILED:
        code = payload.get("exit_code")
        detail = payload.get("result_reason") or (f"exit code {code}" if code is not None else payload.get("result"))
        return f"cronframework: {job} {payload.get('result')}: {launch} ({detail})"
    if event is NotifyEvent.OVERDUE:
        return f"cronframework: {job} is overdue: no success since {payload.get('last_success_or_since')}"
    if event in (NotifyEvent.MISSED, NotifyEvent.SKIPPED, NotifyEvent.FAILED_TO_LAUNCH):
        return f"cronframework: {job} {event.value}: {launch} ({payload.get('reason')})"
    return f"cronframework: {job} {event.value}: {launch}"
