"""The Nomad backend: one launch = one batch job whose ID is the launch name, registered create-only.

Create-only registration (EnforceIndex with JobModifyIndex 0) makes submit idempotent by name: Nomad refuses
a job ID that exists, so a retried or repeated submit can never start a second run, and lookup-by-name is one
GET. Why not parameterized dispatch with an idempotency token: see docs/backends.md, "Nomad".

A launch's two requests (the registration and its check) go on a lean urllib3 path of their own
(backends/nomad_http.py); every other call goes through python-nomad.

Errors: unreachable agent, timeouts and 5xx raise TransientBackendError (the scheduler retries, not this
adapter, beyond at most one immediate retry when `retries: 1`); refused specs and ACL denials raise
PermanentBackendError with Nomad's message. The token never appears in a message or repr.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import nomad
import requests
from nomad.api import exceptions as nomad_errors
from requests.adapters import HTTPAdapter

from backends.nomad_http import LaunchRequests, Refused, Unanswered
from backends.nomad_spec import GROUP, TASK, job_payload, meta_key
from backends.nomad_status import job_status, newest_allocation
from cronframework.errors import (
    BackendError,
    BackendUnreachable,
    PermanentBackendError,
    TransientBackendError,
    tls_refusal,
    transient_kind,
)
from cronframework.launch import BackendStatus, Launch, SubmitOutcome
from cronframework.schedule.duration import parse_duration
from cronframework.send_guard import before_send

DEFAULT_ADDRESS = "http://127.0.0.1:4646"
DEFAULT_CONNECTIONS = 64  # kept open to the agent: above the launcher's submit workers, or each extra one reconnects
DEFAULT_GC_HORIZON = timedelta(hours=4)  # Nomad's server job_gc_threshold default
# registrations built ahead (`prepare`), about 2 KB each: a herd's first ones; the rest are built at their write
PREPARED_MAX = 20_000
ALREADY_EXISTS = "job already exists"
# Nomad answers 500 for any RPC error, refused specs included; these phrases mark what retrying cannot fix.
PERMANENT_500 = (
    "error occurred",
    "validation failed",
    "invalid",
    "mismatched",
    "missing job",
    "Enforcing job",
)

T = TypeVar("T")


class NomadBackend:
    blocking = True
    enforces_timeout = False
    watches = True  # a blocking query on the job list returns when a job changes
    confirms = True  # a submit is the create-only write, then the read that tells who created the job
    """Adapter over python-nomad; one instance per scheduler process."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.address = str(config.get("address") or os.environ.get("NOMAD_ADDR") or DEFAULT_ADDRESS)
        self.namespace: str | None = config.get("namespace") or os.environ.get("NOMAD_NAMESPACE") or None
        self.region: str | None = config.get("region") or os.environ.get("NOMAD_REGION") or None
        self.mhz_per_core = float(config.get("cpu_mhz_per_core", 1000))
        self.retries = min(max(int(config.get("retries", 0)), 0), 1)
        self._gc_horizon = _horizon(config.get("gc_horizon", DEFAULT_GC_HORIZON))
        self._token = _token(config)
        connections = int(config.get("connections", DEFAULT_CONNECTIONS))
        self._session = _session(connections)
        self._jobs_index = 0  # the job list's Raft index as last read: a blocking query returns when it moves
        # submits of one name from this process never race each other at Nomad (see _created_by); names in flight
        self._writing: set[str] = set()
        self._written = threading.Condition()
        self._prepared: dict[str, tuple[Launch, bytes]] = {}  # by name: a launch and its registration, encoded
        self._prepared_lock = threading.Lock()
        self._client = nomad.Nomad(
            address=self.address,
            namespace=self.namespace,
            region=self.region,
            token=self._token,
            timeout=float(config.get("timeout", 10)),
            verify=_verify(config),
            cert=_cert(config),
            session=self._session,
        )
        # the two requests of every launch, on the lean path unless requests would send them differently
        self._launch_requests = LaunchRequests.over(self._session, self._client.job, connections)
        lean = self._launch_requests
        self._register_job = lean.register if lean else self._client.job.register_job
        self._job_summary = lean.summary if lean else self._client.job.get_summary

    def __repr__(self) -> str:
        return f"NomadBackend(address={self.address!r}, namespace={self.namespace!r}, region={self.region!r})"

    def retention_horizon(self) -> timedelta | None:
        """How long Nomad keeps a finished job; a job's recovery_window must stay below it."""
        return self._gc_horizon

    # -- the Backend protocol -------------------------------------------------------------------------

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        return self.register(name, launch)()

    def register(self, name: str, launch: Launch) -> Callable[[], SubmitOutcome]:
        """The create-only write; the returned call is its check (`_created_by`), which a herd makes after all its
        writes (`abc.Confirming`). The name is held for the write alone: a second submit of it from this
        process then finds the job and is refused, whenever the first one's check is made; writes of other names never
        wait for it."""
        if name != launch.name:
            raise PermanentBackendError(f"submit name {name!r} is not the launch's name {launch.name!r}")
        encoded, lean = self._take_prepared(launch), self._launch_requests
        if encoded is not None and lean is not None:
            send = partial(lean.register_encoded, name, encoded)
        else:
            send = partial(self._register_job, name, self._body(launch))
        with self._alone(name):
            try:
                reply = self._call("register", lambda: self._register_guarded(send))
            except _AlreadyExists:
                return _already_existed
        return partial(self._outcome, name, reply)

    def prepare(self, launches: Sequence[Launch]) -> None:
        """Each launch's registration built and encoded now, while the leader stages a herd (`abc.Confirming`):
        at the instant the leader's CPU goes to sending them (building and encoding one was about 40 % of its CPU
        for a registration, issue 18). Held by name up to PREPARED_MAX; to make room, launches of earlier instants
        than these are dropped (their instant has come: whatever was not sent yet is built at its write)."""
        lean = self._launch_requests
        if lean is None:
            return  # python-nomad encodes its own
        built = []
        for launch in launches:
            try:
                built.append((launch, lean.encode(self._body(launch))))
            except (BackendError, Unanswered):
                continue  # its write refuses it, saying why
        if not built:
            return
        with self._prepared_lock:
            held = self._prepared
            if len(held) + len(built) > PREPARED_MAX:
                oldest = min(launch.identity.scheduled for launch, _ in built)
                held = {name: entry for name, entry in held.items() if entry[0].identity.scheduled >= oldest}
            for launch, encoded in built[: max(0, PREPARED_MAX - len(held))]:
                held[launch.name] = (launch, encoded)
            self._prepared = held

    def _take_prepared(self, launch: Launch) -> bytes | None:
        """The registration built for an equal launch, once; None if none was."""
        with self._prepared_lock:
            entry = self._prepared.pop(launch.name, None)
        return entry[1] if entry is not None and entry[0] == launch else None

    def _body(self, launch: Launch) -> dict[str, Any]:
        job = job_payload(launch, mhz_per_core=self.mhz_per_core, namespace=self.namespace, region=self.region)
        return {"Job": job, "EnforceIndex": True, "JobModifyIndex": 0}

    @contextmanager
    def _alone(self, name: str) -> Iterator[None]:
        """No other write of `name` from this process is in flight meanwhile; writes of other names go on (a lock
        shared by several names held a herd's writes up one behind another)."""
        with self._written:
            self._written.wait_for(lambda: name not in self._writing)
            self._writing.add(name)
        try:
            yield
        finally:
            with self._written:
                self._writing.discard(name)
                self._written.notify_all()

    def _outcome(self, name: str, reply: Mapping[str, Any]) -> SubmitOutcome:
        """The check of a write Nomad answered. The job exists by now, so even a refused connection here (the agent
        stopping between the two requests) is not "never landed": the error stays ambiguous, and the launch is
        looked up before anything is recorded, never recorded failed while its job waits in Nomad."""
        try:
            created = self._created_by(name, reply)
        except BackendUnreachable as exc:
            raise TransientBackendError(f"nomad job {name} registered, its check not answered: {exc}") from exc
        return SubmitOutcome.SUBMITTED if created else SubmitOutcome.ALREADY_EXISTED

    def _created_by(self, name: str, reply: Mapping[str, Any]) -> bool:
        """Whether our write created the job. Nomad checks create-only against a snapshot before its raft
        write, so two registrations racing within milliseconds can both pass; the job's CreateIndex names
        the one that created it, and every other racer reports already_existed (see docs/backends.md).
        It is read from the job's summary, which Nomad creates in the same write as the job and keeps until the
        job is purged: the same index, at half the agent's CPU and a quarter of the wait of reading the whole job
        (this read is one of a launch's two requests, so it bounds a herd: benchmarks/bench_nomad_herd.py)."""
        summary = self._get_or_none("read job summary", lambda: self._job_summary(name))
        return summary is None or int(summary.get("CreateIndex", -1)) == int(reply.get("JobModifyIndex", -2))

    def lookup(self, name: str) -> BackendStatus | None:
        job = self._get_or_none("read job", lambda: self._client.job.get_job(name))
        if job is None:
            return None
        allocs = self._get_or_none("read allocations", lambda: self._client.job.get_allocations(name)) or []
        return job_status(job, allocs)

    def ended(self, names: Collection[str], timeout: float) -> set[str]:
        """The launches among `names` whose Nomad job is dead: a blocking query on the job list (filtered to dead
        jobs) that returns at once when the list changed since the last read, else when it changes or after
        `timeout`. The first read returns at once, so what ended before the follower watched is reported too."""
        wait = max(0, int(timeout * 1000))
        params = {"index": self._jobs_index, "wait": f"{wait}ms", "filter": 'Status == "dead"'}
        request = self._client.jobs.request
        response = self._call("watch jobs", lambda: request(method="get", params=params, timeout=timeout + 10))
        self._jobs_index = int(response.headers.get("X-Nomad-Index", self._jobs_index))
        dead = {str(job.get("ID")) for job in response.json()}
        return dead & set(names)

    def stop(self, name: str) -> None:
        self._get_or_none("stop", lambda: self._client.job.deregister_job(name, purge=False))

    def remove(self, name: str) -> None:
        self._get_or_none("purge", lambda: self._client.job.deregister_job(name, purge=True))

    def list(self, job: str) -> list[str]:
        """Jobs by ID prefix `<job>-` whose meta names `job` (the prefix `a-` also matches `a-b-...`)."""
        found = self._call("list", lambda: self._client.jobs.get_jobs(prefix=f"{job}-", meta=True))
        key = meta_key("cronframework.job")
        return sorted(j["ID"] for j in found if (j.get("Meta") or {}).get(key) == job)

    def logs(self, name: str) -> str:
        """stdout then stderr of the newest allocation ('' once Nomad has collected it)."""
        allocs = self._get_or_none("read allocations", lambda: self._client.job.get_allocations(name))
        alloc = newest_allocation(allocs or [])
        if alloc is None:
            return ""
        return "".join(self._log(str(alloc["ID"]), stream) for stream in ("stdout", "stderr"))

    def close(self) -> None:
        self._session.close()
        if self._launch_requests:
            self._launch_requests.close()

    # -- helpers --------------------------------------------------------------------------------------

    def _log(self, alloc_id: str, stream: str) -> str:
        read = self._client.client.stream_logs.stream
        text = self._get_or_none(f"read {stream}", lambda: read(alloc_id, TASK, stream, plain=True))
        return text or ""

    def _get_or_none(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            return self._call(what, call)
        except _NotFound:
            return None

    @staticmethod
    def _register_guarded(send: Callable[[], Any]) -> Any:
        before_send()  # a leader frozen since its check must not register after it was deposed (send_guard.py)
        return send()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return call()
            except nomad_errors.BaseNomadException as error:
                translated = self._translate(what, error)
            except Refused as answer:
                translated = self._answered(what, answer.status, answer.text)
            except Unanswered as error:
                translated = self._unanswered(what, error, self._redact(str(error)))
            except requests.RequestException as error:
                translated = self._unanswered(what, error, type(error).__name__)
            if not isinstance(translated, TransientBackendError) or attempt == self.retries:
                raise translated
        raise AssertionError("unreachable")

    def _translate(self, what: str, error: nomad_errors.BaseNomadException) -> BackendError | _Signal:
        response = error.nomad_resp
        if not isinstance(response, requests.Response):
            return self._unanswered(what, error, self._redact(str(response)) or type(response).__name__)
        return self._answered(what, response.status_code, response.text)

    def _answered(self, what: str, code: int, text: str) -> BackendError | _Signal:
        """An error status from Nomad, by either path."""
        text = self._redact(text.strip())
        if code == 404:
            return _NotFound()
        if ALREADY_EXISTS in text:
            return _AlreadyExists()
        message = f"nomad {what} refused ({code}): {text}"
        if code >= 500 and not any(marker in text for marker in PERMANENT_500):
            return TransientBackendError(message)
        return PermanentBackendError(message)

    def _unanswered(self, what: str, error: Exception, reason: str) -> BackendError:
        """No HTTP answer: an outage (transient), unless the TLS handshake refused a certificate -- a configuration
        that no retry fixes, and nothing was sent past the handshake."""
        if why := tls_refusal(error):
            return PermanentBackendError(f"nomad {what} at {self.address}: TLS with the agent failed, {why}")
        return transient_kind(error)(f"nomad {what} at {self.address} failed: {reason}")

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<redacted>") if self._token else text


class _Signal(Exception):
    """Outcomes that are answers, not errors: raised by _call, caught by the method that expects them."""


class _NotFound(_Signal):
    pass


class _AlreadyExists(_Signal):
    pass


def _already_existed() -> SubmitOutcome:
    return SubmitOutcome.ALREADY_EXISTED


def _session(connections: int) -> requests.Session:
    """One session for every thread, keeping up to `connections` connections open (requests keeps 10: with more
    threads than that, the extra ones opened a connection per request). Answers come uncompressed: the agent makes a
    fresh gzip compressor for each compressed answer, 0.7-1.2 ms of its CPU against 0.15-0.22 ms for the whole read
    of a few KB, and a megabyte for its collector (docs/backends.md, "Nomad")."""
    session = requests.Session()
    session.headers["Accept-Encoding"] = "identity"
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, connections))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _token(config: Mapping[str, Any]) -> str | None:
    if config.get("token"):
        return str(config["token"])
    if config.get("token_file"):
        try:
            return Path(str(config["token_file"])).read_text().strip() or None
        except OSError as error:
            raise PermanentBackendError(f"cannot read nomad token_file: {error.strerror}") from None
    return os.environ.get("NOMAD_TOKEN") or None


def _verify(config: Mapping[str, Any]) -> bool | str:
    if config.get("ca_cert"):
        return str(config["ca_cert"])
    return bool(config.get("verify", True))


def _cert(config: Mapping[str, Any]) -> tuple[str, ...]:
    cert, key = config.get("client_cert"), config.get("client_key")
    if cert and key:
        return (str(cert), str(key))
    if cert or key:
        raise PermanentBackendError("nomad client_cert and client_key must be given together")
    return ()


def _horizon(value: Any) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    return parse_duration(str(value))


def create(config: Mapping[str, Any]) -> NomadBackend:
    """Entry point `nomad`: build the adapter from the scheduler config's `nomad` section."""
    return NomadBackend(config)


__all__ = ["GROUP", "TASK", "NomadBackend", "create"]
