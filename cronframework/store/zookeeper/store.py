"""ZooKeeperStore: the StateStore on a ZooKeeper ensemble (layout and ACLs: docs/design.md, "State in ZooKeeper").

Leader writes are fenced multi-op transactions (batch.py): each first checks the leader's own election
znode, so a replica whose session expired -- and whose ephemeral node ZooKeeper therefore deleted -- can
write nothing. Reads fetch only what they return: listing a folder, then pipelining the gets of the few
nodes asked for."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.recipe.watchers import DataWatch
from kazoo.security import ACL

from cronframework.abc import Fence, PreparedBegin
from cronframework.errors import BeginRefused, ConflictError, LeadershipLost, StateStoreError
from cronframework.naming import parse_launch_name
from cronframework.records import (
    Begin,
    JobResults,
    JobState,
    JsonDocument,
    LaunchRecord,
    Notice,
    ResultBatch,
    SpecChange,
    StoredSpec,
    TriggerRequest,
)
from cronframework.store import BeginNow
from cronframework.store.zookeeper.batch import Chunk, FencedWriter, Group, PreparedWrite
from cronframework.store.zookeeper.chain import BeginChain
from cronframework.store.zookeeper.client import Auth, call, connect_zk, digest_acl, gather, zk_errors
from cronframework.store.zookeeper.lasts import LastResults, Read
from cronframework.store.zookeeper.layout import (
    SECTIONS,
    TRIGGER_PREFIX,
    Layout,
    decode_json,
    decode_trigger,
    encode_json,
    encode_trigger,
    hour_of,
    hour_of_name,
    launch_order,
    normalize_root,
)
from cronframework.store.zookeeper.open_index import OpenIndex, decode_names, encode_names, node_name
from cronframework.store.zookeeper.wire import Op, flatten, flatten_lists, list_many_async, read_many_async

PROBE_AHEAD = timedelta(minutes=5)  # launches are begun up to `stage_ahead` (10 s by default) before their instant
log = logging.getLogger("cronframework.store")


def fence_path(fence: Fence) -> str:
    path = getattr(fence, "node_path", None)
    if not isinstance(path, str):
        raise StateStoreError("the ZooKeeper store needs a ZkFence (with the election node path) for leader writes")
    return path


class ZooKeeperStore:
    def __init__(
        self,
        client: KazooClient,
        root: str,
        acl: Sequence[ACL] | None = None,
        *,
        timeout: float = 10.0,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._layout = Layout(normalize_root(root))
        self._acl = list(acl) if acl else None
        self._timeout = timeout
        self._owns_client = owns_client
        self._closed = False
        self.writer = FencedWriter(client, self._acl, timeout)
        self._chain = BeginChain(client, self._layout.chain, timeout)
        # znodes seen to exist: job-state nodes are never deleted, so a begin whose jobs are all known skips
        # listing a folder of 10k+ children; an unknown job falls back to listing
        self._known_jobs: set[str] = set()
        # job -> its newest hour folder seen or made ("" once only the job's own folder is known). One slot per job,
        # whatever the history: a set of every folder seen grew by a path per job and hour. An hour not known
        # (a catch-up of an older one) costs a share of a multiRead.
        self._hours: dict[str, str] = {}
        # the open index as this store made or read it (the leader is its only writer); it lists every launch not
        # concluded: begun (recovery's to-do list), or launched with its result still to come (the follower's)
        self._open = OpenIndex()
        self._known_results: set[str] | None = None  # jobs whose results summary node exists
        self._lasts = LastResults(self._layout.job)  # checked against the stats it was found with, not trusted
        self._ensure_layout()

    @classmethod
    def connect(
        cls, hosts: str, root: str, *, auth: Auth | None = None, world_read: bool = False, **connect: Any
    ) -> ZooKeeperStore:
        """A store with its own client; with `auth`, only that identity may write the znodes it creates."""
        client = connect_zk(hosts, auth=auth, **connect)
        acl = digest_acl(auth, world_read=world_read) if auth else None
        return cls(client, root, acl, owns_client=True)

    @property
    def client(self) -> KazooClient:
        return self._client

    @property
    def acl(self) -> list[ACL] | None:
        """The ACL every znode is created with (the Election should use it too)."""
        return self._acl

    @property
    def layout(self) -> Layout:
        return self._layout

    # -- plumbing
    def _call(self, what: str, start: Callable[[], Any], *, optional: bool = False) -> Any:
        return call(self._client, what, start, self._timeout, none_on=(NoNodeError,) if optional else ())

    def _ensure_layout(self) -> None:
        for section in (*SECTIONS, "clock"):
            self._ensure_path(self._layout.section(section))

    def _ensure_path(self, path: str) -> None:
        self._call("creating the store layout", lambda: self._client.ensure_path_async(path, self._acl))

    def _children(self, path: str, what: str) -> list[str]:
        return list(self._call(what, lambda: self._client.get_children_async(path), optional=True) or [])

    def _get_many(self, paths: Sequence[str], what: str) -> list[tuple[bytes, Any] | None]:
        """One multiRead per thousand paths (wire/read.py), pipelined; a missing znode is None."""
        if not paths:
            return []
        chunks = gather(self._client, what, read_many_async(self._client, paths), self._timeout)
        with zk_errors(what):
            return flatten(chunks)

    def _read_records(self, names: Sequence[str], what: str, job: str | None = None) -> list[LaunchRecord]:
        return [LaunchRecord.from_bytes(item[0]) for item in self._get_launches(names, what, job) if item is not None]

    def _get_launches(self, names: Sequence[str], what: str, job: str | None = None) -> list[tuple[bytes, Any] | None]:
        return self._get_many([self._layout.launch(n, job) for n in names], what)

    def _list_many(self, paths: Sequence[str], what: str) -> list[list[str]]:
        """Children of each path, one multiRead per thousand paths, pipelined; a missing folder lists as empty."""
        if not paths:
            return []
        chunks = gather(self._client, what, list_many_async(self._client, paths), self._timeout)
        with zk_errors(what):
            return [listed or [] for listed in flatten_lists(chunks)]

    def _folders_to_create(self, hours: set[tuple[str, str]]) -> list[str]:
        """The launch folders to create (parents first) so that each (job, hour) folder exists; counted as existing
        from now on, since the caller's next batch makes them (a failed batch drops the cache)."""
        known = self._hours
        unknown = sorted((job, hour) for job, hour in hours if known.get(job) != hour)
        if not unknown:
            return []
        got = self._get_many([self._layout.launch_hour(j, h) for j, h in unknown], "checking launch folders")
        missing = [(j, h) for (j, h), item in zip(unknown, got, strict=True) if item is None]
        parents = sorted({j for j, _ in missing if j not in known})  # a known hour implies its job's folder
        got = self._get_many([self._layout.launch_dir(j) for j in parents], "checking launch folders")
        absent = [self._layout.launch_dir(j) for j, item in zip(parents, got, strict=True) if item is None]
        for job, hour in unknown:
            if hour > known.get(job, ""):
                known[job] = sys.intern(hour)  # a herd's jobs share one string per hour
        return absent + [self._layout.launch_hour(j, h) for j, h in missing]

    def _create_or_set(self, path: str, data: bytes, exists: bool) -> Op:
        return Op("set", path, data) if exists else Op("create", path, data)

    # -- specs
    def read_specs(self) -> dict[str, StoredSpec]:
        names = sorted(self._children(self._layout.section("specs"), "reading specs"))
        got = self._get_many([self._layout.spec(n) for n in names], "reading specs")
        return {
            name: StoredSpec(name, JsonDocument(item[0], f"spec {name}"), item[1].version)
            for name, item in zip(names, got, strict=True)
            if item is not None
        }

    def write_specs(self, changes: Sequence[SpecChange]) -> None:
        if changes:
            groups = [Group(c.name, self._spec_ops(c)) for c in changes]
            # Touching the specs folder in the same transaction is the one event every replica watches: a
            # watch per spec would cost a read per job at every start (seconds at 10k jobs).
            stamp = Op("set", self._layout.section("specs"), str(len(changes)).encode())
            groups.append(Group("specs-changed", [stamp]))
            self.writer.commit(None, groups, "writing specs", atomic=True)

    def _spec_ops(self, change: SpecChange) -> list[Op]:
        path = self._layout.spec(change.name)
        if change.document is None and change.expected_version is None:
            return [Op("create", path), Op("delete", path)]  # asserts absence atomically, changes nothing
        if change.document is None:
            return [Op("delete", path, version=change.expected_version or 0)]
        data = encode_json(change.document, f"spec {change.name}")
        if change.expected_version is None:
            return [Op("create", path, data)]
        return [Op("set", path, data, version=change.expected_version)]

    def watch_specs(self, callback: Callable[[], None]) -> None:
        """One data watch on the specs folder, which every `write_specs` transaction touches."""
        first = [True]

        def on_data(_data: bytes | None, _stat: Any) -> bool:
            if self._closed:
                return False
            if not first[0]:
                callback()
            first[0] = False
            return True

        with zk_errors("watching specs"):
            DataWatch(self._client, self._layout.section("specs"), on_data)

    # -- schedule state and pause
    def read_job_states(self, jobs: Collection[str] | None = None) -> dict[str, JobState]:
        names = self._jobs_in("jobs", jobs, "reading job states")
        got = self._get_many([self._layout.job(j) for j in names], "reading job states")
        return {j: JobState.from_bytes(j, item[0]) for j, item in zip(names, got, strict=True) if item is not None}

    def _jobs_in(self, section: str, jobs: Collection[str] | None, what: str) -> list[str]:
        """The jobs asked, or every node of `section` (a listing): a page reads only its own jobs' nodes."""
        return sorted(self._children(self._layout.section(section), what) if jobs is None else set(jobs))

    def put_job_states(self, fence: Fence, states: Sequence[JobState]) -> None:
        # The folder of a job's next launch is made when the job is placed, so its first herd does not pay for it.
        hours = {(s.job, hour_of(s.next_scheduled)) for s in states if s.next_scheduled is not None}
        known = self._existing_jobs({s.job for s in states})
        groups = [Group(path, [Op("create", path)]) for path in self._folders_to_create(hours)]
        groups += [
            Group(s.job, [self._create_or_set(self._layout.job(s.job), s.to_bytes(), s.job in known)]) for s in states
        ]
        self._commit_known(fence, groups, "writing job states", {s.job for s in states})

    def _existing_jobs(self, jobs: set[str]) -> set[str]:
        """Jobs among `jobs` whose state node exists (a copy: the caller may add to it)."""
        if not jobs <= self._known_jobs:
            self._known_jobs |= set(self._children(self._layout.section("jobs"), "reading job states"))
        return set(self._known_jobs)

    def _commit_known(self, fence: Fence, groups: list[Group], what: str, jobs: set[str]) -> None:
        """Commit; then every job of the batch has a state node. A failed batch forgets what was cached."""
        try:
            self.writer.commit(fence_path(fence), groups, what)
        except StateStoreError:
            self._forget()
            raise
        self._known_jobs |= jobs

    def _forget(self) -> None:
        """After a failed write nothing cached about which nodes exist can be trusted."""
        self._known_jobs.clear()
        self._hours.clear()
        self._open.clear()
        self._known_results = None

    def read_paused(self) -> set[str]:
        return set(self._children(self._layout.section("paused"), "reading paused jobs"))

    def set_paused(self, job: str, paused: bool) -> None:
        path = self._layout.paused(job)
        if paused:
            start = lambda: self._client.create_async(path, b"", acl=self._acl)  # noqa: E731
            call(self._client, "pausing", start, self._timeout, none_on=(NodeExistsError,))
        else:
            self._call("resuming", lambda: self._client.delete_async(path), optional=True)

    # -- launches
    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        """Sync point one. Batches above one transaction are split and pipelined; see batch.py for what a
        partly applied batch means (the raised error's `applied` names the launches whose records exist). Sent
        with nothing else in flight, a batch refused untried (chain.py) was refused for a version another leader
        moved since this store last wrote: sent once more, after the version is read again."""
        try:
            self.prepare_begin(fence, items).send()()
        except BeginRefused:
            self.prepare_begin(fence, items).send()()

    def prepare_begin(self, fence: Fence, items: Sequence[Begin]) -> PreparedBegin:
        if not items:
            return BeginNow(lambda _fence, _items: None, fence, items)
        folders = self._folders_to_create({(i.record.job, hour_of_name(i.record.name)) for i in items})
        jobs = {i.next_state.job for i in items}
        known = self._existing_jobs(jobs)
        # one group per folder: a herd's new folders would make one transaction larger than jute.maxbuffer; the
        # chunks apply in order, so each folder exists before the records that go in it
        groups = [Group(path, [Op("create", path)]) for path in folders]
        groups += [self._begin_group(item, known) for item in items]
        # counted as existing from now: a begin sent after this one may name the same job (a catch-up run split
        # across two slices); if this one fails or is discarded, every cache is dropped and re-read
        self._known_jobs |= jobs
        # a skipped instant arrives already finished: it never joins the open index (a restored record still to be
        # followed does)
        opening = {i.record.name for i in items if not i.record.concluded}
        indexed: dict[str, list[str]] = {}

        def index_node(chunk: Chunk) -> list[Op]:
            names = [g.tag for g in chunk.groups if g.tag in opening]
            if not names:
                return []
            indexed[node_name(names)] = names
            return [Op("create", self._layout.open(node_name(names)), encode_names(names))]

        prepared = self.writer.prepare(
            fence_path(fence), groups, "beginning launches", per_chunk=index_node, chain=self._chain
        )
        return _PreparedZkBegin(self, prepared, indexed)

    def _begin_group(self, item: Begin, known_jobs: set[str]) -> Group:
        record, state = item.record, item.next_state
        ops = [Op("create", self._layout.launch(record.name, record.job), record.to_bytes())]
        ops.append(self._create_or_set(self._layout.job(state.job), state.to_bytes(), state.job in known_jobs))
        known_jobs.add(state.job)  # later groups of the same job overwrite the state this one creates
        if item.consumed_trigger:
            ops.append(Op("delete", self._layout.trigger(item.consumed_trigger)))
        ops += [self._notice_op(n) for n in item.notices]  # new with the record: it cannot exist yet
        return Group(record.name, ops)

    def _notice_op(self, notice: Notice) -> Op:
        return Op("create", self._layout.outbox(notice.id), notice.to_bytes())

    def _absent(self, paths: Sequence[str], what: str) -> set[str]:
        """Which of `paths` do not exist: a batch written again after a lost answer must not create them twice."""
        return {p for p, item in zip(paths, self._get_many(paths, what), strict=True) if item is None}

    def finish(self, fence: Fence, records: Sequence[LaunchRecord], notices: Sequence[Notice] = ()) -> None:
        """Sync point two. Idempotent: finishing an already-finished record again rewrites it harmlessly (and creates
        none of its notices twice). A launch that is followed for its result stays in the open index."""
        absent = self._absent([self._layout.outbox(n.id) for n in notices], "checking the outbox")
        about: dict[str | None, list[Op]] = {}
        for notice in notices:
            if self._layout.outbox(notice.id) in absent:
                about.setdefault(notice.launch, []).append(self._notice_op(notice))
        groups = [Group(r.name, [self._record_op(r), *about.pop(r.name, [])]) for r in records]
        groups += [Group(f"notices-{n}", ops) for n, ops in about.items()]
        self._write_closing(fence, groups, records, "finishing launches")

    def record_results(self, fence: Fence, batch: ResultBatch) -> None:
        """One group per job: its records, summary, notices and suspension apply together; a concluded launch leaves
        the index."""
        known = self._existing_results({s.job for s in batch.summaries})
        paths = [self._layout.outbox(n.id) for n in batch.notices] + [self._layout.paused(j) for j in batch.pause]
        absent = self._absent(paths, "checking the outbox and pause flags")
        groups = []
        for job, part in batch.by_job().items():
            ops = [self._record_op(r) for r in part.records]
            if part.summary is not None:
                ops.append(self._create_or_set(self._layout.results(job), part.summary.to_bytes(), job in known))
            ops += [self._notice_op(n) for n in part.notices if self._layout.outbox(n.id) in absent]
            if part.pause and self._layout.paused(job) in absent:
                ops.append(Op("create", self._layout.paused(job)))
            groups.append(Group(job, ops, names=[r.name for r in part.records]))
        self._write_closing(fence, groups, batch.records, "recording task results")
        if self._known_results is not None:
            self._known_results |= {s.job for s in batch.summaries}

    def read_outbox(self) -> list[Notice]:
        ids = self._children(self._layout.section("outbox"), "listing the outbox")
        got = self._get_many([self._layout.outbox(i) for i in ids], "reading the outbox")
        notices = [Notice.from_bytes(item[0]) for item in got if item is not None]
        return sorted(notices, key=lambda n: (n.created_at, n.id))

    def settle_notices(self, fence: Fence, remove: Sequence[str], rewrite: Sequence[Notice]) -> None:
        """Fenced; a notice already gone is skipped (a delete or set of a missing node would fail the batch)."""
        paths = [self._layout.outbox(n) for n in remove] + [self._layout.outbox(n.id) for n in rewrite]
        absent = self._absent(paths, "checking the outbox")
        groups = [Group(n, [Op("delete", p)]) for n in remove if (p := self._layout.outbox(n)) not in absent]
        groups += [
            Group(n.id, [Op("set", p, n.to_bytes())]) for n in rewrite if (p := self._layout.outbox(n.id)) not in absent
        ]
        self.writer.commit(fence_path(fence), groups, "settling notifications")

    def _record_op(self, record: LaunchRecord) -> Op:
        return Op("set", self._layout.launch(record.name, record.job), record.to_bytes())

    def _existing_results(self, jobs: set[str]) -> set[str]:
        if self._known_results is None or not jobs <= self._known_results:
            self._known_results = set(self._children(self._layout.section("results"), "reading job results"))
        return set(self._known_results)

    def _write_closing(self, fence: Fence, groups: list[Group], records: Sequence[LaunchRecord], what: str) -> None:
        """Write `groups`, deleting with each transaction the open-index nodes its concluded launches empty."""
        closing = {r.name for r in records if r.concluded}
        if not self._open.knows(closing):  # e.g. a record finished twice, or after a failed write: re-read
            self._read_open_index()
        deleted: list[str] = []

        def index_deletes(chunk: Chunk) -> list[Op]:
            nodes = self._open.emptied_by(n for g in chunk.groups for n in g.launches() if n in closing)
            deleted.extend(nodes)
            return [Op("delete", self._layout.open(node)) for node in nodes]

        try:
            self.writer.commit(fence_path(fence), groups, what, per_chunk=index_deletes)
        except StateStoreError:
            self._forget()
            raise
        if emptied := self._open.close(closing, deleted):
            self._drop_index_nodes(fence, emptied)

    def _drop_index_nodes(self, fence: Fence, nodes: list[str]) -> None:
        """Nodes whose launches finished in different transactions (or were found finished): their records
        already say so, so a failure here loses nothing and the nodes are dropped when next seen."""
        groups = [Group(node, [Op("delete", self._layout.open(node))]) for node in nodes]
        try:
            self.writer.commit(fence_path(fence), groups, "dropping finished open-index nodes")
        except LeadershipLost:
            raise
        except StateStoreError as exc:
            self._forget()
            log.warning("open-index nodes kept until next read", extra={"nodes": len(nodes), "error": str(exc)})
            return
        self._open.forget(nodes)

    def get_launch(self, name: str) -> LaunchRecord | None:
        try:
            job = parse_launch_name(name).job
        except ValueError:
            return None
        [got] = self._get_launches([name], "reading a launch", job)
        return LaunchRecord.from_bytes(got[0]) if got else None

    def open_launches(self) -> list[LaunchRecord]:
        return sorted((r for r in self._read_open_index() if r.open), key=lambda r: (r.scheduled, r.name))

    def following_launches(self) -> list[LaunchRecord]:
        return sorted((r for r in self._read_open_index() if r.following), key=lambda r: (r.scheduled, r.name))

    def read_job_results(self, jobs: Collection[str] | None = None) -> dict[str, JobResults]:
        names = self._jobs_in("results", jobs, "reading job results")
        got = self._get_many([self._layout.results(j) for j in names], "reading job results")
        return {j: JobResults.from_bytes(j, item[0]) for j, item in zip(names, got, strict=True) if item is not None}

    def _read_open_index(self) -> list[LaunchRecord]:
        """The records not concluded, read through the whole index; the cache is made exact (a node listing only
        concluded or missing records is kept, empty, for the next finish to delete)."""
        nodes = self._children(self._layout.section("open"), "listing open launches")
        got = self._get_many([self._layout.open(n) for n in nodes], "reading the open index")
        listed = {n: decode_names(item[0]) for n, item in zip(nodes, got, strict=True) if item is not None}
        names = list(dict.fromkeys(name for names in listed.values() for name in names))
        records = [r for r in self._read_records(names, "reading open launches") if not r.concluded]
        still_open = {r.name for r in records}
        self._open.replace({node: [n for n in names if n in still_open] for node, names in listed.items()})
        return records

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        return self.histories([job], limit).get(job, [])

    def histories(self, jobs: Collection[str], limit: int) -> dict[str, list[LaunchRecord]]:
        newest = self._newest_names(jobs, limit)
        read = self._get_many([path for _job, path in newest], "reading launch history")
        out: dict[str, list[LaunchRecord]] = {}
        for (job, _path), item in zip(newest, read, strict=True):
            if item is not None:
                out.setdefault(job, []).append(LaunchRecord.from_bytes(item[0]))
        return out

    def last_results(self, jobs: Collection[str], now: datetime | None = None) -> dict[str, str]:
        """Remembered per job and checked in one round (lasts.py); found the long way only for jobs whose state
        or newest record moved since."""
        return self._lasts.words(
            list(dict.fromkeys(jobs)),
            lambda paths: self._get_many(paths, "checking last launches"),
            lambda stale: self._newest_records(stale, now),
        )

    def _newest_records(self, jobs: list[str], now: datetime | None) -> dict[str, tuple[str, Read]]:
        """Each job's newest record, read: its path and (data, stat), or None if it went after it was listed."""
        found = self._probe_hours(jobs, now) if now is not None else {}
        newest = [(job, paths[_newest(job, list(paths), 1)[0]]) for job, paths in found.items()]
        newest += self._newest_names([job for job in jobs if job not in found], 1)
        read = self._get_many([path for _job, path in newest], "reading last launches")
        return {job: (path, item) for (job, path), item in zip(newest, read, strict=True)}

    def _probe_hours(self, jobs: Collection[str], now: datetime) -> dict[str, dict[str, str]]:
        """Each job's names in the hour of `now` (and the next one in its last minutes: staging begins launches
        seconds ahead), then, for the jobs with none there, in the hour before, listed directly, with their paths.
        A job that ran in them has its newest record there, and its folder listing (every hour it keeps: up to
        `retention.count` of them) is not read at all."""
        current = sorted({hour_of(now), hour_of(now + PROBE_AHEAD)})
        found: dict[str, dict[str, str]] = {}
        for hours in (current, [hour_of(now - timedelta(hours=1))]):
            left = [job for job in dict.fromkeys(jobs) if job not in found]
            folders = [(job, self._layout.launch_hour(job, hour)) for job in left for hour in hours]
            listed = self._list_many([folder for _job, folder in folders], "listing recent launches")
            for (job, folder), names in zip(folders, listed, strict=True):
                if names:
                    found.setdefault(job, {}).update((name, f"{folder}/{name}") for name in names)
        return found

    def _newest_names(self, jobs: Collection[str], limit: int) -> list[tuple[str, str]]:
        """Lists each job's hourly folders newest first, a few more each round, until `limit` names of each are in
        hand (every record of an older hour is older than all of them); each round lists the folders of every job
        at once, so 10,000 jobs cost a few multiReads, not 10,000 round trips. (job, record path) pairs, each
        job's newest first."""
        if limit <= 0 or not jobs:
            return []
        asked = list(dict.fromkeys(jobs))
        listed = self._list_many([self._layout.launch_dir(j) for j in asked], "listing launches")
        hours = {job: sorted(got, reverse=True) for job, got in zip(asked, listed, strict=True) if got}
        paths: dict[str, dict[str, str]] = {job: {} for job in hours}  # each job's names in hand, and their paths
        batch = 1
        while short := [job for job, left in hours.items() if left and len(paths[job]) < limit]:
            folders = [(job, hour) for job in short for hour in hours[job][:batch]]
            for job in short:
                hours[job] = hours[job][batch:]
            where = [self._layout.launch_hour(job, hour) for job, hour in folders]
            listed_now = self._list_many(where, "listing launches")
            for (job, _hour), folder, got in zip(folders, where, listed_now, strict=True):
                paths[job].update((name, f"{folder}/{name}") for name in got)
            batch = min(batch * 4, 256)
        return [(job, found[n]) for job, found in paths.items() for n in _newest(job, list(found), limit)]

    def full_histories(self, jobs: Collection[str]) -> dict[str, list[LaunchRecord]]:
        """Each step pipelined across the jobs -- their folders listed, then their hours, then every record read
        in multiReads -- so a thousand jobs cost a few round trips, not three each."""
        names = sorted(jobs)
        hours = self._list_many([self._layout.launch_dir(j) for j in names], "listing launches")
        folders = [(job, hour) for job, listed in zip(names, hours, strict=True) for hour in listed]
        listed = self._list_many([self._layout.launch_hour(j, h) for j, h in folders], "listing launches")
        launches = [(job, name) for (job, _), found in zip(folders, listed, strict=True) for name in found]
        got = self._get_many([self._layout.launch(n, j) for j, n in launches], "reading launch histories")
        out: dict[str, list[LaunchRecord]] = {job: [] for job in names}
        for (job, _), item in zip(launches, got, strict=True):
            if item is not None:
                out[job].append(LaunchRecord.from_bytes(item[0]))
        for job, records in out.items():
            order = launch_order(job)
            records.sort(key=lambda r: order(r.name), reverse=True)
        return out

    def prune(self, fence: Fence, job: str, names: Sequence[str]) -> None:
        bad = [n for n in names if _not_launch_of(n, job)]
        if bad:
            raise StateStoreError(f"cannot prune {bad[0]!r}: not a launch name of job {job!r}")
        got = self._get_launches(names, "reading launches to prune", job)
        groups = []
        for name, item in zip(names, got, strict=True):
            if item is None:
                continue
            if LaunchRecord.from_bytes(item[0]).open:
                raise StateStoreError(f"refusing to prune launch {name}: it is still open (begun, not finished)")
            groups.append(Group(name, [Op("delete", self._layout.launch(name, job), version=item[1].version)]))
        self.writer.commit(fence_path(fence), groups, f"pruning launches of {job}")
        self._drop_empty_hours(fence, job, {hour_of_name(g.tag) for g in groups})

    def _drop_empty_hours(self, fence: Fence, job: str, hours: set[str]) -> None:
        """Hourly folders that pruning emptied go too (else a job would leave a folder per hour forever). A begin
        that raced this finds its folder gone, fails as a conflict and is begun again one by one, which re-checks."""
        paths = sorted(self._layout.launch_hour(job, h) for h in hours)
        got = self._get_many(paths, "checking pruned launch folders")
        empty = [p for p, item in zip(paths, got, strict=True) if item is not None and item[1].numChildren == 0]
        if not empty:
            return
        if self._layout.launch_hour(job, self._hours.get(job, "")) in empty:
            self._hours[job] = ""  # the job's own folder stays
        try:
            self.writer.commit(
                fence_path(fence), [Group(p, [Op("delete", p)]) for p in empty], "dropping empty folders"
            )
        except ConflictError:  # a record arrived since (not empty after all): it stays, it is harmless
            log.info("launch folder kept: not empty any more", extra={"job": job})

    # -- manual triggers
    def request_trigger(self, job: str, *, force: bool, now: datetime) -> TriggerRequest:
        path = self._layout.trigger(TRIGGER_PREFIX)
        data = encode_trigger(job, force, now)
        start = lambda: self._client.create_async(path, data, acl=self._acl, sequence=True)  # noqa: E731
        created = self._call("requesting a trigger", start)
        return TriggerRequest(id=created.rsplit("/", 1)[1], job=job, requested_at=now, force=force)

    def pending_triggers(self) -> list[TriggerRequest]:
        ids = sorted(self._children(self._layout.section("triggers"), "listing triggers"))
        got = self._get_many([self._layout.trigger(i) for i in ids], "reading triggers")
        return [decode_trigger(i, item[0]) for i, item in zip(ids, got, strict=True) if item is not None]

    def drop_trigger(self, fence: Fence, trigger_id: str) -> None:
        """Fenced; dropping a trigger that is already gone only checks the fence."""
        path = self._layout.trigger(trigger_id)
        exists = self._call("reading a trigger", lambda: self._client.exists_async(path))
        groups = [Group(trigger_id, [Op("delete", path)])] if exists else []
        self.writer.commit(fence_path(fence), groups, "dropping a trigger")

    # -- leadership bookkeeping
    def write_takeover(self, fence: Fence, report: Mapping[str, Any]) -> None:
        path = self._layout.takeover
        exists = self._call("reading the takeover report", lambda: self._client.exists_async(path))
        op = self._create_or_set(path, encode_json(report, "takeover report"), exists is not None)
        self.writer.commit(fence_path(fence), [Group("takeover", [op])], "writing the takeover report")

    def read_takeover(self) -> Mapping[str, Any] | None:
        path = self._layout.takeover
        got = self._call("reading the takeover report", lambda: self._client.get_async(path), optional=True)
        return decode_json(got[0], "takeover report") if got else None

    def server_time(self) -> datetime:
        """ZooKeeper's mtime of a fresh write to the clock node: the ensemble leader's wall clock."""
        path = self._layout.clock
        stat = self._call("reading ZooKeeper's clock", lambda: self._client.set_async(path, b""))
        return datetime.fromtimestamp(stat.mtime / 1000, UTC)

    def close(self) -> None:
        self._closed = True
        if self._owns_client:
            with zk_errors("closing"):
                self._client.stop()
                self._client.close()


class _PreparedZkBegin:
    def __init__(self, store: ZooKeeperStore, write: PreparedWrite, indexed: dict[str, list[str]]) -> None:
        self._store, self._write, self._indexed = store, write, indexed

    def send(self) -> Callable[[], None]:
        wait = self._write.send()

        def confirmed() -> None:
            try:
                wait()
            except StateStoreError:
                self._store._forget()
                raise
            for node, names in self._indexed.items():
                self._store._open.add(node, names)

        return confirmed

    def discard(self) -> None:
        self._store._forget()  # its folders and job nodes were counted as made by it


def _newest(job: str, names: list[str], limit: int) -> list[str]:
    """The newest `limit` of a job's launch names, newest first (a status page asks for each job's last)."""
    if limit == 1 and len(names) < 2:
        return names
    if limit == 1:
        return [max(names, key=launch_order(job))]
    return sorted(names, key=launch_order(job), reverse=True)[:limit]


def _not_launch_of(name: str, job: str) -> bool:
    try:
        return parse_launch_name(name).job != job
    except ValueError:
        return True


__all__ = ["ZooKeeperStore", "connect_zk", "digest_acl", "fence_path"]
