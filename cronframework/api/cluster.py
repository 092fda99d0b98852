"""What the API needs to know about the replicas: who leads, where each one's API is, whether this one is ready.

A ZooKeeper replica publishes its API address in an ephemeral znode `{root}/api/{replica}` (the election's node
data is written once at join, so the address lives beside it); ZooKeeper deletes it with the session, and a keeper
thread re-creates it after a session loss. The embedded mode has one process, always the leader.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cronframework.cluster.election import Election
from cronframework.errors import CronframeworkError
from cronframework.store.zookeeper.client import call, zk_errors

CLOSE_TIMEOUT = 2.0  # seconds a stopping replica waits to take its API address down


class Cluster(Protocol):
    replica_id: str

    @property
    def root(self) -> str | None:
        """The ZooKeeper root for `status.collect`, None when there is no election."""
        ...

    def members(self) -> list[dict[str, Any]]:
        """Every replica, the leader first, each with its `api` URL (None when unknown)."""
        ...

    def is_leader(self) -> bool: ...

    def leader_url(self) -> str | None: ...

    def readiness(self) -> tuple[bool, str]: ...


@dataclass
class LocalCluster:
    """One process that leads while `leading()` says so: the embedded mode, and unit tests."""

    replica_id: str
    url: str | None = None
    epoch: Callable[[], int | None] = lambda: None
    leading: Callable[[], bool] = lambda: True
    ready: Callable[[], tuple[bool, str]] = lambda: (True, "embedded leader")
    others: list[dict[str, Any]] = field(default_factory=list)  # tests: followers' view of a leader elsewhere

    @property
    def root(self) -> str | None:
        return None

    def members(self) -> list[dict[str, Any]]:
        me = {"replica": self.replica_id, "epoch": self.epoch(), "api": self.url}
        return [me, *self.others] if self.leading() else [*self.others, me]

    def is_leader(self) -> bool:
        return self.leading()

    def leader_url(self) -> str | None:
        return self.url if self.leading() else next((o.get("api") for o in self.others), None)

    def readiness(self) -> tuple[bool, str]:
        return self.ready()


def api_folder(root: str) -> str:
    return "/" + root.strip("/") + "/api"


class ZkCluster:
    """The election's view plus the published API addresses; reads go to ZooKeeper on every call."""

    def __init__(
        self,
        client: Any,
        root: str,
        replica_id: str,
        *,
        leading: Callable[[], bool],
        ready: Callable[[], tuple[bool, str]],
        acl: Any = None,
    ) -> None:
        self._client, self._root, self.replica_id = client, root, replica_id
        self._leading, self._ready, self._acl = leading, ready, acl
        self._reader = Election(client, root, f"{replica_id}-api-reader")
        self._url: str | None = None
        self._stop = threading.Event()

    @property
    def root(self) -> str | None:
        return self._root

    def members(self) -> list[dict[str, Any]]:
        urls = self._published()
        with zk_errors("listing replicas"):
            candidates = self._reader.replicas()
        return [{**vars(c), "api": urls.get(c.replica)} for c in candidates]

    def is_leader(self) -> bool:
        return self._leading()

    def leader_url(self) -> str | None:
        members = self.members()
        return members[0]["api"] if members else None

    def readiness(self) -> tuple[bool, str]:
        if not self._client.connected:
            return False, "not connected to ZooKeeper"
        return self._ready()

    # -- publishing this replica's address
    def publish(self, url: str, every: float = 2.0) -> None:
        """Create the ephemeral address node now and keep it there (a session loss deletes it)."""
        self._url = url
        with contextlib.suppress(CronframeworkError):
            self._ensure()
        thread = threading.Thread(target=self._keep, args=(every,), name="api-advert", daemon=True)
        thread.start()

    def close(self) -> None:
        """Take the address down now rather than at the session's end; bounded, so that a replica stopped while
        ZooKeeper is unreachable still exits (the node goes with its session then anyway)."""
        self._stop.set()
        from kazoo.exceptions import NoNodeError

        if not self._client.connected:
            return
        path = f"{api_folder(self._root)}/{self.replica_id}"
        with contextlib.suppress(CronframeworkError):
            call(self._client, "removing the API address", lambda: self._client.delete_async(path), CLOSE_TIMEOUT,
                 none_on=(NoNodeError,))  # fmt: skip

    def _keep(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(CronframeworkError):
                self._ensure()

    def _ensure(self) -> None:
        from kazoo.exceptions import NodeExistsError

        if not self._client.connected or self._url is None:
            return
        path = f"{api_folder(self._root)}/{self.replica_id}"
        data = json.dumps({"replica": self.replica_id, "url": self._url}).encode()
        with zk_errors("publishing the API address"), contextlib.suppress(NodeExistsError):
            if self._client.exists(path) is None:
                self._client.ensure_path(api_folder(self._root), acl=self._acl)
                self._client.create(path, data, acl=self._acl, ephemeral=True)

    def _published(self) -> dict[str, str]:
        from kazoo.exceptions import NoNodeError

        folder, out = api_folder(self._root), {}
        with zk_errors("reading API addresses"):
            try:
                names = self._client.get_children(folder)
            except NoNodeError:
                return {}
            for name in names:
                with contextlib.suppress(NoNodeError, ValueError):
                    out[name] = str(json.loads(self._client.get(f"{folder}/{name}")[0])["url"])
        return out
