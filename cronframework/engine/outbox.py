"""Delivering the outbox: every notice POSTed at least once, signed, with bounded retries; then settled in the store.

A notice is in the store's outbox before anyone tries to send it (written with what it is about, notify.py), and
leaves it only once its receiver answered 2xx: a leader killed between the two leaves it pending, and the next
leader sends it again with the same `Idempotency-Key` (launch + event), so a receiver deduplicates on that. Each
POST carries `X-Cronframework-Signature: sha256=<hex HMAC-SHA256 of the body>` under the webhook's secret, read
from the scheduler's environment or a file when the notice is sent (never stored).

A transient failure (refused connection, timeout, HTTP 5xx, 408, 429) is retried with exponential backoff
(tenacity), `attempts` POSTs in all; a permanent one (another 4xx, a missing secret) stops at once. What cannot be
delivered is kept `undeliverable` (the newest `keep_undeliverable`), shown by `status` and counted by a metric.

POSTs run in a small pool of threads once started (a slow receiver holds up only its own notices); the store is
written from the leader's thread only (`after_tick`), like every leader write. Tests deliver inline instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from queue import SimpleQueue

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from cronframework import __version__, metrics
from cronframework.abc import Clock, Leadership, LeaderStore
from cronframework.engine.notify import NotifyConfig
from cronframework.errors import LeadershipLost, StateStoreError
from cronframework.ops.status import safe_url
from cronframework.records import Notice, NoticeState

log = logging.getLogger("cronframework.notify")
SIGNATURE_HEADER = "X-Cronframework-Signature"
KEY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Cronframework-Event"
_RETRIED_STATUS = frozenset({408, 429})


class _Transient(Exception):
    """A POST that may succeed if tried again."""


class _Permanent(Exception):
    """A POST that will fail however often it is tried."""


@dataclass(frozen=True)
class Delivery:
    notice: Notice
    error: str | None  # None: delivered
    attempts: int


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def read_secret(notice: Notice) -> bytes:
    if notice.secret_env is not None:
        value = os.environ.get(notice.secret_env)
        if not value:
            raise _Permanent(f"the secret {notice.secret_env!r} is not set in the scheduler's environment")
        return value.encode()
    if notice.secret_file is not None:
        try:
            text = Path(notice.secret_file).read_text().strip()
        except OSError as exc:
            raise _Permanent(f"cannot read the secret file {notice.secret_file!r}: {exc.strerror}") from None
        if not text:
            raise _Permanent(f"the secret file {notice.secret_file!r} is empty")
        return text.encode()
    raise _Permanent("the webhook has no secret")


def post(notice: Notice, timeout: float) -> None:
    """One signed POST of `notice`; raises _Transient or _Permanent unless the receiver answered 2xx."""
    body = json.dumps(dict(notice.payload), separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"cronframework/{__version__}",
        KEY_HEADER: notice.key,
        EVENT_HEADER: notice.event,
        SIGNATURE_HEADER: signature(read_secret(notice), body),
    }
    request = urllib.request.Request(notice.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # http(s) only: the spec checks the scheme
            reply.read()
    except urllib.error.HTTPError as exc:
        kind = _Transient if exc.code >= 500 or exc.code in _RETRIED_STATUS else _Permanent
        raise kind(f"HTTP {exc.code} from {safe_url(notice.url)}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Transient(f"{safe_url(notice.url)}: {reason}") from None


def deliver(notice: Notice, config: NotifyConfig, clock: Clock) -> Delivery:
    """POST until delivered, a permanent failure, or `attempts` POSTs; backoff doubled each time, capped."""
    attempts = 0

    def attempt() -> None:
        nonlocal attempts
        attempts += 1
        post(notice, config.timeout)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    retrying = Retrying(
        stop=stop_after_attempt(config.attempts),
        wait=wait_exponential(multiplier=config.backoff.total_seconds(), max=config.max_backoff.total_seconds()),
        retry=retry_if_exception_type(_Transient),
        sleep=sleep,
        reraise=True,
    )
    try:
        retrying(attempt)
    except (_Transient, _Permanent) as exc:
        return Delivery(notice, str(exc), attempts)
    return Delivery(notice, None, attempts)


class Outbox:
    def __init__(self, store: LeaderStore, leadership: Leadership, clock: Clock, config: NotifyConfig) -> None:
        self._store, self._leadership, self._clock, self._config = store, leadership, clock, config
        self._queued: list[Notice] = []  # to send (inline mode, or before `start`)
        self._sending: set[str] = set()  # ids sent or being sent by this leader
        self._done: SimpleQueue[Delivery] = SimpleQueue()
        self._unsettled: list[Delivery] = []  # done, not yet written (the store failed)
        self._undeliverable: list[Notice] = []  # as kept in the store, oldest first
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """At promotion: what the last leader left pending is sent again; what it gave up on stays given up."""
        notices = self._store.read_outbox()
        self._undeliverable = [n for n in notices if n.state is NoticeState.UNDELIVERABLE]
        self.add(n for n in notices if n.state is NoticeState.PENDING)
        metrics.notifications_undeliverable(len(self._undeliverable))

    def add(self, notices: Iterable[Notice]) -> None:
        """Notices just written to the store: to be sent."""
        with self._lock:
            fresh = [n for n in notices if n.id not in self._sending]
            self._sending.update(n.id for n in fresh)
            if self._pool is None:
                self._queued.extend(fresh)
                return
        for notice in fresh:
            self._pool.submit(self._send, notice)

    def start(self) -> None:
        with self._lock:
            self._pool = ThreadPoolExecutor(max_workers=self._config.workers, thread_name_prefix="notify")
            queued, self._queued = self._queued, []
        for notice in queued:
            self._pool.submit(self._send, notice)

    def _send(self, notice: Notice) -> None:
        try:
            self._done.put(deliver(notice, self._config, self._clock))
        except Exception as exc:  # a bug must not lose the notice: it stays pending for the next leader
            log.exception("notification not sent", extra={"job": notice.job, "event": notice.event})
            self._done.put(Delivery(notice, f"internal error: {type(exc).__name__}", 0))

    def after_tick(self) -> None:
        """Inline mode: send what is queued. Then write what was delivered or given up (leader's thread only)."""
        if self._pool is None:
            queued, self._queued = self._queued, []
            for notice in queued:
                self._send(notice)
        done = self._unsettled
        while not self._done.empty():
            done.append(self._done.get())
        self._unsettled = []
        if done:
            self._settle(done)

    def _settle(self, done: list[Delivery]) -> None:
        delivered = [d.notice.id for d in done if d.error is None]
        failed = [
            replace(d.notice, state=NoticeState.UNDELIVERABLE, attempts=d.attempts, last_error=d.error)
            for d in done
            if d.error is not None
        ]
        kept = [*self._undeliverable, *failed]
        dropped = kept[: max(0, len(kept) - self._config.keep_undeliverable)]
        try:
            self._store.settle_notices(self._leadership.fence, [*delivered, *(n.id for n in dropped)], failed)
        except LeadershipLost:
            raise
        except StateStoreError as exc:
            self._unsettled = done
            log.warning("notifications not settled; again next tick", extra={"count": len(done), "error": str(exc)})
            return
        self._undeliverable = kept[len(dropped) :]
        with self._lock:
            self._sending.difference_update(d.notice.id for d in done)  # gone from the outbox, or given up for good
        for item in done:
            self._log(item)
        metrics.notifications_undeliverable(len(self._undeliverable))

    def _log(self, item: Delivery) -> None:
        notice = item.notice
        fields = {"job": notice.job, "event": notice.event, "key": notice.key, "url": safe_url(notice.url)}
        if item.error is None:
            log.info("notification delivered", extra={**fields, "attempts": item.attempts})
            metrics.notification(notice.event, "delivered")
        else:
            log.warning("notification undeliverable", extra={**fields, "attempts": item.attempts, "error": item.error})
            metrics.notification(notice.event, "undeliverable")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
