"""Which days a ``daily_batch`` run processes, and when it is late.

A scheduled run (02:00 in ``warehouse.schedule_timezone``) processes the day before its
logical date in that timezone. A triggered run may name a ``start_date`` and ``end_date``
(inclusive; either alone means that one day) to run or re-run any past days: a backfill.
A day that is not over yet (today or later in the schedule's timezone) is refused: its lake
partition is still being written.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from globalmart.settings import WarehouseSettings


def days_to_process(params: dict, logical_date: datetime, timezone: str, now: datetime) -> tuple[date, date]:
    """(first, last) day of the run; ``params`` are the trigger form's ``start_date``/``end_date``."""
    zone = ZoneInfo(timezone)
    start, end = params.get("start_date"), params.get("end_date")
    if not start and not end:
        previous = logical_date.astimezone(zone).date() - timedelta(days=1)
        return previous, previous
    first = date.fromisoformat(start or end)
    last = date.fromisoformat(end or start)
    if last < first:
        raise ValueError(f"end_date {last} is before start_date {first}")
    today = now.astimezone(zone).date()
    if last >= today:
        raise ValueError(f"{last} is not over yet in {timezone} (today is {today}): only past days can be processed")
    return first, last


def deadline_after_start(warehouse: WarehouseSettings) -> timedelta:
    """How long after its scheduled start a run must be done (02:00 → 06:00: 4 hours)."""
    hours = warehouse.deadline_hour - warehouse.schedule_hour
    if hours <= 0:
        raise ValueError(f"warehouse.deadline_hour ({warehouse.deadline_hour}) must come after "
                         f"warehouse.schedule_hour ({warehouse.schedule_hour})")
    return timedelta(hours=hours)
