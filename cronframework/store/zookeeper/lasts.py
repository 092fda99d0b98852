"""Each job's last result as this store last found it, checked against ZooKeeper's stats rather than found again.

A status page's filter or order by last result asks for every job's newest record in one word. Finding a job's
newest record takes listings (the hours around now, then its folders) and then the record; at 10,000 jobs that is
two or three rounds of 10,000 operations and a third of a second of Python. What is found stays true while no launch
of the job is begun, and every begin writes the job's state node in the transaction that creates the record (one
group of a fenced batch, applied whole); state nodes are never deleted. So each answer is kept with the mzxid the
job's state node had *before* the listings that found the record, and with the record's own mzxid. The next call
reads both nodes of every known job in one round of multiReads: an unchanged state means no newer record, an
unchanged record means the same word (a finish or a result rewrites the record, so its mzxid moves and its word is
read again from the bytes just fetched). A job whose state moved, whose record is gone (pruned) or which has no
state node yet is looked up the long way, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cronframework.records import record_word

# (data, stat) of a read znode, None for a missing one, as the store's multiReads return them
Read = tuple[bytes, Any] | None
# a job's newest record, found the long way: its path, and what reading it returned
Found = tuple[str, Read]


@dataclass(frozen=True, slots=True)
class Known:
    stamp: int  # the mzxid of the job's state node, read before the listings that found `path`
    path: str | None  # the job's newest record; None: it had none
    mzxid: int  # the record's mzxid when `word` was read from it
    word: str  # "" when it had none


class LastResults:
    """One entry per job asked (not per record). Several request threads may share it: each entry is replaced
    whole, and a stale entry only costs the long way once more."""

    def __init__(self, state_path: Callable[[str], str], limit: int = 200_000) -> None:
        self._state_path = state_path
        self._known: dict[str, Known] = {}
        self._limit = limit  # jobs remembered; beyond, everything is forgotten (deleted jobs' entries go too)

    def words(
        self,
        jobs: Sequence[str],
        read: Callable[[list[str]], list[Read]],
        find: Callable[[list[str]], Mapping[str, Found]],
    ) -> dict[str, str]:
        """`jobs`' last results (a job without records is absent): `read` reads znodes (one round, pipelined),
        `find` finds the newest records of the jobs given the long way."""
        entries = [self._known.get(job) for job in jobs]
        paths = []
        for job, known in zip(jobs, entries, strict=True):
            paths.append(self._state_path(job))
            if known is not None and known.path is not None:
                paths.append(known.path)
        words, stale = self._check(jobs, entries, read(paths))
        if stale:
            words.update(self._learn(stale, find(list(stale))))
        return words

    def _check(
        self, jobs: Sequence[str], entries: Sequence[Known | None], read: list[Read]
    ) -> tuple[dict[str, str], dict[str, int]]:
        """The words still true, and the jobs to look up the long way with their state's mzxid (0: no state)."""
        words: dict[str, str] = {}
        stale: dict[str, int] = {}
        got = iter(read)
        for job, known in zip(jobs, entries, strict=True):
            state = next(got)
            record = next(got) if known is not None and known.path is not None else None
            stamp = state[1].mzxid if state is not None else 0
            if known is None or not stamp or stamp != known.stamp:
                stale[job] = stamp
            elif known.path is None:
                continue  # no launch begun since it had none
            elif record is None:
                stale[job] = stamp  # pruned: an older record is now the newest
            else:
                if record[1].mzxid != known.mzxid:
                    known = Known(stamp, known.path, record[1].mzxid, record_word(record[0]))
                    self._known[job] = known
                words[job] = known.word
        return words, stale

    def _learn(self, stale: Mapping[str, int], found: Mapping[str, Found]) -> dict[str, str]:
        if len(self._known) + len(stale) > self._limit:
            self._known.clear()
        words: dict[str, str] = {}
        for job, stamp in stale.items():
            path, item = found.get(job, (None, None))
            if item is not None:
                known = Known(stamp, path, item[1].mzxid, record_word(item[0]))
                words[job] = known.word
            elif path is None:
                known = Known(stamp, None, 0, "")
            else:
                continue  # listed, then gone before it was read: not remembered
            if stamp:
                self._known[job] = known
        return words
