"""Launch -> Nomad job payload (the JSON API form). Pure: no I/O, so every mapping rule is unit-testable.

One launch is one batch job with one group and one task, named after the launch. Nomad must neither restart
nor reschedule it: the scheduler owns retries, and a launch that Nomad re-ran on its own is a double launch.

Policies alone do not stop every re-run: an agent restarted with its state that cannot reattach to a raw_exec or
exec task's executor starts the task again once it reaches its server ("failed to restore task; will not run until
server is contacted"), even a task that had already exited before the agent died. So those drivers run the command
behind a guard that claims the allocation's directory (kept across that restart) first: a second start in the same
allocation exits with RERUN_EXIT instead of running the task again. The client may also run an allocation again
after its garbage collection removed the allocation's directory (the server never heard that it had ended: an
agent restarted twice in a few minutes did so), so a raw_exec task also claims a mark named after the allocation
beside the allocations' directories, which the collection leaves alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from cronframework.errors import PermanentBackendError
from cronframework.launch import Launch

GROUP = "launch"
TASK = "task"
DRIVERS = ("raw_exec", "exec", "docker")
META_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_]")

# Lower-case spellings accepted in a job's `nomad:` block for the usual top-level fields (jobspec/HCL style);
# anything else in the block must already be in the JSON API's spelling and is merged as written.
TOP_LEVEL_ALIASES = {
    "datacenters": "Datacenters",
    "priority": "Priority",
    "meta": "Meta",
    "constraints": "Constraints",
    "affinities": "Affinities",
    "node_pool": "NodePool",
    "namespace": "Namespace",
    "region": "Region",
    "all_at_once": "AllAtOnce",
}
CONSTRAINT_ALIASES = {"attribute": "LTarget", "value": "RTarget", "operator": "Operand", "weight": "Weight"}
# Keys of the block that steer the adapter instead of being merged into the job.
CONTROL_KEYS = ("driver", "group", "task")
GUARDED_DRIVERS = ("raw_exec", "exec")
RERUN_EXIT = 125  # what a second start of one allocation exits with; the first run's own result is lost to Nomad
RERUN_MARK = "cronframework-started"
# Beside the allocations' directories (raw_exec sees the host's: $NOMAD_ALLOC_DIR is <data_dir>/alloc/<id>/alloc),
# one mark per allocation that outlives the client's garbage collection of the allocation's own directory.
NODE_MARKS = f"$NOMAD_ALLOC_DIR/../../.{RERUN_MARK}"
# Marks older than this are removed (at most once an hour, by the task that finds the last pass that old): Nomad
# cannot run an allocation again once its server collected the job, 4 hours after it ended by default.
NODE_MARKS_KEPT_MINUTES = 7 * 24 * 60
_REFUSE = (
    f'{{ echo "cronframework: this allocation already started its task; not running it again" >&2; '
    f"exit {RERUN_EXIT}; }}; "
)
# "$@" is the task's argv; `exec` keeps the process the driver signals and waits for the task itself. No braces
# around a variable: Nomad interpolates ${...} in a task's args itself and refuses the job over a shell-only form.
RERUN_GUARD = f'[ -n "$NOMAD_ALLOC_DIR" ] && mkdir "$NOMAD_ALLOC_DIR/{RERUN_MARK}" 2>/dev/null || {_REFUSE}exec "$@"'
RERUN_GUARD_NODE = (
    f'[ -n "$NOMAD_ALLOC_DIR" ] && [ -n "$NOMAD_ALLOC_ID" ] && m="{NODE_MARKS}" && mkdir -p "$m" '
    f'&& mkdir "$NOMAD_ALLOC_DIR/{RERUN_MARK}" 2>/dev/null && mkdir "$m/$NOMAD_ALLOC_ID" 2>/dev/null || {_REFUSE}'
    f'[ -n "$(find "$m/.pruned" -mmin -60 2>/dev/null)" ] || {{ touch "$m/.pruned"; '
    f'find "$m" -mindepth 1 -maxdepth 1 -type d -mmin +{NODE_MARKS_KEPT_MINUTES} -exec rmdir {{}} + 2>/dev/null; }}; '
    'exec "$@"'
)


def meta_key(key: str) -> str:
    """Nomad meta keys become NOMAD_META_<key> variables, so only [A-Za-z0-9_] is safe."""
    return META_KEY_UNSAFE.sub("_", key)


def launch_meta(launch: Launch) -> dict[str, str]:
    raw = {**launch.spec.meta, **launch.labels()}
    return {meta_key(key): value for key, value in raw.items()}


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Dictionaries merge key by key; any other value in `extra` (lists included) replaces the base's."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def choose_driver(launch: Launch) -> str:
    """docker when the task names an image; else raw_exec, or what the job's `nomad.driver` says."""
    task = launch.spec.task
    wanted = launch.spec.nomad.get("driver")
    driver = str(wanted) if wanted else ("docker" if task.image else "raw_exec")
    if driver not in DRIVERS:
        known = ", ".join(DRIVERS)
        raise PermanentBackendError(f"nomad.driver {driver!r} is not supported (use one of {known})")
    if task.image and driver != "docker":
        raise PermanentBackendError(f"task.image needs the docker driver, not nomad.driver {driver!r}")
    if not task.image and driver == "docker":
        raise PermanentBackendError("nomad.driver 'docker' needs task.image")
    return driver


def command_config(launch: Launch, driver: str) -> dict[str, Any]:
    """The driver's `config` block: raw_exec/exec take command + args; docker takes image [+ command/args]."""
    task = launch.spec.task
    argv = [*(task.command or []), *task.args]
    config: dict[str, Any] = {}
    if driver == "docker":
        config["image"] = task.image
        if task.command:
            config["command"] = task.command[0]
        if argv[1 if task.command else 0 :]:
            config["args"] = argv[1 if task.command else 0 :]
        config.update(_docker_extras(launch))
    else:
        _refuse_docker_only(launch, driver)
        config.update(guarded(argv, driver) if driver in GUARDED_DRIVERS else {"command": argv[0], "args": argv[1:]})
    if task.workdir:
        config["work_dir"] = task.workdir
    return config


def guarded(argv: list[str], driver: str = "raw_exec") -> dict[str, Any]:
    """`argv` behind the at-most-once guard (module docstring); the name after the script is the shell's $0. An
    exec task sees its allocation's directory only, inside its chroot: it keeps the mark there alone."""
    script = RERUN_GUARD_NODE if driver == "raw_exec" else RERUN_GUARD
    return {"command": "/bin/sh", "args": ["-c", script, "cronframework-guard", *argv]}


def _docker_extras(launch: Launch) -> dict[str, Any]:
    task = launch.spec.task
    extras: dict[str, Any] = {}
    if task.network:
        extras["network_mode"] = task.network
    if task.mounts:
        extras["mount"] = [_bind(m.source, m.target, m.read_only) for m in task.mounts]
    return extras


def _bind(source: str, target: str, read_only: bool) -> dict[str, Any]:
    return {"type": "bind", "source": source, "target": target, "readonly": read_only}


def _refuse_docker_only(launch: Launch, driver: str) -> None:
    """Fail closed: a network or mount the job asked for must not be silently dropped."""
    task = launch.spec.task
    if task.network or task.mounts:
        raise PermanentBackendError(f"task.network and task.mounts need the docker driver, not {driver}")


def task_resources(launch: Launch, mhz_per_core: float) -> dict[str, Any]:
    """Nomad reserves CPU in MHz, not cores: cores x a configured factor (one core = 1000 MHz by default)."""
    resources = launch.spec.task.resources
    out: dict[str, Any] = {}
    if resources.cpu is not None:
        out["CPU"] = max(1, round(resources.cpu * mhz_per_core))
    if resources.memory is not None:
        out["MemoryMB"] = resources.memory
    return out


def task_payload(launch: Launch, mhz_per_core: float) -> dict[str, Any]:
    driver = choose_driver(launch)
    task: dict[str, Any] = {
        "Name": TASK,
        "Driver": driver,
        "Config": command_config(launch, driver),
        "Env": launch.env(),
        "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
    }
    if launch.spec.task.user:
        task["User"] = launch.spec.task.user
    resources = task_resources(launch, mhz_per_core)
    if resources:
        task["Resources"] = resources
    return task


def group_payload(launch: Launch, mhz_per_core: float) -> dict[str, Any]:
    return {
        "Name": GROUP,
        "Count": 1,
        # attempts 0: a failed run is reported, never retried by Nomad (retries belong to the scheduler)
        "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
        "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
        "Tasks": [task_payload(launch, mhz_per_core)],
    }


def job_payload(
    launch: Launch,
    *,
    mhz_per_core: float = 1000.0,
    namespace: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The job to register for `launch`, with the job's `nomad:` block merged over the defaults."""
    block = launch.spec.nomad
    job: dict[str, Any] = {
        "ID": launch.name,
        "Name": launch.name,
        "Type": "batch",
        "Datacenters": ["*"],
        "Meta": launch_meta(launch),
        "TaskGroups": [group_payload(launch, mhz_per_core)],
    }
    if namespace:
        job["Namespace"] = namespace
    if region:
        job["Region"] = region
    job = deep_merge(job, _top_level(block))
    job["Meta"] = {**job["Meta"], **launch_meta(launch)}  # the identity meta wins over the block
    _check_placement(job, namespace, region)
    group, task = job["TaskGroups"][0], job["TaskGroups"][0]["Tasks"][0]
    job["TaskGroups"][0] = deep_merge(group, _mapping(block, "group"))
    job["TaskGroups"][0]["Tasks"][0] = deep_merge(task, _mapping(block, "task"))
    return job


def _mapping(block: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = block.get(key) or {}
    if not isinstance(value, Mapping):
        raise PermanentBackendError(f"nomad.{key} must be a mapping of Nomad API fields")
    return value


def _top_level(block: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in block.items():
        if key in CONTROL_KEYS:
            continue
        name = TOP_LEVEL_ALIASES.get(key, key)
        out[name] = _constraints(value) if name in ("Constraints", "Affinities") else value
    if "Meta" in out:
        out["Meta"] = {meta_key(str(k)): str(v) for k, v in out["Meta"].items()}
    return out


def _constraints(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise PermanentBackendError("nomad.constraints must be a list")
    # the jobspec's default operator is "="; the JSON API has no default and refuses an empty one
    return [{"Operand": "=", **{CONSTRAINT_ALIASES.get(k, k): v for k, v in dict(item).items()}} for item in value]


def _check_placement(job: Mapping[str, Any], namespace: str | None, region: str | None) -> None:
    """Lookup-by-name asks the adapter's namespace and region; a job placed elsewhere could never be found."""
    for field, configured in (("Namespace", namespace), ("Region", region)):
        wanted = job.get(field)
        if wanted is not None and wanted != (configured or _default(field)):
            raise PermanentBackendError(
                f"nomad.{field.lower()} {wanted!r} differs from the backend's {field.lower()} "
                f"{configured or _default(field)!r}: set it in the scheduler's nomad backend config instead"
            )


def _default(field: str) -> str:
    return "default" if field == "Namespace" else "global"
