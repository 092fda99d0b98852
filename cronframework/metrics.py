"""Prometheus metrics for one scheduler process, served at GET /metrics by the API.

Label cardinality stays bounded by the number of jobs: labels are job, outcome, a reason *class* (never the free-text
reason), store operation and backend method -- never a launch name. Store and backend calls are measured by wrapping
the objects (`instrument_store`, `instrumented_loader`), so the launch path itself carries only a few counting calls.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from typing import Any, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from cronframework.abc import Backend, PreparedBegin, StateStore
from cronframework.adapters import load_backend
from cronframework.errors import CronframeworkError, TransientBackendError
from cronframework.records import JobResults, LaunchRecord, Outcome

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)


class JobCounter:
    """A counter labelled by job and one bounded label, kept as plain ints and exposed as `<name>_total`.

    A prometheus_client child per series costs ~600 bytes (a Counter object, its value, its lock), and a leader has
    one per job; here a series is a dict slot whose value is usually a shared small int (benchmarks/bench_memory.py).
    """

    def __init__(self, name: str, documentation: str, label: str, *, registry: CollectorRegistry) -> None:
        self._name, self._documentation, self._label = name, documentation, label
        self._counts: dict[str, dict[str, int]] = {}  # label value -> job -> count: few label values, many jobs
        self._lock = threading.Lock()
        registry.register(self)

    def inc(self, job: str, value: str, amount: int = 1) -> None:
        with self._lock:
            jobs = self._counts.setdefault(value, {})
            jobs[job] = jobs.get(job, 0) + amount

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        with self._lock:
            series = [(job, value, n) for value, jobs in self._counts.items() for job, n in jobs.items()]
        for job, value, n in series:
            family.add_metric([job, value], n)
        yield family

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=["job", self._label])


class JobGauge:
    """A gauge labelled by job, kept as a plain dict (see JobCounter): e.g. each job's last success timestamp."""

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry) -> None:
        self._name, self._documentation = name, documentation
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, job: str, value: float) -> None:
        with self._lock:
            self._values[job] = value

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self._name, self._documentation, labels=["job"])]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=["job"])
        with self._lock:
            series = list(self._values.items())
        for job, value in series:
            family.add_metric([job], value)
        yield family


LAUNCHES = JobCounter(
    "cronframework_launches", "Launch records finished, by job and outcome.", "outcome", registry=REGISTRY
)
SKIPPED = JobCounter(
    "cronframework_skipped_launches",
    "Instants recorded as skipped, by job and reason class.",
    "reason",
    registry=REGISTRY,
)
TASK_RESULTS = JobCounter(
    "cronframework_task_results",
    "Task results recorded (how each launched task ended), by job and result: succeeded, failed, timed_out, lost.",
    "result",
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "cronframework_task_duration_seconds",
    "Run time of tasks whose result was recorded (started to ended, as the backend reports them).",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
LAST_SUCCESS = JobGauge(
    "cronframework_job_last_success_timestamp_seconds",
    "When each job's last successful run ended (Unix time); absent until it has succeeded once.",
    registry=REGISTRY,
)
LAST_FAILURE = JobGauge(
    "cronframework_job_last_failure_timestamp_seconds",
    "When each job's last failed run ended (a final result: failed, timed_out or lost, with no retry to come).",
    registry=REGISTRY,
)
FOLLOWING = Gauge(
    "cronframework_following_launches",
    "Launched tasks whose result this leader is still following.",
    registry=REGISTRY,
)
JOB_OVERDUE = JobGauge(
    "cronframework_job_overdue",
    "1 while a job has not succeeded within its expect.success_within, else 0 (jobs with `expect` only).",
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "cronframework_notifications",
    "Webhook notifications settled, by event and result: delivered, undeliverable.",
    ["event", "result"],
    registry=REGISTRY,
)
NOTIFICATIONS_UNDELIVERABLE = Gauge(
    "cronframework_notifications_undeliverable",
    "Notifications kept in the outbox as undeliverable (their retries ran out): `status` lists them.",
    registry=REGISTRY,
)
LAUNCH_LAG = Histogram(
    "cronframework_launch_lag_seconds",
    "Scheduled instant to backend submission confirmed (retries under `retry:` left out).",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
OPEN_LAUNCHES = Gauge(
    "cronframework_open_launches",
    "Launches begun (sync point one) and not yet finished, by this process.",
    registry=REGISTRY,
)
LEADER = Gauge("cronframework_leader", "1 while this replica leads, else 0.", registry=REGISTRY)
LEADER_EPOCH = Gauge(
    "cronframework_leader_epoch", "Epoch of this replica's current or last leadership.", registry=REGISTRY
)
TAKEOVERS = Counter("cronframework_takeovers", "Times this replica became leader.", registry=REGISTRY)
STORE_SECONDS = Histogram(
    "cronframework_store_call_seconds",
    "State store call latency, by operation.",
    ["op"],
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "cronframework_store_errors", "State store calls that raised, by operation.", ["op"], registry=REGISTRY
)
BACKEND_SECONDS = Histogram(
    "cronframework_backend_call_seconds",
    "Backend call latency, by backend and method.",
    ["backend", "method"],
    registry=REGISTRY,
)
BACKEND_ERRORS = Counter(
    "cronframework_backend_errors",
    "Backend calls that raised, by backend, method and kind (transient/permanent).",
    ["backend", "method", "kind"],
    registry=REGISTRY,
)
BROKEN_SPECS = Gauge(
    "cronframework_broken_specs",
    "Applied job specs this process cannot compile: their jobs are not scheduled (`status` shows why).",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "cronframework_api_requests",
    "HTTP API requests, by route template and status code.",
    ["route", "code"],
    registry=REGISTRY,
)

REASON_CLASSES = (
    ("paused", "paused"),
    ("older than the catch-up window", "stale"),
    ("missed", "missed"),
    ("uncertain", "uncertain"),
    ("superseded", "superseded"),
    ("still", "concurrency"),
    ("cannot tell", "concurrency"),
    ("could not stop", "concurrency"),
)


def reason_class(reason: str | None) -> str:
    """Map a free-text skip reason to one of a handful of classes (bounded label values)."""
    text = (reason or "").lower()
    return next((label for needle, label in REASON_CLASSES if needle in text), "other")


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# -- launch accounting (called by the launcher and recovery) -----------------------------------------------------
def launches_begun(count: int) -> None:
    OPEN_LAUNCHES.inc(count)


def launches_finished(records: Iterable[LaunchRecord], *, were_open: int = 0) -> None:
    """Count finished records; `were_open` of them had been counted by `launches_begun` in this process."""
    OPEN_LAUNCHES.dec(were_open)
    launches: Tally[tuple[str, str]] = Tally()
    skipped: Tally[tuple[str, str]] = Tally()
    for record in records:  # counted first, then one labelled increment per series: herds have few series
        launches[record.job, record.outcome.value if record.outcome else "unknown"] += 1
        if record.outcome is Outcome.SKIPPED:
            skipped[record.job, reason_class(record.reason)] += 1
        elif record.outcome is Outcome.SUBMITTED and record.finished_at is not None and record.task_attempt == 1:
            LAUNCH_LAG.observe(max(0.0, (record.finished_at - record.scheduled).total_seconds()))
    for (job, outcome), count in launches.items():
        LAUNCHES.inc(job, outcome, count)
    for (job, reason), count in skipped.items():
        SKIPPED.inc(job, reason, count)


def task_results(
    records: Iterable[LaunchRecord], summaries: Iterable[JobResults], expecting: Container[str] = ()
) -> None:
    """Results just written: counted by job and result, their run time observed, each job's timestamps moved."""
    results: Tally[tuple[str, str]] = Tally()
    for record in records:
        results[record.job, record.result.value if record.result else "unknown"] += 1
        if record.duration is not None:
            TASK_DURATION.observe(record.duration)
    for (job, result), count in results.items():
        TASK_RESULTS.inc(job, result, count)
    job_results_loaded(summaries, expecting)


def job_results_loaded(summaries: Iterable[JobResults], expecting: Container[str] = ()) -> None:
    """Each job's last success and failure, from its summary (a new leader sets them from the store); `overdue` for
    the jobs with `expect` among them."""
    for summary in summaries:
        if summary.last_success is not None:
            LAST_SUCCESS.set(summary.job, summary.last_success.timestamp())
        if summary.last_failure is not None:
            LAST_FAILURE.set(summary.job, summary.last_failure.timestamp())
        if summary.job in expecting:
            JOB_OVERDUE.set(summary.job, 1.0 if summary.overdue_since is not None else 0.0)


def notification(event: str, result: str) -> None:
    NOTIFICATIONS.labels(event, result).inc()


def notifications_undeliverable(count: int) -> None:
    NOTIFICATIONS_UNDELIVERABLE.set(count)


def following(count: int) -> None:
    FOLLOWING.set(count)


def leading(epoch: int) -> None:
    LEADER.set(1)
    LEADER_EPOCH.set(epoch)
    TAKEOVERS.inc()


def not_leading() -> None:
    LEADER.set(0)
    OPEN_LAUNCHES.set(0)  # what this session left open is the next leader's to conclude (recovery.py)
    FOLLOWING.set(0)  # and what it followed, the next leader's to follow


# -- wrappers that time every call ------------------------------------------------------------------------------
def _timed(call: Callable[..., Any], seconds: Histogram, errors: Callable[[BaseException], None]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            errors(exc)
            raise
        finally:
            seconds.observe(time.perf_counter() - started)

    return wrapper


class _ObservedStore:
    _OPS = frozenset(name for part in StateStore.__mro__ for name in vars(part) if not name.startswith("_")) - {"close"}

    def __init__(self, store: StateStore) -> None:
        self._inner = store

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or name not in self._OPS or not callable(value):
            return value
        if name == "prepare_begin":
            return self._prepare_begin
        return _timed(value, STORE_SECONDS.labels(name), lambda _exc: STORE_ERRORS.labels(name).inc())

    def _prepare_begin(self, *args: Any, **kwargs: Any) -> PreparedBegin:
        return _ObservedBegin(self._inner.prepare_begin(*args, **kwargs))


class _ObservedBegin:
    """Recorded as `begin`, from the send to the store's confirmation: one sync point one, however it is sent
    (building it ahead is not store time)."""

    def __init__(self, inner: PreparedBegin) -> None:
        self._inner = inner

    def discard(self) -> None:
        self._inner.discard()

    def send(self) -> Callable[[], None]:
        started = time.perf_counter()
        try:
            wait = self._inner.send()
        except Exception:
            _count_begin()
            STORE_SECONDS.labels("begin").observe(time.perf_counter() - started)
            raise

        def confirmed() -> None:
            try:
                wait()
            except Exception:
                _count_begin()
                raise
            finally:
                STORE_SECONDS.labels("begin").observe(time.perf_counter() - started)

        return confirmed


def _count_begin() -> None:
    STORE_ERRORS.labels("begin").inc()


def instrument_store(store: StateStore) -> StateStore:
    """The same store, with the latency and errors of every protocol call recorded."""
    return cast(StateStore, _ObservedStore(store))


class _ObservedBackend:
    _METHODS = frozenset({"submit", "lookup", "stop", "list", "logs", "remove"})

    def __init__(self, name: str, backend: Backend) -> None:
        self._name, self._inner = name, backend

    def __getattr__(self, method: str) -> Any:
        value = getattr(self._inner, method)
        if method not in self._METHODS or not callable(value):
            return value
        return _timed(value, BACKEND_SECONDS.labels(self._name, method), self._error_counter(method))

    def _error_counter(self, method: str) -> Callable[[BaseException], None]:
        def count(exc: BaseException) -> None:
            kind = "transient" if isinstance(exc, TransientBackendError) else "permanent"
            if not isinstance(exc, CronframeworkError):
                kind = "unexpected"
            BACKEND_ERRORS.labels(self._name, method, kind).inc()

        return count


def observe_backend(name: str, backend: Backend) -> Backend:
    """The same backend, with the latency and errors of every method recorded under `backend=name`."""
    return cast(Backend, _ObservedBackend(name, backend))


def instrumented_loader(name: str, config: Mapping[str, Any] | None = None) -> Backend:
    """A drop-in for `backend.load_backend` (BackendSet's `loader`) whose backends are measured."""
    return observe_backend(name, load_backend(name, config))
