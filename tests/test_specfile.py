"""Job files -> JobSpecs: meaning, exact error positions, the bad-file corpus, safety bounds."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronframework.errors import SpecError, SpecErrors
from cronframework.spec import files as specfile
from cronframework.spec import yamlpos
from cronframework.spec.files import LoadedJob, load_jobs, load_jobs_from_text, load_jobs_from_texts
from cronframework.spec.model import CatchupPolicy, Concurrency, OnUncertain

CORPUS = Path(__file__).parent / "bad_specs"
EXAMPLES = Path(__file__).parent.parent / "examples"

MINIMAL = """\
job:
  nightly-report:
    schedule: "30 1 * * *"
    timezone: America/New_York
    backend: process
    task:
      command: ["/bin/echo", "hello"]
"""


def job_text(name: str, schedule: str = "30 1 * * *", extra: str = "") -> str:
    return f'  {name}:\n    schedule: "{schedule}"\n{extra}    task:\n      command: ["/bin/true"]\n'


def errors_of(text: str, file: str = "f.yaml") -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_jobs_from_text(text, file)
    return [str(error) for error in caught.value.errors]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- valid files mean what they say ------------------------------------------------------------------


def test_minimal_file_means_what_it_says() -> None:
    [loaded] = load_jobs_from_text(MINIMAL, "nightly.yaml")
    assert (loaded.file, loaded.line) == ("nightly.yaml", 2)
    spec = loaded.spec
    assert (spec.name, spec.schedule, spec.timezone, spec.backend) == (
        "nightly-report",
        "30 1 * * *",
        "America/New_York",
        "process",
    )
    assert spec.task.command == ["/bin/echo", "hello"]
    assert spec.enabled and spec.concurrency is Concurrency.ALLOW and spec.on_uncertain is OnUncertain.SKIP


def test_every_field_is_read() -> None:
    text = """\
job:
  full:
    schedule: "@every 90s"
    enabled: false
    concurrency: forbid
    catchup: {policy: all, window: 2h, max: 3}
    on_uncertain: relaunch
    recovery_window: 20m
    retries: {attempts: 5, backoff: 2s, max_backoff: 1m}
    retention: {count: 7, age: 2d}
    dst: {skipped: skip, repeated: both}
    labels: {team: data}
    meta: {owner: alice}
    nomad: {datacenters: [dc1]}
    task:
      image: alpine:3
      args: [a, b]
      env: {A: "1"}
      resources: {cpu: 0.5, memory: 256}
      timeout: 1h30m
      mounts: [{source: /a, target: /b, read_only: false}]
"""
    spec = load_jobs_from_text(text)[0].spec
    assert not spec.enabled and spec.concurrency is Concurrency.FORBID
    assert (spec.catchup.policy, spec.catchup.window, spec.catchup.max) == (
        CatchupPolicy.ALL,
        timedelta(hours=2),
        3,
    )
    assert spec.recovery_window == timedelta(minutes=20) and spec.retries.max_backoff == timedelta(minutes=1)
    assert spec.task.timeout == timedelta(minutes=90) and spec.task.mounts[0].read_only is False
    assert spec.task.resources.memory == 256 and spec.backend_options() == {}  # process block, not nomad's
    assert spec.nomad == {"datacenters": ["dc1"]} and spec.dst.repeated.value == "both"


def test_catchup_shorthand() -> None:
    text = "job:\n" + job_text("a", extra="    catchup: latest\n")
    assert load_jobs_from_text(text)[0].spec.catchup.policy is CatchupPolicy.LATEST


def test_merge_keys_share_defaults_and_explicit_keys_win() -> None:
    text = """\
x-defaults: &defaults
  timezone: Europe/Berlin
  task: {command: [/bin/true]}
job:
  a:
    <<: *defaults
    schedule: "0 1 * * *"
  b:
    <<: *defaults
    schedule: "0 2 * * *"
    timezone: UTC
"""
    a, b = (job.spec for job in load_jobs_from_text(text))
    assert (a.schedule, a.timezone, a.task.command) == ("0 1 * * *", "Europe/Berlin", ["/bin/true"])
    assert (b.schedule, b.timezone, b.task.command) == ("0 2 * * *", "UTC", ["/bin/true"])


def test_only_x_prefixed_top_level_keys_are_free_form() -> None:
    text = "defaults: {timezone: UTC}\njob:\n" + job_text("a")
    assert errors_of(text) == [
        "f.yaml:1:1: unknown top-level key 'defaults'; jobs go under 'job:', free-form keys start with 'x-'"
    ]


def test_utf8_bom_and_non_ascii_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.replace("hello", "h\u00e9llo").encode())
    assert load_jobs([path])[0].spec.task.command == ["/bin/echo", "h\u00e9llo"]


def test_examples_are_valid() -> None:
    names = {path.name for path in EXAMPLES.glob("*.yaml")}
    assert {"hello.yaml", "nightly.yaml", "docker.yaml", "nomad.yaml"} <= names
    jobs = load_jobs([EXAMPLES])
    assert next(job.spec.name for job in jobs if job.file.endswith("nightly.yaml")) == "nightly-report"
    hello = [job.spec for job in jobs if job.file.endswith("hello.yaml")]
    assert hello and all(spec.backend == "process" and len(spec.schedule.split()) == 6 for spec in hello)


# --- files and directories ---------------------------------------------------------------------------


def test_file_then_document_order_and_recursive_directories(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", "job:\n" + job_text("b2") + job_text("b1"))
    write(tmp_path / "a" / "z.yml", "job:\n" + job_text("a1"))
    write(tmp_path / "a" / ".hidden.yaml", "not: [valid")
    write(tmp_path / ".git" / "x.yaml", "not: [valid")
    write(tmp_path / "notes.txt", "ignored")
    jobs = load_jobs([tmp_path])
    assert [(Path(job.file).relative_to(tmp_path).as_posix(), job.spec.name, job.line) for job in jobs] == [
        ("a/z.yml", "a1", 2),
        ("b.yaml", "b2", 2),
        ("b.yaml", "b1", 6),
    ]


def test_explicit_files_keep_argument_order_and_load_once(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "job:\n" + job_text("a"))
    b = write(tmp_path / "b.yaml", "job:\n" + job_text("b"))
    assert [job.spec.name for job in load_jobs([b, a, tmp_path, str(b)])] == ["b", "a"]


def test_duplicate_job_across_files_names_both_places(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "job:\n" + job_text("dup"))
    write(tmp_path / "b.yaml", "job:\n" + job_text("other") + job_text("dup"))
    with pytest.raises(SpecErrors) as caught:
        load_jobs([tmp_path])
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'b.yaml'}:6:3: job 'dup': duplicate job name; first defined at {tmp_path / 'a.yaml'}:2:3"
    ]


def test_texts_from_the_spec_store_share_one_namespace() -> None:
    one, two = "job:\n" + job_text("a"), "job:\n" + job_text("b") + job_text("a")
    assert [job.spec.name for job in load_jobs_from_texts([("one", one), ("other", "job:\n" + job_text("c"))])] == [
        "a",
        "c",
    ]
    with pytest.raises(SpecErrors) as caught:
        load_jobs_from_texts([("one", one), ("two", two)])
    assert str(caught.value) == "two:6:3: job 'a': duplicate job name; first defined at one:2:3"


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / "readme.md", "no jobs")
    with pytest.raises(SpecErrors) as caught:
        load_jobs([tmp_path / "empty", tmp_path / "nope.yaml"])
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'empty'}: directory holds no job files (*.yaml, *.yml)",
        f"{tmp_path / 'nope.yaml'}: no such file or directory",
    ]


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (yamlpos.MAX_FILE_BYTES + 1))
    with pytest.raises(SpecErrors) as caught:
        load_jobs([path])
    assert str(caught.value) == f"{path}: file is 1048577 bytes; limit 1 MiB"
    assert errors_of("#" * (yamlpos.MAX_FILE_BYTES + 1)) == ["f.yaml: file is 1048577 bytes; limit 1 MiB"]


def test_unreadable_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "a.yaml", MINIMAL)

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(SpecErrors) as caught:
        load_jobs([path])
    assert str(caught.value) == f"{path}: cannot read: Permission denied"


# --- errors: all of them, each at its place ----------------------------------------------------------


def test_every_error_in_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "job:\n" + job_text("a", extra="    timezone: Nowhere/Land\n") + job_text("Bad"))
    write(tmp_path / "b.yaml", "job: [\n")
    write(tmp_path / "c.yaml", "job:\n" + job_text("fine"))
    with pytest.raises(SpecErrors) as caught:
        load_jobs([tmp_path])
    where = [(Path(e.file).name, e.line, e.col, e.job, e.field) for e in caught.value.errors]
    assert where == [
        ("a.yaml", 4, 15, "a", "timezone"),
        ("a.yaml", 7, 3, "Bad", None),
        ("b.yaml", 2, 1, None, None),
    ]


def test_positions_point_at_the_offending_key_or_value() -> None:
    text = "job:\n  j:\n    schedule: '0 1 * * *'\n    task:\n      command: [a]\n      resources:\n" + (
        "        memory: -1\n        cpuu: 2\n"
    )
    assert errors_of(text) == [
        "f.yaml:7:17: job 'j': field 'task.resources.memory': must be greater than 0 (got -1)",
        "f.yaml:8:9: job 'j': field 'task.resources': unknown key 'cpuu' (did you mean 'cpu'?)",
    ]


def test_unknown_key_without_a_close_match_lists_the_valid_keys() -> None:
    text = "job:\n  j:\n    schedule: '0 1 * * *'\n    task:\n      command: [a]\n      mounts:\n" + (
        "        - {source: /a, target: /b, zzz: 1}\n"
    )
    assert errors_of(text) == [
        "f.yaml:7:36: job 'j': field 'task.mounts[0]': unknown key 'zzz' (valid keys: source, target, read_only)"
    ]


def test_misspelled_required_field_is_one_error_not_two() -> None:
    text = "job:\n  j:\n    shedule: '0 1 * * *'\n    task: {command: [a]}\n"
    assert errors_of(text) == ["f.yaml:3:5: job 'j': unknown key 'shedule' (did you mean 'schedule'?)"]


def test_backend_must_be_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(specfile, "available_backends", lambda: ["alpha", "beta"])
    text = "job:\n" + job_text("a", extra="    backend: alpah\n")
    assert errors_of(text) == [
        "f.yaml:4:14: job 'a': field 'backend': unknown backend 'alpah' (did you mean 'alpha'?); installed: alpha, beta"
    ]


def test_errors_in_a_job_with_a_bad_name_are_still_reported() -> None:
    text = "job:\n" + job_text("Bad Name", schedule="0 25 * * *")
    assert errors_of(text) == [
        "f.yaml:2:3: job 'Bad Name': job name must be lowercase letters, digits, '-', '_' or '.', "
        "start and end with a letter or digit (it becomes part of Nomad job IDs and Docker container names)",
        "f.yaml:3:15: job 'Bad Name': field 'schedule': hour field: 25 out of range 0-23",
    ]


def test_huge_alias_fanout_is_refused_quickly() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 12)]
    [message] = errors_of("\n".join(levels) + "\njob: *a11\n")
    assert message.endswith("aliases expand to more than 100000 nodes; refusing")


def test_deep_nesting_does_not_crash_the_interpreter(tmp_path: Path) -> None:
    """libyaml's composer segfaults on 300k levels. Which layer refuses first (a newer libyaml's own flow limit or
    our MAX_DEPTH) varies with the PyYAML release, so this asserts the outcome, not the wording: one error at a
    position inside the brackets, a clean exit 1 from the real command."""
    depth = 300_000
    text = "job: " + "[" * depth + "]" * depth
    [message] = errors_of(text)
    position = re.match(r"f\.yaml:1:(\d+): \S", message)
    assert position, message
    col = int(position[1])
    assert len("job: ") < col <= len("job: ") + depth  # among the opening brackets
    bad = write(tmp_path / "deep.yaml", text)
    result = subprocess.run(
        [sys.executable, "-m", "cronframework", "validate", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr[-2000:]  # a crash is a negative (signal) or another code
    assert result.stderr == f"error: {bad}:1:{col}: {message.split(': ', 1)[1]}\n"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("job: \n-[]{}&*!?<>'\"#|,abc12\t\x07")), max_size=80))
def test_only_spec_errors_escape(text: str) -> None:
    try:
        load_jobs_from_text(text)
    except SpecErrors as exc:
        assert exc.errors and all(str(error).startswith("<string>") for error in exc.errors)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64).map(lambda junk: MINIMAL.encode()[:40] + junk))
def test_arbitrary_bytes_give_spec_errors_only(data: bytes) -> None:
    try:
        load_jobs_from_text(yamlpos.decode(data, "f.yaml"), "f.yaml")
    except SpecError as exc:  # decode's own error
        assert str(exc).startswith("f.yaml:")
    except SpecErrors as exc:
        assert all(str(error).startswith("f.yaml") for error in exc.errors)


def test_loaded_job_is_frozen() -> None:
    [loaded] = load_jobs_from_text(MINIMAL)
    with pytest.raises(AttributeError):
        loaded.line = 3  # type: ignore[misc]
    assert isinstance(loaded, LoadedJob)


# --- the corpus: one bad file per case, its exact message beside it -----------------------------------

CORPUS_CASES = sorted(path.stem for path in CORPUS.glob("*.yaml"))


def test_corpus_is_complete() -> None:
    assert len(CORPUS_CASES) >= 30
    assert sorted(path.stem for path in CORPUS.glob("*.expected")) == CORPUS_CASES


@pytest.mark.parametrize("case", CORPUS_CASES)
def test_corpus(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)  # messages name the file as given: "case.yaml:LINE:COL: ..."
    expected = (CORPUS / f"{case}.expected").read_text().splitlines()
    with pytest.raises(SpecErrors) as caught:
        load_jobs([f"{case}.yaml"])
    assert [str(error) for error in caught.value.errors] == expected
