"""The status page: server-rendered HTML that works without JavaScript and under read auth (any client that sends
the header). Every value goes through html.escape. The script only refreshes relative times, reloads the list, and
sends the actions (trigger, pause, resume) and log requests with the bearer token the user enters.

Pages: `/` (jobs: search by name prefix, filter by state and last result, sort by name, next launch or result, 100
a page), `/jobs/{job}` (next launches in the job's zone and UTC, recent launches with result, duration and logs,
actions), `/jobs/{job}/launches/{launch}` (one launch and its output). Result fields (`result`, a duration, a
job's last success) are shown when the status document and records carry them, and left out when they do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from starlette.responses import HTMLResponse, Response

from . import humane
from .selection import JobQuery, result_of

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'"
STYLE = files("cronframework.api").joinpath("static/page.css").read_text()
SCRIPT = files("cronframework.api").joinpath("static/page.js").read_text()
STATES = ("enabled", "paused", "disabled", "broken")
RESULTS = ("succeeded", "failed", "running", "submitted", "skipped", "failed_to_launch", "none")
SORTS = {"name": "name", "next": "next launch", "result": "last result"}
PER_PAGE = 100
# a result word -> its colour class
_TONE = {
    "succeeded": "ok",
    "submitted": "ok",
    "already_existed": "ok",
    "failed": "bad",
    "failed_to_launch": "bad",
    "lost": "bad",
    "unknown": "bad",
    "running": "live",
    "pending": "live",
    "begun": "live",
    "skipped": "skip",
}


def html(body: str) -> Response:
    return HTMLResponse(body, 200, {"Content-Security-Policy": CSP})


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _job_url(job: str, *rest: str) -> str:
    return "/jobs/" + "/".join(quote(part, safe="") for part in (job, *rest))


def _when(iso: str | None, zone_name: str | None, now: datetime) -> str:
    """The instant in the job's zone to the second, with how far it is from now; UTC in the tooltip."""
    at = humane.parse(iso)
    if at is None:
        return "-"
    return (
        f'<time datetime="{_e(at.isoformat())}" title="{_e(humane.utc(at))}">{_e(humane.local(at, zone_name))}'
        f' <span class="rel">{_e(humane.relative(at, now))}</span></time>'
    )


def _badge(word: str) -> str:
    return f'<span class="badge {_TONE.get(word, "none")}">{_e(word)}</span>'


def _strip(records: Sequence[Mapping[str, Any]]) -> str:
    """The recent runs, oldest to newest, one coloured cell each."""
    cells = "".join(_run_cell(r, result_of({"last_launch": r})) for r in reversed(records))
    return f'<span class="strip">{cells}</span>'


def _run_cell(record: Mapping[str, Any], word: str) -> str:
    url = _job_url(str(record["job"]), "launches", str(record["name"]))
    return f'<a class="run {_TONE.get(word, "none")}" href="{url}" title="{_e(record["name"])}: {_e(word)}"></a>'


def _frame(title: str, content: str, now: datetime) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
        f'<body><header><h1><a href="/">cronframework</a></h1>'
        f'<span class="now">as of {_when(now.isoformat(), "UTC", now)}</span></header>'
        f"<main>{content}</main><script>{SCRIPT}</script></body></html>"
    )


def _leader_block(status: Mapping[str, Any], now: datetime) -> str:
    leader = status.get("leader")
    who = (
        f'<b id="leader">{_e(leader.get("replica"))}</b> (epoch {_e(leader.get("epoch"))})'
        if leader
        else '<b id="leader">none</b> <span class="badge bad">nothing launches</span>'
    )
    replicas = ", ".join(_e(r.get("replica")) for r in status.get("replicas") or [])
    takeover = status.get("takeover") or {}
    last = (
        f" &middot; last takeover {_when(takeover.get('at'), 'UTC', now)} by {_e(takeover.get('replica'))}"
        if takeover
        else ""
    )
    return f'<p class="leader">Leader: {who}{last} &middot; replicas: {replicas or "-"}</p>'


# -- the job list ---------------------------------------------------------------------------------------------------
def index(
    status: Mapping[str, Any],
    zones: Mapping[str, str],
    strips: Mapping[str, Sequence[Mapping[str, Any]]],
    query: JobQuery,
    now: datetime,
) -> str:
    rows = "".join(_job_row(job, zones.get(job["job"]), strips.get(job["job"], ()), now) for job in status["jobs"])
    empty = '<tr><td colspan="7">no jobs match</td></tr>' if status["page"]["total"] else ""
    table = (
        '<table id="jobs"><thead><tr><th>Job</th><th>State</th><th>Next launch</th><th>Last launch</th>'
        f"<th>Result</th><th>Recent</th></tr></thead><tbody>{rows or empty or _no_jobs()}</tbody></table>"
    )
    content = _leader_block(status, now) + _search(query) + _pager(status["page"], query) + table
    return _frame("cronframework", content + _pager(status["page"], query), now)


def _no_jobs() -> str:
    return '<tr><td colspan="7">no jobs applied</td></tr>'


def _search(query: JobQuery) -> str:
    def options(values: Sequence[str], chosen: str | None, labels: Mapping[str, str] | None = None) -> str:
        return "".join(
            f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e((labels or {}).get(v, v))}</option>'
            for v in values
        )

    return (
        '<form id="search" method="get" action="/">'
        f'<input type="search" name="q" value="{_e(query.prefix)}" placeholder="job name starts with...">'
        f'<select name="state"><option value="">any state</option>{options(STATES, query.state)}</select>'
        f'<select name="result"><option value="">any result</option>{options(RESULTS, query.result)}</select>'
        f'<select name="sort">{options(tuple(SORTS), query.sort, SORTS)}</select>'
        '<button type="submit">Search</button></form>'
    )


def _pager(page: Mapping[str, Any], query: JobQuery) -> str:
    first, shown = query.offset + 1, min(query.offset + (query.limit or PER_PAGE), page["matched"])
    where = f"{first}&ndash;{shown} of {page['matched']}" if page["matched"] else "0"
    total = f" ({page['total']} jobs in all)" if page["matched"] != page["total"] else ""
    links = []
    if query.offset > 0:
        links.append(f'<a rel="prev" href="{_list_url(query, max(query.offset - PER_PAGE, 0))}">&larr; previous</a>')
    if shown < page["matched"]:
        links.append(f'<a rel="next" href="{_list_url(query, query.offset + PER_PAGE)}">next &rarr;</a>')
    return f'<p class="pager"><span class="count">{where}{total}</span> {" ".join(links)}</p>'


def _list_url(query: JobQuery, offset: int) -> str:
    params = {"q": query.prefix, "state": query.state, "result": query.result, "sort": query.sort, "offset": offset}
    return "/?" + _e(urlencode({k: v for k, v in params.items() if v not in (None, "", "name", 0)}))


def _job_row(job: Mapping[str, Any], zone_name: str | None, recent: Sequence[Mapping[str, Any]], now: datetime) -> str:
    last = job.get("last_launch") or {}
    name = str(job["job"])
    word = result_of(job)
    problem = f'<div class="problem">{_e(job["problem"])}</div>' if job.get("problem") else ""
    spent = humane.duration(humane.duration_of(last)) if last else ""
    launch = (
        f'<a href="{_job_url(name, "launches", str(last["name"]))}" class="launch">{_e(last["name"])}</a><br>'
        f"{_when(last.get('scheduled'), zone_name, now)}"
        if last
        else "-"
    )
    return (
        f'<tr data-job="{_e(name)}"><td><a href="{_job_url(name)}">{_e(name)}</a>'
        f"{_last_success(job, zone_name, now)}</td>"
        f'<td class="state {_e(job["state"])}">{_e(job["state"])}{problem}</td>'
        f"<td>{_when(job.get('next'), zone_name, now)}</td><td>{launch}</td>"
        f"<td>{_badge(word)}{f' <span class=dur>{_e(spent)}</span>' if spent else ''}</td>"
        f"<td>{_strip(recent)}</td></tr>"
    )


def _last_success(job: Mapping[str, Any], zone_name: str | None, now: datetime) -> str:
    """Shown when the status document says when the job last succeeded (an instant, or a launch with one)."""
    value = job.get("last_success")
    if isinstance(value, Mapping):
        value = value.get("finished_at") or value.get("scheduled")
    if not isinstance(value, str):
        return ""
    return f'<div class="success">last success {_when(value, zone_name, now)}</div>'


# -- one job --------------------------------------------------------------------------------------------------------
def job(detail: Mapping[str, Any], records: Sequence[Mapping[str, Any]], now: datetime) -> str:
    zone_name, name = str(detail["timezone"]), str(detail["job"])
    upcoming = "".join(
        f"<tr><td>{_when(n['scheduled'], zone_name, now)}</td><td>{_e(humane.utc(humane.parse(n['utc']) or now))}"
        f"</td><td><code>{_e(n['name'])}</code></td></tr>"
        for n in detail["next_launches"]
    )
    broken = (
        f'<p class="problem">Broken: this job is not scheduled. {_e(detail["problem"])}</p>'
        if detail.get("problem")
        else ""
    )
    content = (
        f'<h2>{_e(name)} <span class="state {_e(detail["state"])}">{_e(detail["state"])}</span></h2>'
        f"<p>schedule <code>{_e(detail['schedule'])}</code> in {_e(zone_name)} on {_e(detail['backend'])}, "
        f"concurrency {_e(detail['concurrency'])} &middot; recent {_strip(records[:20])}</p>{broken}"
        f"{_actions(name)}"
        f'<h3>Next launches</h3><table id="next"><thead><tr><th>In {_e(zone_name)}</th><th>UTC</th><th>Launch</th>'
        f"</tr></thead><tbody>{upcoming or '<tr><td colspan=3>none</td></tr>'}</tbody></table>"
        f"<h3>Recent launches</h3>{_history(records, zone_name, now)}"
    )
    return _frame(f"cronframework: {name}", content, now)


def _actions(name: str) -> str:
    return (
        f'<form id="actions" data-job="{_e(name)}" onsubmit="return false">'
        '<input type="password" id="token" placeholder="API token" autocomplete="off">'
        '<button data-action="trigger">Trigger</button><button data-action="trigger" data-force="1">Trigger (force)'
        '</button><button data-action="pause">Pause</button><button data-action="resume">Resume</button>'
        '<output id="outcome" role="status"></output></form>'
    )


def _history(records: Sequence[Mapping[str, Any]], zone_name: str, now: datetime) -> str:
    rows = "".join(
        f'<tr><td><a href="{_job_url(str(r["job"]), "launches", str(r["name"]))}"><code>{_e(r["name"])}</code></a>'
        f"{' <span class=badge>manual</span>' if r.get('manual') else ''}</td>"
        f"<td>{_when(r['scheduled'], zone_name, now)}</td>"
        f"<td>{_badge(result_of({'last_launch': r}))}</td>"
        f"<td>{_e(humane.duration(humane.duration_of(r)))}</td><td>{_e(r.get('reason') or '')}</td>"
        f'<td><a href="{_job_url(str(r["job"]), "launches", str(r["name"]))}#logs">logs</a></td></tr>'
        for r in records
    )
    return (
        '<table id="history"><thead><tr><th>Launch</th><th>Scheduled</th><th>Result</th><th>Duration</th>'
        f"<th>Reason</th><th></th></tr></thead><tbody>{rows or '<tr><td colspan=6>no launches yet</td></tr>'}"
        "</tbody></table>"
    )


# -- one launch -----------------------------------------------------------------------------------------------------
def launch(item: Mapping[str, Any], zone_name: str, now: datetime) -> str:
    name, job_name = str(item["name"]), str(item["job"])
    lookup = item.get("lookup") or {}
    facts = [
        ("job", f'<a href="{_job_url(job_name)}">{_e(job_name)}</a>'),
        ("scheduled", _when(item.get("scheduled"), zone_name, now)),
        ("result", _badge(result_of({"last_launch": item}))),
        ("outcome", _e(item.get("outcome") or item.get("state"))),
        ("exit code", _e(item.get("exit_code", lookup.get("exit_code")))),
        ("duration", _e(humane.duration(humane.duration_of(item)))),
        ("reason", _e(item.get("result_reason") or lookup.get("reason") or item.get("reason"))),
        ("leader", f"{_e(item.get('leader'))} (epoch {_e(item.get('epoch'))}), attempt {_e(item.get('attempt'))}"),
        (
            "begun / finished",
            f"{_when(item.get('begun_at'), zone_name, now)} / {_when(item.get('finished_at'), zone_name, now)}",
        ),
    ]
    rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in facts if value not in ("", "-"))
    logs_url = "/v1" + _job_url(job_name, "launches", name, "logs")
    content = (
        f"<h2><code>{_e(name)}</code>{' <span class=badge>manual</span>' if item.get('manual') else ''}</h2>"
        f'<table class="facts">{rows}</table>'
        f'<h3 id="logs">Output</h3><form id="logform" onsubmit="return false">'
        '<input type="password" id="token" placeholder="API token (logs always need it)" autocomplete="off">'
        f'<button id="show-logs" data-url="{_e(logs_url)}">Show output</button></form><pre id="output"></pre>'
    )
    return _frame(f"cronframework: {name}", content, now)
