"""Launch -> container: the pure translation of a job's task into Docker create arguments.

Kept free of any daemon call so every refusal (no image, a mount outside `allowed_mounts`, a `docker:` option that
is not whitelisted) happens before anything is created, and so it can be tested without a daemon.

Command semantics: `task.command` replaces the image's ENTRYPOINT and `task.args` become its CMD, so the container
runs exactly `command + args` (as the process backend does). Without `command`, the image's ENTRYPOINT stays and
`args`, when given, replace the image's CMD.

A container started twice runs its task twice: two leaders may each find it created and never started and both
start it (Docker has no compare-and-start), and a task that ended before the later start runs again. So `command`
runs behind a guard (`rerun_guard`, on by default; it needs /bin/sh in the image) that claims a mark in the
container's own filesystem, which a stop and a start keep: a second start exits with RERUN_EXIT instead. Where the
mark cannot be made (a read-only /tmp), the task runs unguarded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cronframework.errors import PermanentBackendError
from cronframework.launch import Launch
from cronframework.spec.model import Mount, Task

TIMEOUT_LABEL = "cronframework.timeout"
"""Seconds of the task's run-time limit; `lookup` uses it to tell "timed out" from any other kill."""

CREATE_OPTIONS = frozenset({"labels", "hostname", "stop_signal"})
HOST_OPTIONS = frozenset({"cap_drop", "read_only", "shm_size", "tmpfs", "pids_limit", "init", "ulimits"})
ALLOWED_OPTIONS = CREATE_OPTIONS | HOST_OPTIONS
"""Keys a job's `docker:` block may set. Anything that widens access (privileged, cap_add, devices, pid/ipc
modes, extra volumes) is left out on purpose: mounts go through `allowed_mounts`, networks through `task.network`."""


RERUN_EXIT = 125  # what a second start of one container exits with; the first run's own exit code is lost
RERUN_MARK = "/tmp/.cronframework-started"
RERUN_GUARD = (
    f"mkdir {RERUN_MARK} 2>/dev/null || {{ [ -d {RERUN_MARK} ] && {{ echo "
    '"cronframework: this container already started its task; not running it again" >&2; '
    f'exit {RERUN_EXIT}; }}; }}; exec "$@"'
)
"""`exec` keeps the task the process Docker signals; "$@" is `command + args` (the name before them is $0)."""


@dataclass(frozen=True)
class Placement:
    """The daemon-side settings a plan needs (from the backend config)."""

    default_network: str | None = None
    allowed_mounts: Sequence[str] = ()
    init: bool = True
    rerun_guard: bool = True


@dataclass(frozen=True)
class ContainerPlan:
    """Keyword arguments for `APIClient.create_container` and `APIClient.create_host_config`."""

    create: dict[str, Any]
    host: dict[str, Any]

    @property
    def image(self) -> str:
        return str(self.create["image"])


def plan_container(name: str, launch: Launch, placement: Placement) -> ContainerPlan:
    """The container for `launch`, named `name`; raises PermanentBackendError for what Docker must not run."""
    task = launch.spec.task
    if not task.image:
        raise PermanentBackendError("docker backend needs task.image")
    options = _checked_options(launch.spec.docker)
    labels = {**_string_labels(options.get("labels", {})), **launch.labels(), **_timeout_label(task)}
    create: dict[str, Any] = {
        "image": task.image,
        "name": name,
        "environment": launch.env(),
        "labels": labels,
        **_command(task, placement.rerun_guard),
        **{k: v for k, v in options.items() if k in CREATE_OPTIONS and k != "labels"},
    }
    if task.workdir:
        create["working_dir"] = task.workdir
    if task.user:
        create["user"] = task.user
    host = {**_host_limits(task, placement), **{k: v for k, v in options.items() if k in HOST_OPTIONS}}
    return ContainerPlan(create=create, host=host)


def _command(task: Task, guard: bool) -> dict[str, Any]:
    if task.command:
        entrypoint = ["/bin/sh", "-c", RERUN_GUARD, "cronframework-guard"] if guard else []
        return {"entrypoint": [*entrypoint, *task.command], "command": list(task.args)}
    return {"command": list(task.args)} if task.args else {}


def _timeout_label(task: Task) -> dict[str, str]:
    if task.timeout is None:
        return {}
    return {TIMEOUT_LABEL: f"{task.timeout.total_seconds():g}"}


def _host_limits(task: Task, placement: Placement) -> dict[str, Any]:
    # No restart policy and no auto-remove: a launch runs once, and its exited container is its record.
    host: dict[str, Any] = {"init": placement.init}
    if task.resources.cpu is not None:
        host["nano_cpus"] = int(task.resources.cpu * 1_000_000_000)
    if task.resources.memory is not None:
        # Swap capped at the memory limit: the limit is real and going over it is an OOM kill, not slow swapping.
        host["mem_limit"] = host["memswap_limit"] = f"{task.resources.memory}m"
    network = task.network or placement.default_network
    if network:
        host["network_mode"] = network
    if task.mounts:
        host["mounts"] = [_mount(m, placement.allowed_mounts) for m in task.mounts]
    return host


def _mount(mount: Mount, allowed: Sequence[str]) -> dict[str, Any]:
    source = os.path.normpath(mount.source)
    if not os.path.isabs(source) or not any(_under(source, prefix) for prefix in allowed):
        permitted = ", ".join(allowed) or "none configured"
        raise PermanentBackendError(f"mount source {mount.source!r} is not under allowed_mounts ({permitted})")
    return {"Type": "bind", "Source": source, "Target": mount.target, "ReadOnly": mount.read_only}


def _under(path: str, prefix: str) -> bool:
    # normpath already folded any "..", so a plain prefix test on whole path components is enough.
    root = os.path.normpath(prefix)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _checked_options(block: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(block) - ALLOWED_OPTIONS)
    if unknown:
        allowed = ", ".join(sorted(ALLOWED_OPTIONS))
        raise PermanentBackendError(f"docker option(s) {', '.join(unknown)} not allowed (allowed: {allowed})")
    return dict(block)


def _string_labels(labels: Any) -> dict[str, str]:
    if not isinstance(labels, Mapping):
        raise PermanentBackendError("docker.labels must be a mapping of strings")
    return {str(key): str(value) for key, value in labels.items()}
