"""Job files -> validated JobSpecs; every problem reported as `FILE:LINE:COL: job 'NAME': field 'F': message`.

A job file is "HCL-like YAML": a top-level `job:` mapping whose keys are job names (the block labels) and
whose values are JobSpec bodies. Reading is strict -- unknown keys, duplicate keys and duplicate job names are
errors -- and complete: one pass collects every error so a user fixes a file in one round. Nothing from yaml
or pydantic escapes; callers see SpecErrors only. Documented for users in docs/jobs.md.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cronframework.errors import ScheduleError, SpecError, SpecErrors
from cronframework.heap import gc_paused
from cronframework.naming import job_name_problem
from cronframework.schedule.expression import parse_schedule
from cronframework.spec import yamlpos
from cronframework.spec.backends import available_backends
from cronframework.spec.model import JobSpec
from cronframework.spec.yamlpos import Pos, YMap, YNode, YScalar, YSeq

JOB_FILE_SUFFIXES = (".yaml", ".yml")
TOP_LEVEL_KEYS = ("job",)
_TOP_LEVEL_HELP = "jobs go under 'job:', free-form keys start with 'x-'"
_PLACEHOLDER_NAME = "placeholder"  # validates the rest of a job whose label is unusable


@dataclass(frozen=True)
class LoadedJob:
    """A valid job and where it was declared (its block label), for messages and `plan`."""

    spec: JobSpec
    file: str
    line: int


@dataclass(frozen=True)
class _Label:
    name: str
    file: str
    pos: Pos


def load_jobs(paths: Sequence[str | Path]) -> list[LoadedJob]:
    """Every job in `paths` (files, or directories searched recursively), in file then document order."""
    errors: list[SpecError] = []
    reader = _Reader(errors, check_secrets=True)
    with gc_paused():  # specs pile up too; see gc_paused
        for file in find_job_files(paths, errors):
            text = _read(file, errors)
            if text is not None:
                reader.document(text, str(file))
    reader.finish()
    return reader.jobs


def load_jobs_from_text(text: str, file: str = "<string>") -> list[LoadedJob]:
    """The jobs in one file's text (tests, and specs kept in the state store)."""
    return load_jobs_from_texts([(file, text)])


def load_jobs_from_texts(files: Iterable[tuple[str, str]]) -> list[LoadedJob]:
    """Several (file name, text) pairs read as one set: job names unique across them (the spec store)."""
    reader = _Reader([])
    with gc_paused():
        for file, text in files:
            reader.document(text, file)
    reader.finish()
    return reader.jobs


def find_job_files(paths: Sequence[str | Path], errors: list[SpecError]) -> Iterator[Path]:
    """Named files as given; directories searched for *.yaml/*.yml, hidden entries skipped; each file once.

    Lazy, so a bad path's error lands between the errors of the files named before and after it.
    """
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = _walk(path)
            if not files:
                errors.append(SpecError("directory holds no job files (*.yaml, *.yml)", file=str(path)))
        elif path.is_file():
            files = [path]
        else:
            errors.append(SpecError("no such file or directory", file=str(path)))
            continue
        for file in files:
            if (key := _identity(file)) not in seen:
                seen.add(key)
                yield file


def _identity(file: Path) -> Path:
    try:
        return file.resolve()
    except (OSError, RuntimeError):  # a symlink loop: reading it reports the problem
        return file.absolute()


def _walk(directory: Path) -> list[Path]:
    """Job files under `directory` in path order (a/z.yaml before b.yaml), so every replica sees one order."""
    found: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root, n) for n in names if n.endswith(JOB_FILE_SUFFIXES) and not n.startswith(".")]
    return sorted(found, key=lambda path: path.relative_to(directory).parts)


def _read(file: Path, errors: list[SpecError]) -> str | None:
    try:
        size = file.stat().st_size
        if size > yamlpos.MAX_FILE_BYTES:  # refuse before reading a huge file into memory
            raise SpecError(f"file is {size} bytes; limit {yamlpos.MAX_FILE_BYTES >> 20} MiB", file=str(file))
        return yamlpos.decode(file.read_bytes(), str(file))
    except SpecError as exc:
        errors.append(exc)
    except OSError as exc:
        errors.append(SpecError(f"cannot read: {exc.strerror or exc}", file=str(file)))
    return None


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """' (did you mean 'x'?)' for a close choice, else ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Accumulates jobs, errors and job labels across files (names are unique across all of them)."""

    def __init__(self, errors: list[SpecError], *, check_secrets: bool = False) -> None:
        self.errors = errors
        self._check_secrets = check_secrets  # job files on this machine: each webhook's secret must be there
        self.jobs: list[LoadedJob] = []
        self._labels: dict[str, _Label] = {}
        self._backends: list[str] | None = None

    def finish(self) -> None:
        if self.errors:
            raise SpecErrors(self.errors)

    def document(self, text: str, file: str) -> None:
        try:
            root = yamlpos.parse(text, file)
        except SpecError as exc:
            self.errors.append(exc)
            return
        jobs = self._jobs_block(root, file)
        start = len(self.errors)
        for name, (key, body) in jobs.entries.items() if jobs else ():
            self._job(name, key, body, file)
        # pydantic reports in field-definition order; users read files top to bottom
        self.errors[start:] = sorted(self.errors[start:], key=lambda e: (e.line or 0, e.col or 0))

    def _jobs_block(self, root: YNode | None, file: str) -> YMap | None:
        problem = _top_level_problem(root)
        if problem:
            message, pos = problem
            self.errors.append(_at(message, file, pos))
            return None
        assert isinstance(root, YMap)  # _top_level_problem checked it
        unknown = [(k, key) for k, (key, _) in root.entries.items() if not _known_top_level(k)]
        for name, key in unknown:
            hint = did_you_mean(str(name), TOP_LEVEL_KEYS)
            message = f"unknown top-level key {name!r}{hint}; {_TOP_LEVEL_HELP}"
            self.errors.append(_at(message, file, key.pos))
        entry = root.entries.get("job")
        if entry is None and not unknown:
            message = "no top-level 'job:' key; jobs are declared under it"
            self.errors.append(_at(message, file, root.pos))
        return entry[1] if entry and isinstance(entry[1], YMap) else None

    def _job(self, name: Any, key: YScalar, body: YNode, file: str) -> None:
        def error(message: str, pos: Pos, field: str | None = None) -> None:
            job = name if isinstance(name, str) else None
            self.errors.append(_at(message, file, pos, job=job, field=field))

        before = len(self.errors)
        label_ok = self._label(name, key.pos, file, error)
        if not isinstance(body, YMap):
            return error(f"a job body must be a mapping of fields, not {_kind(body)}", body.pos)
        if "name" in body.entries:
            entry = body.entries["name"][0]
            error("the job name is the block label; remove 'name:'", entry.pos, "name")
        self._check_backend(body, error)
        spec = self._validate(name if label_ok else _PLACEHOLDER_NAME, key.pos, body, error)
        if spec is not None and self._check_secrets:
            _check_secrets(spec, body, error)
        if spec is not None and label_ok and len(self.errors) == before:
            self.jobs.append(LoadedJob(spec, file, key.pos.line))

    def _label(self, name: Any, pos: Pos, file: str, error: Callable[[str, Pos], None]) -> bool:
        if not isinstance(name, str):
            error(f"job name must be a string, not {name!r} (quote it)", pos)
            return False
        problem = job_name_problem(name)
        if problem:
            error(problem, pos)
            return False
        first = self._labels.setdefault(name, _Label(name, file, pos))
        if first.pos != pos or first.file != file:
            error(f"duplicate job name; first defined at {first.file}:{first.pos.line}:{first.pos.col}", pos)
        return True

    def _check_backend(self, body: YMap, error: Callable[[str, Pos, str], None]) -> None:
        entry = body.entries.get("backend")
        if entry is None or not isinstance(entry[1], YScalar) or not isinstance(entry[1].value, str):
            return  # absent (default) or not a string (pydantic reports the type)
        if self._backends is None:
            self._backends = available_backends()
        value = entry[1].value
        if value not in self._backends:
            installed = ", ".join(self._backends) or "none"
            hint = did_you_mean(value, self._backends)
            error(f"unknown backend {value!r}{hint}; installed: {installed}", entry[1].pos, "backend")

    def _validate(
        self, name: str, label: Pos, body: YMap, error: Callable[[str, Pos, str | None], None]
    ) -> JobSpec | None:
        data = {**yamlpos.to_python(body), "name": name}  # a body's own `name:` is reported by the caller
        try:
            return JobSpec.model_validate(data)
        except ValidationError as exc:
            described = _describe_all(exc, body, label)
            for message, pos, field in described:
                error(message, pos, field)
            if not any(field == "schedule" for _, _, field in described):
                self._check_schedule_alone(name, data.get("schedule"), body, label, error)
        except ScheduleError as exc:
            self._schedule_error(exc, body, label, error)
        return None

    def _check_schedule_alone(
        self, name: str, schedule: Any, body: YMap, label: Pos, error: Callable[[str, Pos, str | None], None]
    ) -> None:
        """The model checks the schedule only once every field is valid; so that one pass reports every problem,
        check it on its own then (whether an expression is valid does not depend on the zone or DST policy)."""
        if not isinstance(schedule, str):
            return
        try:
            parse_schedule(schedule, job=name)
        except ScheduleError as exc:
            self._schedule_error(exc, body, label, error)

    @staticmethod
    def _schedule_error(
        exc: ScheduleError, body: YMap, label: Pos, error: Callable[[str, Pos, str | None], None]
    ) -> None:
        entry = body.entries.get("schedule")
        error(str(exc), entry[1].pos if entry else label, "schedule")


def _check_secrets(spec: JobSpec, body: YMap, error: Callable[[str, Pos, str | None], None]) -> None:
    """Each webhook's signing secret is where it says: a job that silently could not sign, so could not notify, is
    worse than a refused file."""
    for index, hook in enumerate(spec.notify):
        field = f"notify[{index}].secret_env" if hook.secret_env else f"notify[{index}].secret_file"
        key, node, _ = _locate(body, ("notify", index, field.rsplit(".", 1)[1]))
        pos = node.pos if key is not None else body.pos
        if hook.secret_env is not None and not os.environ.get(hook.secret_env):
            error(f"the secret {hook.secret_env!r} is not set in this environment (it signs each POST)", pos, field)
        elif hook.secret_file is not None and not _readable(hook.secret_file):
            error(f"the secret file {hook.secret_file!r} is missing, unreadable or empty", pos, field)


def _readable(path: str) -> bool:
    try:
        return bool(Path(path).read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False


def _known_top_level(key: Any) -> bool:
    """`job`, or an `x-` key: free-form, ignored, a place for anchors (`x-defaults: &defaults {...}`)."""
    return key in TOP_LEVEL_KEYS or (isinstance(key, str) and key.startswith("x-"))


def _at(message: str, file: str, pos: Pos | None, job: str | None = None, field: str | None = None) -> SpecError:
    line, col = (pos.line, pos.col) if pos else (None, None)
    return SpecError(message, file=file, line=line, col=col, job=job, field=field)


def _top_level_problem(root: YNode | None) -> tuple[str, Pos | None] | None:
    if root is None:
        return "file is empty; expected a top-level 'job:' mapping", None
    if not isinstance(root, YMap):
        return f"top level must be a mapping with a 'job:' key, not {_kind(root)}", root.pos
    block = root.entries.get("job")
    if block is not None and (not isinstance(block[1], YMap) or not block[1].entries):
        return "'job' must map job names to job bodies, e.g. 'job: {my-job: {...}}'", block[1].pos
    return None


def _kind(node: YNode) -> str:
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YScalar):
        return "empty" if node.value is None else f"a scalar ({node.value!r})"
    return "a list"


# --- pydantic errors -> positioned messages ---

_Described = tuple[str, Pos, str | None]
_VALID_TYPE = re.compile(r"Input should be a valid (\w+)(?:, unable to .*)?$")
_REPHRASE = {
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "missing": "missing required field",
    "extra_forbidden": "unknown key",
}


def _describe_all(exc: ValidationError, body: YMap, label: Pos) -> list[_Described]:
    """One message per pydantic error; a 'missing' field that an unknown key's suggestion names is dropped."""
    described: list[_Described] = []
    suggested: set[tuple[Any, ...]] = set()
    details = exc.errors(include_url=False)
    for detail in details:
        loc = tuple(detail["loc"])
        if detail["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1, cutoff=0.6)
            suggested.update((*loc[:-1], c) for c in close)
    for detail in details:
        if detail["type"] == "missing" and tuple(detail["loc"]) in suggested:
            continue
        described.append(_describe(detail, body, label))
    return described


_SECRET_FIELDS = ("task.env", "task.command", "task.args")  # values never shown by `status` or the API


def field_problems(exc: ValidationError) -> list[str]:
    """pydantic's errors as `field 'F': message`, for a spec read from the state store (it has no positions).

    These reach `status` and the API, which never show a task's command or environment: values there are left out.
    """
    problems = []
    for detail in exc.errors(include_url=False):
        loc = tuple(detail["loc"])
        field = _format_path(_path(loc))
        secret = field is not None and field.startswith(_SECRET_FIELDS)
        message = _message(detail, detail["type"], _is_key(loc), show_input=not secret)
        problems.append(f"field {field!r}: {message}" if field else message)
    return problems


def _path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic's location without its own markers (`[key]`, `function-before[...]`)."""
    return tuple(p for p in loc if isinstance(p, int) or not str(p).startswith(("[", "function-")))


def _is_key(loc: tuple[Any, ...]) -> bool:
    return bool(loc) and loc[-1] == "[key]"


def _describe(detail: Any, body: YMap, label: Pos) -> _Described:
    loc = tuple(detail["loc"])
    is_key = _is_key(loc)
    path = _path(loc)
    key, node, depth = _locate(body, path)
    field = _format_path(path)
    kind = detail["type"]
    if kind == "extra_forbidden":
        valid = _fields_at(path[:-1])
        hint = did_you_mean(str(path[-1]), valid) or (f" (valid keys: {', '.join(valid)})" if valid else "")
        return f"unknown key {path[-1]!r}{hint}", key.pos if key else node.pos, _format_path(path[:-1])
    if kind == "missing":
        return _REPHRASE[kind], label if depth == 0 else node.pos, field
    pos = key.pos if is_key and key else (label if depth == 0 else node.pos)
    return _message(detail, kind, is_key), pos, field


def _message(detail: Any, kind: str, is_key: bool, show_input: bool = True) -> str:
    text = _REPHRASE.get(kind) or str(detail["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    text = _VALID_TYPE.sub(lambda m: f"must be {'an' if m[1][0] in 'aeiou' else 'a'} {m[1]}", text)
    text = text.replace("Input should be", "must be")
    if show_input:
        text += _input_note(kind, detail.get("input"))
    return f"key {text}" if is_key else text


def _input_note(kind: str, value: Any) -> str:
    if kind == "string_type" and isinstance(value, int | float):  # bool is an int: `yes` -> true
        spelled = str(value).lower() if isinstance(value, bool) else str(value)
        return f'; quote it: "{spelled}"'
    if kind != "value_error" and not isinstance(value, dict | list):
        return f" (got {value!r})"
    return ""


def _locate(body: YMap, path: tuple[Any, ...]) -> tuple[YScalar | None, YNode, int]:
    """The deepest node along `path` that exists in the file, its key node, and how far along it is."""
    key: YScalar | None = None
    node: YNode = body
    for depth, part in enumerate(path):
        if isinstance(node, YMap) and part in node.entries:
            key, node = node.entries[part]
        elif isinstance(node, YSeq) and isinstance(part, int) and 0 <= part < len(node.items):
            key, node = None, node.items[part]
        else:
            return key, node, depth
    return key, node, len(path)


def _format_path(path: tuple[Any, ...]) -> str | None:
    """('task', 'mounts', 0, 'source') -> 'task.mounts[0].source'; None for the job itself."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _fields_at(path: tuple[Any, ...]) -> list[str]:
    """The keys a job body accepts at `path` (for did-you-mean); empty where keys are free-form."""
    model: Any = JobSpec
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = _unwrap(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [name for name in model.model_fields if not (model is JobSpec and name == "name")]
    return []


def _unwrap(annotation: Any) -> Any:
    """`Task | None` -> Task, `list[Mount]` -> Mount; anything else as is."""
    origin = get_origin(annotation)
    if origin in (Union, UnionType, list):
        models = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if models else annotation
    return annotation
