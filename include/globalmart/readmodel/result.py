"""What every read returns: the rows, where they come from, how fresh the source is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

# what fills each kind of source, for the "no data yet: run X" answer of an empty one
STREAMING_RUN = ("traffic (`globalmart generate`, or the traffic_simulator DAG) through the streaming apps "
                 "(the streaming_pipeline DAG, or `globalmart stream run`)")
SESSIONS_RUN = f"{STREAMING_RUN}; sessions and carts close 15-30 minutes after their last event"
SUPERVISION_RUN = "the streaming_pipeline DAG (its supervisors record incidents)"
WAREHOUSE_RUN = ("the daily_batch DAG (daily at 02:00 for the day before; trigger it with start_date / end_date "
                 "for past days that the lake holds)")


@dataclass(frozen=True)
class Result:
    """Rows of one source. ``as_of`` is the newest data time the source holds (None: it is
    empty, whatever the filters); ``has_more``: a next page exists after ``offset + len(rows)``."""

    source: str
    rows: list[dict]
    as_of: datetime | date | None
    fills_it: str  # what to run when the source is empty
    limit: int | None = None
    offset: int = 0
    has_more: bool = False
    details: dict = field(default_factory=dict)  # e.g. the window a summary covers
    # what no rows mean when that is good news (no incident, no product short of stock)
    empty_note: str | None = None

    @property
    def message(self) -> str | None:
        if self.rows:
            return None
        if self.empty_note:
            return self.empty_note
        if self.as_of is None:
            return f"no data yet: run {self.fills_it}"
        return "no rows match these filters"

    @property
    def next_offset(self) -> int | None:
        return self.offset + len(self.rows) if self.has_more else None


def plain(value):
    """Money comes back from PostgreSQL as Decimal: JSON and charts want numbers."""
    return float(value) if isinstance(value, Decimal) else value


def page(source: str, rows: list[dict], as_of, fills_it: str, limit: int, offset: int, **details) -> Result:
    """A page from ``rows`` fetched with ``LIMIT limit + 1``: the extra row only says more exist."""
    return Result(source, rows[:limit], as_of, fills_it, limit=limit, offset=offset, has_more=len(rows) > limit,
                  details=details)
