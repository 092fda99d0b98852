"""The Nomad adapter's registrations from one process: two of one name never race each other at the agent, and two
of different names never wait for each other (a herd's writes go at the agent's pace, not one lock's)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from backends.nomad import NomadBackend
from cronframework.launch import Launch
from tests.backend_conformance import conformance_launch


def _launches(count: int) -> list[Launch]:
    at = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    return [conformance_launch(f"w{i:04d}", ["/bin/true"], backend="nomad", scheduled=at) for i in range(count)]


def _adapter(register: Any) -> NomadBackend:
    backend = NomadBackend({"address": "http://127.0.0.1:1"})
    backend._register_job = register
    return backend


def test_writes_of_different_names_are_in_flight_together() -> None:
    """65 writes of 65 names all reach the agent before any is answered (the adapter had shared one lock among the
    names whose hash fell in the same of 64 stripes: of 16 submit workers' names, two or more most of the time)."""
    launches = _launches(65)
    together = threading.Barrier(len(launches), timeout=5)

    def register(name: str, body: Any) -> dict[str, Any]:
        together.wait()  # broken if any write waits for another
        return {"JobModifyIndex": 1}

    backend = _adapter(register)
    errors: list[BaseException] = []

    def write(launch: Launch) -> None:
        try:
            backend.register(launch.name, launch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(launch,)) for launch in launches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []


def test_two_writes_of_one_name_are_never_in_flight_together() -> None:
    launch = _launches(1)[0]
    in_flight, most = 0, 0
    lock = threading.Lock()
    entered = threading.Event()

    def register(name: str, body: Any) -> dict[str, Any]:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        entered.set()
        threading.Event().wait(0.2)
        with lock:
            in_flight -= 1
        return {"JobModifyIndex": 1}

    backend = _adapter(register)
    threads = [threading.Thread(target=backend.register, args=(launch.name, launch)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert entered.is_set() and most == 1
