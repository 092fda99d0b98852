"""The scheduler's config file (YAML) and flags: where ZooKeeper is, how the leader behaves, backend sections.

Secrets never sit in the file itself: the ZooKeeper digest auth comes from CRONFRAMEWORK_ZK_AUTH ("user:password")
or a file named by `auth_file`; backend tokens follow each backend's own *_file / env convention.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cronframework.engine.leader import LeaderConfig
from cronframework.errors import CronframeworkError
from cronframework.ops.snapshot import SnapshotPolicy
from cronframework.spec.model import Duration

if TYPE_CHECKING:
    from cronframework.store.zookeeper.store import ZooKeeperStore

AUTH_ENV = "CRONFRAMEWORK_ZK_AUTH"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZooKeeperConfig(_Strict):
    hosts: str = "127.0.0.1:2181"
    root: str = "/cronframework"
    session_timeout: float = Field(default=10.0, gt=0, description="bounds the takeover time after a leader dies")
    connect_timeout: float = 10.0
    auth_file: str | None = None
    world_read: bool = False

    def connect(self) -> ZooKeeperStore:
        """A store on this ensemble and root, with the configured credentials and timeouts."""
        from cronframework.store.zookeeper.store import ZooKeeperStore

        return ZooKeeperStore.connect(
            self.hosts,
            self.root,
            auth=self.auth(),
            world_read=self.world_read,
            timeout=self.connect_timeout,
            session_timeout=self.session_timeout,
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
    stage_ahead: float = Field(default=1.0, ge=0.0)  # plan and build an instant's launches this early; 0: off


class ApiSection(_Strict):
    """The HTTP API and status page; loopback unless told. The token comes from a file or env, never the file."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8461, ge=0, le=65535)
    advertise_url: str | None = None  # how other replicas reach this one (default http://HOST:PORT)
    token_env: str = "CRONFRAMEWORK_API_TOKEN"
    token_file: str | None = None
    read_auth: bool = False  # also require the token for reads (status page included)

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


class ServiceConfig(_Strict):
    zookeeper: ZooKeeperConfig = ZooKeeperConfig()
    scheduler: SchedulerSection = SchedulerSection()
    api: ApiSection = ApiSection()
    backends: dict[str, dict[str, Any]] = {}
    snapshot: SnapshotSection | None = None

    def leader_config(self) -> LeaderConfig:
        s = self.scheduler
        return LeaderConfig(
            cluster=self.zookeeper.root,
            tolerance=s.tolerance,
            poll_interval=s.poll_interval,
            max_clock_skew=s.max_clock_skew,
            clock_check_every=s.clock_check_every,
            workers=s.workers,
            stage_ahead=s.stage_ahead,
            snapshot=self._snapshot_policy(),
        )

    def _snapshot_policy(self) -> SnapshotPolicy | None:
        snap = self.snapshot
        return SnapshotPolicy(Path(snap.dir), snap.every, snap.keep, self.zookeeper.root) if snap else None


def load_config(path: str | None, overrides: dict[str, Any]) -> ServiceConfig:
    """Read the file (if any), then apply flag overrides given as {"zookeeper": {...}}; one-line errors."""
    data: dict[str, Any] = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CronframeworkError(f"{path}: cannot read config: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise CronframeworkError(f"{path}: config must be a mapping")
    for section, values in overrides.items():
        data.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise CronframeworkError(f"{path or 'flags'}: field {field!r}: {first['msg']}") from None
