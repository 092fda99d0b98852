"""The read-only status page: server-rendered HTML (works without JS, and under read auth with a bearer header);
a few lines of JS only reload it and show relative times. Every value goes through html.escape."""

from __future__ import annotations

from datetime import datetime
from html import escape
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from starlette.responses import HTMLResponse, Response

STYLE = files("cronframework.api").joinpath("static/page.css").read_text()
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'"
SCRIPT = files("cronframework.api").joinpath("static/page.js").read_text()


def html(body: str) -> Response:
    return HTMLResponse(body, 200, {"Content-Security-Policy": CSP})


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _time(iso: str | None) -> str:
    return f'<time datetime="{_e(iso)}">{_e(iso)}</time>' if iso else "-"


def _outcome(value: str | None) -> str:
    return f'<span class="outcome {_e(value or "none")}">{_e(value or "-")}</span>'


def _frame(title: str, content: str, now: datetime) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
        f'<body><header><h1>{_e(title)}</h1><span class="now">as of {_time(now.isoformat())}</span></header>'
        f"{content}<script>{SCRIPT}</script></body></html>"
    )


def _leader_block(status: dict[str, Any]) -> str:
    leader = status.get("leader")
    who = (
        f'<b id="leader">{_e(leader.get("replica"))}</b> (epoch {_e(leader.get("epoch"))})'
        if leader
        else '<b id="leader">none</b>'
    )
    replicas = ", ".join(_e(r.get("replica")) for r in status.get("replicas") or [])
    takeover = status.get("takeover") or {}
    last = f" &middot; last takeover {_time(takeover.get('at'))} by {_e(takeover.get('replica'))}" if takeover else ""
    return f'<p class="leader">Leader: {who}{last}</p><p class="replicas">Replicas: {replicas or "-"}</p>'


def _state(job: dict[str, Any]) -> str:
    state = job["state"]
    problem = f'<div class="problem">{_e(job["problem"])}</div>' if job.get("problem") else ""
    return f'<td class="state {_e(state)}">{_e(state)}{problem}</td>'


def _job_row(job: dict[str, Any]) -> str:
    last = job.get("last_launch") or {}
    name = quote(job["job"], safe="")
    return (
        f'<tr data-job="{_e(job["job"])}"><td><a href="/jobs/{name}">{_e(job["job"])}</a></td>'
        f"{_state(job)}<td>{_time(job.get('next'))}</td>"
        f'<td class="launch">{_e(last.get("name") or "-")}</td>'
        f"<td>{_outcome(last.get('outcome') or last.get('state'))}</td>"
        f'<td><a href="/v1/jobs/{name}/history">history</a></td></tr>'
    )


def index(status: dict[str, Any], now: datetime) -> str:
    rows = "".join(_job_row(job) for job in status["jobs"]) or '<tr><td colspan="6">no jobs applied</td></tr>'
    table = (
        '<table id="jobs"><thead><tr><th>Job</th><th>State</th><th>Next launch</th><th>Last launch</th>'
        f"<th>Outcome</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _frame("cronframework", _leader_block(status) + table, now)


def job(detail: dict[str, Any], records: list[dict[str, Any]], now: datetime) -> str:
    upcoming = "".join(f"<li>{_time(n['utc'])} <code>{_e(n['name'])}</code></li>" for n in detail["next_launches"])
    rows = (
        "".join(
            f"<tr><td><code>{_e(r['name'])}</code></td><td>{_time(r['scheduled'])}</td>"
            f"<td>{_outcome(r.get('outcome') or r.get('state'))}</td><td>{_e(r.get('reason') or '')}</td></tr>"
            for r in records
        )
        or '<tr><td colspan="4">no launches yet</td></tr>'
    )
    broken = (
        f'<p class="problem">Broken: this job is not scheduled. {_e(detail["problem"])}</p>'
        if detail.get("problem")
        else ""
    )
    content = (
        f'<p><a href="/">&larr; all jobs</a> &middot; schedule <code>{_e(detail["schedule"])}</code> '
        f"({_e(detail['timezone'])}) on {_e(detail['backend'])}</p>{broken}"
        f"<h2>Next launches</h2><ul>{upcoming or '<li>none</li>'}</ul>"
        '<h2>History</h2><table id="history"><thead><tr><th>Launch</th><th>Scheduled</th><th>Outcome</th>'
        f"<th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return _frame(f"cronframework: {detail['job']}", content, now)
