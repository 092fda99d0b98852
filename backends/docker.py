"""The Docker backend: one container per launch, named with the launch name, on a Docker daemon.

Every container carries `Launch.labels()`, so a new leader finds every launch from the daemon alone. Containers are
never auto-removed: an exited container is the launch's record until `remove`/`cleanup` (retention) deletes it, so
the backend has no GC horizon of its own. Images are never pulled: a missing image is a permanent launch failure.
Configuration and semantics are documented in docs/backends.md, "Docker".
"""

from __future__ import annotations

import builtins
import os
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import docker
import docker.errors
import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from backends.docker_spec import ContainerPlan, Placement, plan_container
from backends.docker_status import status_from_inspect
from backends.docker_transport import guard_sends
from cronframework.errors import (
    BackendUnreachable,
    CronframeworkError,
    PermanentBackendError,
    TransientBackendError,
    tls_refusal,
    transient_kind,
)
from cronframework.launch import BackendStatus, Launch, SubmitOutcome

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_OPEN = frozenset({"running", "restarting", "paused"})
_ENDS = ["die", "destroy", "oom"]  # container events after which a launch may have ended (or be gone)
_EVENTS_OVERLAP = 1.0  # seconds each events read goes back over the last one's end: none falls between two reads
_EVENTS_BACKLOG = 60.0  # the first read also reports what ended this long before the follower began watching


class TlsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True


class DockerConfig(BaseModel):
    """The `docker` section of the scheduler config."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    base_url: str | None = None
    tls: TlsConfig | None = None
    timeout: float = 30.0
    api_version: str = "auto"
    stop_grace: float = 10.0
    default_network: str | None = None
    allowed_mounts: list[str] = []
    init: bool = True
    rerun_guard: bool = True

    def placement(self) -> Placement:
        return Placement(self.default_network, tuple(self.allowed_mounts), self.init, self.rerun_guard)


@contextmanager
def translated(action: str, name: str) -> Iterator[None]:
    """Turn docker/requests exceptions into the project's transient/permanent split. A TLS handshake in which the
    daemon's certificate or ours was refused is permanent: nothing was sent, and retrying cannot fix the files."""
    try:
        yield
    except docker.errors.APIError as exc:
        status = exc.status_code
        message = f"docker {action} {name}: {exc.explanation or exc}"
        if status is None or status >= 500:
            raise TransientBackendError(message) from exc
        raise PermanentBackendError(message) from exc
    except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
        if why := tls_refusal(exc):
            raise PermanentBackendError(f"docker {action} {name}: TLS with the daemon failed, {why}") from exc
        raise transient_kind(exc)(f"docker daemon unreachable during {action} {name}: {exc}") from exc


def _never_started(state: dict[str, Any]) -> bool:
    """Created and never started: Docker's zero time is its StartedAt until the first start."""
    return state.get("Status") == "created" and str(state.get("StartedAt", "")).startswith("0001-")


def _is_conflict(exc: docker.errors.APIError) -> bool:
    return bool(exc.status_code == 409)


def _is_missing(exc: docker.errors.APIError) -> bool:
    return bool(exc.status_code == 404)


class _Client(docker.APIClient):  # type: ignore[misc]
    """Its connections check the send guard as a request leaves (docker_transport.py). And: requests lets a CA
    bundle named in the environment (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) replace a session's CA file on every
    request: the `tls.ca_cert` of the config was silently ignored wherever either is set. Here the session's own
    setting is passed as the request's, which the environment does not override."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        guard_sends(self)  # the last leadership check where a request leaves (docker_transport.py)

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        return super().merge_environment_settings(url, proxies, stream, self.verify if verify is None else verify, cert)


class DockerBackend:
    blocking = True
    enforces_timeout = False
    watches = True  # the daemon's events stream says which containers died
    confirms = False
    """Backend protocol on the Docker Engine API (docker SDK's low-level APIClient)."""

    def __init__(self, config: DockerConfig) -> None:
        self._config = config
        self._client: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._events_since: float | None = None  # the daemon's events are read from here on (Unix time)

    def _api(self) -> docker.APIClient:
        # Built lazily and kept: a daemon that is down at startup is a transient error on the first call, not a
        # scheduler that cannot start; once built, the client reconnects by itself after a daemon restart.
        with self._lock:
            if self._client is None:
                self._client = _Client(
                    base_url=self._config.base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET,
                    version=self._config.api_version,
                    timeout=self._config.timeout,
                    tls=_tls(self._config.tls),
                )
            return self._client

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        """Create and start the container; a name conflict means the launch exists (see `_resume`)."""
        plan = plan_container(name, launch, self._config.placement())
        with translated("submit", name):
            api = self._api()
            try:
                api.create_container(host_config=api.create_host_config(**plan.host), **plan.create)
            except docker.errors.ImageNotFound as exc:
                raise PermanentBackendError(f"image not found: {plan.image}") from exc
            except docker.errors.APIError as exc:
                if not _is_conflict(exc):
                    raise
                return self._resume(name, plan)
        return self._start_created(name)

    def _start_created(self, name: str) -> SubmitOutcome:
        """Start the container this submit just created, unless somebody started it since: a leader frozen
        between its create and its start may thaw after the next leader started the container (`_resume`) and
        it ended, and a start then runs an exited container again. Docker has no compare-and-start, so this
        narrows the race to the moment between the check and the start. Even a refused connection here is not
        "never landed": the container exists, so the error stays ambiguous and the launch is looked up, never
        recorded as failed while a created container waits in the daemon."""
        try:
            with translated("start", name):
                info = self._inspect(name)
                if info is None or not _never_started(info["State"]):
                    return SubmitOutcome.ALREADY_EXISTED
                self._api().start(name)
        except BackendUnreachable as exc:
            raise TransientBackendError(f"container {name} created, start not confirmed: {exc}") from exc
        return SubmitOutcome.SUBMITTED

    def _resume(self, name: str, plan: ContainerPlan) -> SubmitOutcome:
        """A container by this name exists. If it was created but never started, whoever created it died
        between create and start (a crashed leader): start it now and report SUBMITTED. Otherwise it ran or
        runs already: ALREADY_EXISTED. A container of another launch under this name is refused."""
        info = self._inspect(name)
        if info is None:
            raise TransientBackendError(f"container {name} vanished while submitting; retry")
        owner = (info.get("Config") or {}).get("Labels", {}).get("cronframework.launch")
        if owner != plan.create["labels"]["cronframework.launch"]:
            raise PermanentBackendError(f"container name {name} is taken by a container that is not this launch")
        if not _never_started(info["State"]):
            return SubmitOutcome.ALREADY_EXISTED  # running, exited, or started once before: never start it again
        self._api().start(name)
        return SubmitOutcome.SUBMITTED

    def _inspect(self, name: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = self._api().inspect_container(name)
        except docker.errors.APIError as exc:
            if _is_missing(exc):
                return None
            raise
        # Inspect also matches ID prefixes; only an exact name is this launch.
        return info if info.get("Name", "").lstrip("/") == name else None

    def lookup(self, name: str) -> BackendStatus | None:
        with translated("inspect", name):
            info = self._inspect(name)
        return None if info is None else status_from_inspect(info)

    def ended(self, names: Collection[str], timeout: float) -> set[str]:
        """The launches among `names` whose container died (or was removed) since the last call: one read of the
        daemon's events from where the last read ended until `timeout` from now. Each read starts a second before
        the last one ended, so an event on the boundary is read twice rather than missed."""
        now = time.time()
        since = self._events_since if self._events_since is not None else now - _EVENTS_BACKLOG
        until = now + max(0.0, timeout)
        filters = {"type": "container", "event": _ENDS, "label": "cronframework.launch"}
        wanted = set(names)
        seen: set[str] = set()
        with translated("read events", "of launched containers"):
            for event in self._api().events(since=f"{since:.6f}", until=f"{until:.6f}", filters=filters, decode=True):
                name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
                if name in wanted:
                    seen.add(name)
        self._events_since = until - _EVENTS_OVERLAP
        return seen

    def stop(self, name: str) -> None:
        """SIGTERM, then SIGKILL after `stop_grace` seconds; missing or already stopped is fine."""
        with translated("stop", name):
            try:
                self._api().stop(name, timeout=max(0, round(self._config.stop_grace)))
            except docker.errors.APIError as exc:
                if not _is_missing(exc):
                    raise

    def list(self, job: str) -> list[str]:
        with translated("list", job):
            found = self._api().containers(all=True, filters={"label": f"cronframework.job={job}"})
        return sorted(entry["Names"][0].lstrip("/") for entry in found if entry.get("Names"))

    def logs(self, name: str) -> str:
        with translated("logs", name):
            try:
                raw = self._api().logs(name, stdout=True, stderr=True)
            except docker.errors.APIError as exc:
                if _is_missing(exc):
                    return ""
                raise
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)

    def remove(self, name: str) -> None:
        """Delete a finished container; a running one is refused, a missing one is fine."""
        with translated("remove", name):
            info = self._inspect(name)
            if info is None:
                return
            if info["State"].get("Status") in _OPEN:
                raise PermanentBackendError(f"refusing to remove {name}: it is still running")
            try:
                self._api().remove_container(name, v=True, force=False)
            except docker.errors.APIError as exc:
                if not _is_missing(exc):
                    raise

    def cleanup(self, job: str, keep: int, protect: set[str] | frozenset[str] = frozenset()) -> builtins.list[str]:
        """Remove finished containers of `job` beyond the newest `keep`, never those in `protect` (open
        launches). Launch names sort chronologically, so "newest" is by name. Returns the removed names."""
        older = sorted(self.list(job), reverse=True)[max(keep, 0) :]
        removed: builtins.list[str] = []
        for name in sorted(older):
            status = self.lookup(name)
            if name in protect or status is None or status.state.active:
                continue
            self.remove(name)
            removed.append(name)
        return removed

    def retention_horizon(self) -> timedelta | None:
        """Docker keeps a container until it is removed: no horizon."""
        return None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _tls(tls: TlsConfig | None) -> docker.tls.TLSConfig | None:
    if tls is None:
        return None
    cert = (tls.client_cert, tls.client_key) if tls.client_cert and tls.client_key else None
    verify: bool | str = tls.ca_cert or tls.verify
    try:
        return docker.tls.TLSConfig(client_cert=cert, ca_cert=tls.ca_cert, verify=verify)
    except docker.errors.TLSParameterError as exc:
        raise CronframeworkError(f"docker backend tls: {exc}") from exc


def create(config: Mapping[str, Any]) -> DockerBackend:
    """Entry point `cronframework.backends: docker`."""
    try:
        parsed = DockerConfig.model_validate(dict(config))
    except ValidationError as exc:
        raise CronframeworkError(f"invalid docker backend config: {exc}") from exc
    return DockerBackend(parsed)
