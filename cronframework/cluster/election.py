"""Leader election on ZooKeeper, with the session handling a scheduler needs to fail closed.

Each replica owns one ephemeral-sequential znode under `{root}/election/`; the lowest sequence leads, every
other replica watches only its predecessor (no herd). The leader's node is its fence: the store checks it
inside every leader write, and the node's sequence number is the leader's epoch (monotonic across leaders).

Connection states, handled here and not left to the caller:
- SUSPENDED: `on_suspended` at once -- the leader must stop launching; its session may still be alive.
- CONNECTED again: the node is re-verified with exists(); still there -> `on_elected` again with the same
  fence (same epoch); gone -> `on_lost` and a fresh join.
- LOST (session expired): `on_lost`, leader state dropped, and a NEW node is created once connected again. A LOST
  handled after this thread already joined in the new session (the events were queued behind a `connected` or a
  `check`) is stale: the node it would forget is alive and ours, so it is kept.
- Any other node of ours (an earlier guid of this object, found in the listing) is an orphan of our live session
  (a stale LOST, a create whose reply was lost): it is deleted, or it would stand ahead of us until the session ends.
- A pause of the whole process (SIGSTOP, a frozen VM) longer than `max_pause`: treated as SUSPENDED, then the node
  is re-verified. Kazoo learns that the session expired meanwhile only once it reads its socket again, and every
  thread resumes at once: a leader's launch threads would run before that.

kazoo calls state listeners and watches on its own threads; they only enqueue events here. One event thread of
this object makes every ZooKeeper call and delivers every callback, in order. Callbacks must be quick (set an
Event, enqueue work): a slow callback delays the next one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.security import ACL

from cronframework.store.zookeeper.client import zk_errors

log = logging.getLogger(__name__)

NODE_MARK = "__n__"  # node names are <guid>__n__<sequence>: the guid finds our node after a lost create reply


@dataclass(frozen=True)
class ZkFence:
    """Proof of leadership for ZooKeeperStore: the leader's own election znode, checked inside each write."""

    epoch: int
    replica: str
    node_path: str


@dataclass(frozen=True)
class Candidate:
    """One replica in the election, as `status` shows it."""

    replica: str
    host: str
    pid: int
    started: str
    epoch: int
    node: str


def sequence_of(node_name: str) -> int:
    return int(node_name.rsplit(NODE_MARK, 1)[1])


class Election:
    def __init__(
        self,
        client: KazooClient,
        root: str,
        replica_id: str,
        *,
        on_elected: Callable[[ZkFence], None] = lambda fence: None,
        on_suspended: Callable[[], None] = lambda: None,
        on_lost: Callable[[], None] = lambda: None,
        acl: list[ACL] | None = None,
        retry_delay: float = 0.5,
        max_pause: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        pulse_every: float = 0.1,
    ) -> None:
        self._client = client
        self._folder = "/" + root.strip("/") + "/election"
        self.replica_id = replica_id
        self._on_elected, self._on_suspended, self._on_lost = on_elected, on_suspended, on_lost
        self._acl = acl
        self._retry_delay = retry_delay
        # a stand-still longer may have outlived the session: kazoo pings every third of the session timeout, so
        # anything under two thirds cannot; a replica passes half
        self._max_pause = max_pause
        self._monotonic = monotonic
        self._pulse_every = pulse_every
        self._pulse_at = monotonic()  # the pulse thread's last beat
        self._events: queue.Queue[str] = queue.Queue()
        self._node: str | None = None  # our znode's full path while we are in the election
        self._guid = ""
        self._old_guids: set[str] = set()  # guids of earlier joins: a node still named so is an orphan of ours
        self._losses = 0  # LOSTs kazoo reported (its thread)
        self._losses_handled = 0  # LOSTs this object's thread handled
        self._joined_after = 0  # `_losses` just before our node's create: a LOST up to this one is stale for it
        self._watching = ("", "")  # (our node, its predecessor) last watched, for the log
        self._fence: ZkFence | None = None  # set while we lead and the connection is healthy
        self._suspended_fence: ZkFence | None = None  # set while we led and the connection is in doubt
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"election-{replica_id}", daemon=True)
        self.elected = threading.Event()  # set exactly while this replica may act as leader

    # -- public API
    def start(self) -> Election:
        self._client.add_listener(self._listener)
        self._thread.start()
        self._pulse_at = self._monotonic()
        threading.Thread(target=self._pulse, name=f"election-pulse-{self.replica_id}", daemon=True).start()
        self._events.put("check")
        return self

    @property
    def fence(self) -> ZkFence | None:
        return self._fence

    @property
    def is_leader(self) -> bool:
        return self._fence is not None

    def holds(self, fence: ZkFence) -> bool:
        """`fence` may still be used to call a backend. `elected` is cleared on kazoo's thread the moment the
        connection drops, while `fence` waits for this object's thread, which may be inside a ZooKeeper call."""
        return self._fence == fence and self.elected.is_set() and not self._stood_still()

    def _stood_still(self) -> bool:
        """The pulse is late: this process did not run for a while. Asked by the caller too, because after a
        SIGCONT the caller's thread may run before the pulse thread does."""
        return self._monotonic() - self._pulse_at > self._max_pause

    def resign(self, timeout: float = 10.0) -> None:
        """Leave the election for good (SIGTERM hand-over): deleting our node wakes the next one at once."""
        self._events.put("resign")
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:
            self._resign()

    def leader(self) -> Candidate | None:
        candidates = self.replicas()
        return candidates[0] if candidates else None

    def replicas(self) -> list[Candidate]:
        """Every replica in the election, the leader first."""
        out = []
        with zk_errors("listing election candidates"):
            for name in self._sorted_children():
                with contextlib.suppress(NoNodeError):
                    data, _ = self._client.get(f"{self._folder}/{name}")
                    info = json.loads(data or b"{}")
                    out.append(Candidate(node=name, epoch=sequence_of(name), **info))
        return out

    # -- kazoo threads: enqueue only
    def _listener(self, state: str) -> None:
        if state == KazooState.SUSPENDED:
            self.elected.clear()  # before any queued work: the leader loop sees it without waiting for us
        elif state == KazooState.LOST:
            self._losses += 1  # before the event: `_join` reads it to tell a stale LOST
        self._events.put({KazooState.SUSPENDED: "suspended", KazooState.LOST: "lost"}.get(state, "connected"))

    def _pulse(self) -> None:
        while not self._stopped:
            time.sleep(self._pulse_every)
            self._beat()

    def _beat(self) -> None:
        if self._stood_still() and self.elected.is_set():
            log.warning("election %s: the process stood still; verifying leadership again", self.replica_id)
            self.elected.clear()  # before the beat below: a caller that sees the new beat sees this too
            self._events.put("suspended")
            self._events.put("connected")  # one round trip to our node before leading again
        self._pulse_at = self._monotonic()

    def _watch(self, _event: Any) -> None:
        self._events.put("check")

    # -- the election thread
    def _run(self) -> None:
        handlers = {
            "check": self._check,
            "suspended": self._suspended,
            "connected": self._connected,
            "lost": self._lost,
            "resign": self._resign,
        }
        while not self._stopped:
            event = self._events.get()
            try:
                handlers[event]()
            except (KazooException, OSError) as exc:
                log.info("election %s: %s during %s; will retry", self.replica_id, type(exc).__name__, event)
                self._retry_later()
            except Exception:  # a failing callback must not end the election thread and freeze leadership
                log.exception("election %s: error while handling %s", self.replica_id, event)
        self._client.remove_listener(self._listener)

    def _retry_later(self) -> None:
        if self._client.connected and not self._stopped:
            threading.Timer(self._retry_delay, self._events.put, args=("check",)).start()

    def _check(self) -> None:
        if self._stopped or not self._client.connected:
            return
        if self._node is None:
            self._join()
        children = self._sorted_children()
        mine = self._node.rsplit("/", 1)[1] if self._node else ""
        children = self._drop_orphans(children, mine)
        if mine not in children:  # our node vanished without a LOST (deleted by hand): start over
            self._node = None
            self._step_down()
            self._events.put("check")
            return
        index = children.index(mine)
        if index == 0:
            self._become_leader()
        else:
            predecessor = children[index - 1]
            if (mine, predecessor) != self._watching:  # logged once per pair: who waits for whom, when nobody leads
                log.info("election %s: %s waits for %s", self.replica_id, mine, predecessor)
                self._watching = (mine, predecessor)
            if self._client.exists(f"{self._folder}/{predecessor}", watch=self._watch) is None:
                self._events.put("check")  # the predecessor left between listing and watching

    def _drop_orphans(self, children: list[str], mine: str) -> list[str]:
        """Delete our nodes other than `mine`: ephemeral nodes of a dead session are gone already, so one still
        listed belongs to our live session and would never leave by itself."""
        kept = []
        for name in children:
            if name != mine and name.split(NODE_MARK, 1)[0] in self._old_guids:
                log.warning("election %s: deleting an orphaned node of ours: %s", self.replica_id, name)
                with contextlib.suppress(NoNodeError):
                    self._client.delete(f"{self._folder}/{name}")
            else:
                kept.append(name)
        return kept

    def _join(self) -> None:
        if self._guid:
            self._old_guids.add(self._guid)
        self._guid = uuid.uuid4().hex
        self._joined_after = self._losses
        self._client.ensure_path(self._folder, acl=self._acl)
        data = json.dumps(
            {
                "replica": self.replica_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": datetime.now(UTC).isoformat(),
            }
        ).encode()
        prefix = f"{self._folder}/{self._guid}{NODE_MARK}"
        try:
            self._node = self._client.create(prefix, data, acl=self._acl, ephemeral=True, sequence=True)
        except (KazooException, OSError):
            self._node = self._find_own_node()  # the create may have applied although its reply was lost
            if self._node is None:
                raise  # a node that applied anyway is found later as an orphan (`_drop_orphans`)
        log.info("election %s: joined as %s", self.replica_id, self._node.rsplit("/", 1)[1] if self._node else "?")

    def _find_own_node(self) -> str | None:
        with contextlib.suppress(KazooException, OSError):
            for name in self._client.get_children(self._folder):
                if name.startswith(self._guid + NODE_MARK):
                    return f"{self._folder}/{name}"
        return None

    def _sorted_children(self) -> list[str]:
        names = [n for n in self._client.get_children(self._folder) if NODE_MARK in n]
        return sorted(names, key=sequence_of)

    def _become_leader(self) -> None:
        if self._fence is not None or self._node is None:
            return
        self._fence = ZkFence(sequence_of(self._node), self.replica_id, self._node)
        self._suspended_fence = None
        self.elected.set()
        self._on_elected(self._fence)

    def _suspended(self) -> None:
        self.elected.clear()
        if self._fence is not None:
            self._suspended_fence, self._fence = self._fence, None
            self._on_suspended()

    def _connected(self) -> None:
        fence = self._suspended_fence
        if fence is not None and self._client.exists(fence.node_path) is None:
            self._node = None  # the session survived but our node did not: we no longer lead
            self._step_down()
        self._suspended_fence = None
        self._check()  # resumes leadership (same node, same epoch) or re-joins / re-watches

    def _lost(self) -> None:
        self._losses_handled += 1
        if self._node is not None and self._losses_handled <= self._joined_after:
            # this LOST was reported before our node's create was sent: the node lives in a later session
            log.info("election %s: a stale LOST; keeping %s", self.replica_id, self._node.rsplit("/", 1)[1])
            return
        self._node = None  # ZooKeeper deleted our ephemeral node with the session
        self._step_down()

    def _step_down(self) -> None:
        was_leader = self._fence is not None or self._suspended_fence is not None
        self._fence = self._suspended_fence = None
        self.elected.clear()
        if was_leader:
            self._on_lost()

    def _resign(self) -> None:
        self._stopped = True
        self._fence = self._suspended_fence = None
        self.elected.clear()
        if self._node is not None:
            with contextlib.suppress(KazooException, OSError):
                self._client.delete(self._node)
            self._node = None


def wait_for_leader(elections: list[Election], timeout: float = 10.0) -> Election:
    """The one election that leads (tests and tools); raises TimeoutError when none does in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = [e for e in elections if e.is_leader]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.02)
    raise TimeoutError(f"no single leader among {len(elections)} replicas within {timeout}s")


def election_members(client: KazooClient, root: str) -> list[dict[str, Any]]:
    """The election's replicas, leader first, for `status` (read only: joins nothing)."""
    return [dict(vars(c)) for c in Election(client, root, "status-reader").replicas()]
