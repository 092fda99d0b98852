"""The ZooKeeper client's logger: kazoo logs the requests it sends, its Auth request with the digest password."""

from __future__ import annotations

import logging
from collections import namedtuple

import pytest

from cronframework.store.zookeeper.client import Redacting

Auth = namedtuple("Auth", "auth_type scheme auth")  # the shape of kazoo's request, as it is logged


def test_the_digest_password_never_reaches_a_handler(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kazoo.client")
    log = Redacting(logging.getLogger("kazoo.client"), {"zk_hosts": "zk1:2181"}, "s3cret")
    log.log(logging.DEBUG, "Sending request(xid=%s): %s", -4, Auth(0, "digest", "cron:s3cret"))
    log.debug("connected with %s", "cron:s3cret")
    log.info("Zookeeper connection established, state: %s", "CONNECTED")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and not any("s3cret" in m for m in messages)
    assert "cron:<redacted>" in messages[0] and messages[2].endswith("CONNECTED")
    assert caplog.records[0].zk_hosts == "zk1:2181"  # type: ignore[attr-defined]
