"""The scheduler's config file (YAML) and flags: where ZooKeeper is, how the leader behaves, backend sections.

Secrets never sit in the file itself: the ZooKeeper digest auth comes from CRONFRAMEWORK_ZK_AUTH ("user:password")
or a file named by `auth_file`; backend tokens follow each backend's own *_file / env convention.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cronframework.engine.leader import LeaderConfig
from cronframework.engine.notify import NotifyConfig
from cronframework.errors import CronframeworkError, SpecError
from cronframework.ops.snapshot import SnapshotPolicy
from cronframework.spec import yamlpos
from cronframework.spec.files import did_you_mean
from cronframework.spec.model import Duration, PositiveDuration, Webhook
from cronframework.spec.yamlpos import Pos, YMap, YNode, YScalar, to_python
from cronframework.store.zookeeper.client import TlsFiles
from cronframework.store.zookeeper.store import ZooKeeperStore

AUTH_ENV = "CRONFRAMEWORK_ZK_AUTH"
DEFAULT_HOSTS = "127.0.0.1:2181"  # a config file without zookeeper.hosts: a local single-node ensemble


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZooKeeperTls(_Strict):
    """TLS to the servers' `secureClientPort`: their certificates must chain to `ca_file` (and, with
    `check_hostname`, name the host in `hosts`); `cert_file` and `key_file` when they require client certificates."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _cert_with_key(self) -> ZooKeeperTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self

    def files(self) -> TlsFiles:
        return TlsFiles(self.ca_file, self.cert_file, self.key_file, self.check_hostname)


class ZooKeeperConfig(_Strict):
    hosts: str = DEFAULT_HOSTS
    root: str = "/cronframework"
    session_timeout: float = Field(default=10.0, gt=0, description="bounds the takeover time after a leader dies")
    connect_timeout: float = 10.0
    auth_file: str | None = None
    world_read: bool = False
    tls: ZooKeeperTls | None = None

    def connect(self) -> ZooKeeperStore:
        """A store on this ensemble and root, with the configured credentials, TLS and timeouts."""
        return ZooKeeperStore.connect(
            self.hosts,
            self.root,
            auth=self.auth(),
            world_read=self.world_read,
            timeout=self.connect_timeout,
            session_timeout=self.session_timeout,
            tls=self.tls.files() if self.tls else None,
        )

    def auth(self) -> tuple[str, str] | None:
        raw = os.environ.get(AUTH_ENV)
        if raw is None and self.auth_file:
            raw = Path(self.auth_file).read_text().strip()
        if not raw:
            return None
        user, sep, password = raw.partition(":")
        if not sep or not user or not password:
            raise CronframeworkError(f"ZooKeeper auth must look like 'user:password' (from {AUTH_ENV} or auth_file)")
        return user, password


class SchedulerSection(_Strict):
    tolerance: Duration = timedelta(seconds=30)
    poll_interval: float = 1.0
    max_clock_skew: Duration = timedelta(seconds=5)
    clock_check_every: float = 30.0
    workers: int = 16
    stage_ahead: float = Field(default=10.0, ge=0.0)  # plan and build an instant's launches this early; 0: off


class TlsSection(_Strict):
    """The API served over TLS: its certificate and key; with `client_ca_file`, clients (and the other replicas,
    which forward writes with the same pair) must present a certificate it signed. `ca_file` is what this replica
    trusts when it forwards to another one (default: the system's CAs)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    ca_file: str | None = None


class ApiSection(_Strict):
    """The HTTP API and status page; loopback unless told. The token comes from a file or env, never the file."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8461, ge=0, le=65535)
    advertise_url: str | None = None  # how other replicas reach this one (default http://HOST:PORT)
    token_env: str = "CRONFRAMEWORK_API_TOKEN"
    token_file: str | None = None
    read_auth: bool = False  # also require the token for reads (status page included)
    tls: TlsSection | None = None  # None: plain HTTP

    def token(self) -> str | None:
        raw = os.environ.get(self.token_env)
        if raw is None and self.token_file:
            raw = Path(self.token_file).read_text().strip()
        return raw or None


class SnapshotSection(_Strict):
    """Periodic backups by the leader (docs/backups.md): one file every `every` into `dir`, the newest `keep` kept."""

    dir: str
    every: Duration = Field(default=timedelta(hours=1), gt=timedelta(0))
    keep: int = Field(default=24, ge=1)


class NotifySection(_Strict):
    """Webhook notifications (docs/jobs.md, "Notifications"): the cluster's default webhooks, for every job that
    declares none, and how hard each notice is tried."""

    webhooks: list[Webhook] = []
    attempts: int = Field(default=5, ge=1, le=20)
    backoff: PositiveDuration = timedelta(seconds=1)
    max_backoff: PositiveDuration = timedelta(seconds=30)
    timeout: PositiveDuration = timedelta(seconds=10)

    def config(self) -> NotifyConfig:
        return NotifyConfig(
            defaults=tuple(self.webhooks),
            attempts=self.attempts,
            backoff=self.backoff,
            max_backoff=self.max_backoff,
            timeout=self.timeout.total_seconds(),
        )


class ServiceConfig(_Strict):
    zookeeper: ZooKeeperConfig = ZooKeeperConfig()
    scheduler: SchedulerSection = SchedulerSection()
    api: ApiSection = ApiSection()
    backends: dict[str, dict[str, Any]] = {}
    snapshot: SnapshotSection | None = None
    notify: NotifySection = NotifySection()

    def leader_config(self, *, cluster: str | None = None, source: str | None = None) -> LeaderConfig:
        """The leader's settings. `cluster` (the launches' cronframework.cluster label) and `source` (the origin
        snapshots name) default to the ZooKeeper root; the embedded mode, which has none, gives its own."""
        s = self.scheduler
        return LeaderConfig(
            cluster=cluster or self.zookeeper.root,
            tolerance=s.tolerance,
            poll_interval=s.poll_interval,
            max_clock_skew=s.max_clock_skew,
            clock_check_every=s.clock_check_every,
            workers=s.workers,
            stage_ahead=s.stage_ahead,
            snapshot=self._snapshot_policy(source or self.zookeeper.root),
            notify=self.notify.config(),
        )

    def _snapshot_policy(self, source: str) -> SnapshotPolicy | None:
        snap = self.snapshot
        return SnapshotPolicy(Path(snap.dir), snap.every, snap.keep, source) if snap else None


def load_config(path: str | None, overrides: dict[str, Any]) -> ServiceConfig:
    """Read the file (if any), then apply flag overrides given as {"zookeeper": {...}}; one-line errors that name
    the file's line and column (or "flags" when a flag's value is the problem)."""
    return _load(path, overrides, refused={})


EMBEDDED_REFUSED = {
    "zookeeper": "configures `cronframework scheduler`; `run` keeps its state in --state-dir (remove the section)",
}


def load_embedded_config(path: str | None, overrides: dict[str, Any]) -> ServiceConfig:
    """`run --config`: the scheduler's format, less the sections that would suggest a cluster it does not join."""
    return _load(path, overrides, refused=EMBEDDED_REFUSED)


def _load(path: str | None, overrides: dict[str, Any], refused: dict[str, str]) -> ServiceConfig:
    root = _read(path, refused) if path else None
    data = _with_overrides(to_python(root) if isinstance(root, YMap) else {}, overrides)
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise _error(exc.errors(include_url=False)[0], path, root, overrides) from None


def _read(path: str, refused: dict[str, str]) -> YNode | None:
    """The file as a positioned tree, read as safely as job files are (duplicate keys, tags and bombs refused)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CronframeworkError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    root = yamlpos.parse(yamlpos.decode(data, path), path)
    if root is not None and not isinstance(root, YMap):
        raise _at(root.pos, path, "config must be a mapping of sections (zookeeper, scheduler, api, backends...)")
    for section, reason in refused.items():
        if root is not None and section in root.entries:
            raise _at(root.entries[section][0].pos, path, f"section {section!r} {reason}")
    return root


def _with_overrides(plain: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The file's sections with the flags that were given on top; the parsed tree itself is left as it was."""
    data = dict(plain)
    for section, values in overrides.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            current = data.get(section)
            data[section] = {**current, **given} if isinstance(current, dict) else given
    return data


def _error(detail: Any, path: str | None, root: YNode | None, overrides: dict[str, Any]) -> CronframeworkError:
    loc = tuple(detail["loc"])
    field = ".".join(str(part) for part in loc)
    if detail["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}{did_you_mean(str(loc[-1]), _keys_at(loc[:-1]))}"
    else:
        message = str(detail["msg"])
    if path is None or _from_flags(loc, overrides):
        return CronframeworkError(f"flags: field {field!r}: {message}")
    return _at(_where(root, loc, detail["type"] == "extra_forbidden"), path, message, field)


def _from_flags(loc: tuple[Any, ...], overrides: dict[str, Any]) -> bool:
    section = overrides.get(loc[0]) or {}
    return len(loc) > 1 and section.get(loc[1]) is not None


def _where(root: YNode | None, loc: tuple[Any, ...], at_key: bool) -> Pos | None:
    """Line and column of the value at `loc` (of its key when `at_key`); of the deepest key found when the value is
    missing from the file, or of the document when none is."""
    key: YScalar | None = None
    node = root
    for part in loc:
        if not isinstance(node, YMap) or part not in node.entries:
            at_key, node = True, None
            break
        key, node = node.entries[part]
    spot = (key if at_key or node is None else node) or root
    return spot.pos if spot is not None else None


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at `loc` accepts, for did-you-mean; none where keys are free-form (backends)."""
    model: Any = ServiceConfig
    for part in loc:
        field = model.model_fields.get(part)
        kinds = (field.annotation, *get_args(field.annotation)) if field is not None else ()
        model = next((kind for kind in kinds if isinstance(kind, type) and issubclass(kind, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _at(pos: Pos | None, path: str, message: str, field: str | None = None) -> SpecError:
    return SpecError(message, file=path, line=pos.line if pos else None, col=pos.col if pos else None, field=field)
