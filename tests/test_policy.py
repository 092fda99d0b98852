"""Pure decisions for due instants (policy.decide_instants) and the dispatcher heap, with named instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronframework.engine.dispatcher import Dispatcher, Entry
from cronframework.engine.policy import decide_instants
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.model import JobSpec

NINE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TOLERANCE = timedelta(seconds=30)


def spec(schedule: str = "* * * * *", **fields: object) -> JobSpec:
    return JobSpec.model_validate({"name": "j", "schedule": schedule, "task": {"command": ["/bin/true"]}, **fields})


def plan(s: JobSpec, watermark: datetime, now: datetime, **kw: object):  # type: ignore[no-untyped-def]
    schedule = parse_schedule(s.schedule, job=s.name, timezone=s.timezone, dst=s.dst)
    return decide_instants(s, schedule, watermark, now, tolerance=TOLERANCE, **kw)  # type: ignore[arg-type]


def test_on_time_instant_launches_and_watermark_moves_past_now() -> None:
    result = plan(spec(), NINE, NINE + timedelta(seconds=2))
    assert [i.name for i in result.launches] == ["j-20261125t090000z"]
    assert result.skips == [] and result.watermark == NINE + timedelta(minutes=1)


def test_nothing_due_before_the_watermark() -> None:
    result = plan(spec(), NINE, NINE - timedelta(seconds=1))
    assert result.empty and result.watermark == NINE


def test_a_single_instant_later_than_tolerance_is_missed_under_catchup_none() -> None:
    result = plan(spec(), NINE, NINE + timedelta(seconds=45))
    assert result.launches == []
    assert [s.identity.name for s in result.skips] == ["j-20261125t090000z"]
    assert "catchup: none" in result.skips[0].reason


def test_an_instant_within_tolerance_but_overtaken_by_a_later_one_is_recorded_superseded() -> None:
    """09:00:00 and 09:00:15 are both due when the leader looks at 09:00:27: the first is 27 s late, inside the
    30 s tolerance, and is skipped because the later one runs, not because it was late."""
    result = plan(spec("*/15 * * * * *"), NINE, NINE + timedelta(seconds=27))
    assert [i.name for i in result.launches] == ["j-20261125t090015z"]
    [skip] = result.skips
    assert skip.identity.name == "j-20261125t090000z"
    assert "superseded by j-20261125t090015z" in skip.reason and "tolerance" not in skip.reason
    assert "catchup: none" in skip.reason


def test_instants_past_the_tolerance_say_so_and_name_it() -> None:
    result = plan(spec("*/15 * * * * *"), NINE, NINE + timedelta(seconds=40))
    reasons = {s.identity.name: s.reason for s in result.skips}
    assert "more than the tolerance (30s) late" in reasons["j-20261125t090000z"]  # 40 s late
    assert "superseded by j-20261125t090030z" in reasons["j-20261125t090015z"]  # 25 s late


def test_latest_replays_one_and_names_the_superseded() -> None:
    result = plan(spec(catchup="latest"), NINE, NINE + timedelta(minutes=3, seconds=50))
    assert [i.name for i in result.launches] == ["j-20261125t090300z"]
    assert [s.identity.name for s in result.skips] == ["j-20261125t090000z", "j-20261125t090100z", "j-20261125t090200z"]
    assert all("superseded by j-20261125t090300z" in s.reason for s in result.skips)


def test_all_replays_at_most_max_and_records_the_rest() -> None:
    result = plan(spec(catchup={"policy": "all", "max": 2}), NINE, NINE + timedelta(minutes=4, seconds=5))
    assert [i.name for i in result.launches] == ["j-20261125t090200z", "j-20261125t090300z", "j-20261125t090400z"]
    assert [s.identity.name for s in result.skips] == ["j-20261125t090000z", "j-20261125t090100z"]
    assert all("catch-up bound of 2" in s.reason for s in result.skips)


def test_a_month_away_is_one_stale_record_plus_the_window() -> None:
    now = NINE + timedelta(days=30)
    result = plan(spec(catchup={"policy": "all", "window": "3m", "max": 100}), NINE, now)
    stale = [s for s in result.skips if "older than the catch-up window" in s.reason]
    assert len(stale) == 1 and stale[0].identity.name == "j-20261125t090000z"
    assert len(result.launches) == 3
    assert len(result.skips) == 1


def test_paused_job_records_every_due_instant_as_paused() -> None:
    result = plan(spec(), NINE, NINE + timedelta(minutes=2, seconds=1), paused=True)
    assert result.launches == [] and [s.reason for s in result.skips] == ["paused"] * 3


def test_dispatcher_pops_due_in_order_and_skips_stale_entries() -> None:
    dispatcher = Dispatcher()
    s1, s2 = spec(), JobSpec.model_validate({"name": "k", "schedule": "* * * * *", "task": {"command": ["x"]}})
    schedule = parse_schedule("* * * * *", job="j")
    dispatcher.upsert(Entry(s1, schedule, NINE + timedelta(minutes=2)))
    dispatcher.upsert(Entry(s2, schedule, NINE + timedelta(minutes=1)))
    dispatcher.advance("j", NINE)  # replaces j's entry: the old heap item becomes stale
    assert dispatcher.next_due() == NINE
    assert [e.spec.name for e in dispatcher.pop_due(NINE + timedelta(minutes=1))] == ["j", "k"]
    assert dispatcher.next_due() is None and len(dispatcher) == 2
    dispatcher.remove("k")
    dispatcher.advance("k", NINE)
    assert dispatcher.next_due() is None
