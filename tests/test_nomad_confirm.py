"""The Nomad adapter's submit is a create-only write and then a read of the job's summary (who created it). When the
agent goes away between the two (the 60-minute fault run stopped it while the leader submitted), the write has
landed: the job exists and will run. The read's refused connection must not be reported as "never reached the
backend" (`BackendUnreachable`), which the scheduler records as failed_to_launch at once without a lookup.

No agent here: nothing listens at the address, so every request is refused; where the write must land, it is
replaced."""

from __future__ import annotations

import pytest

from backends.nomad import NomadBackend
from cronframework.errors import BackendUnreachable, TransientBackendError
from cronframework.launch import Launch
from tests.backend_conformance import conformance_launch


def _backend_and_launch() -> tuple[NomadBackend, Launch]:
    backend = NomadBackend({"address": "http://127.0.0.1:9"})
    return backend, conformance_launch("confirm", ["/bin/true"], backend="nomad")


def test_a_check_refused_after_the_write_landed_leaves_open_whether_it_landed(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, launch = _backend_and_launch()
    monkeypatch.setattr(backend, "_register_job", lambda name, body: {"JobModifyIndex": 7})
    with pytest.raises(TransientBackendError) as caught:
        backend.submit(launch.name, launch)
    assert not isinstance(caught.value, BackendUnreachable)
    check = backend.register(launch.name, launch)  # a herd's write, its check made later
    with pytest.raises(TransientBackendError) as later:
        check()
    assert not isinstance(later.value, BackendUnreachable)


def test_a_write_refused_at_the_door_did_not_land() -> None:
    backend, launch = _backend_and_launch()
    with pytest.raises(BackendUnreachable):
        backend.submit(launch.name, launch)
