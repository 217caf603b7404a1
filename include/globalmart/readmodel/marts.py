"""Reads of the real-time marts in PostgreSQL (written by the streaming apps).

Every function takes an open psycopg2 connection and returns a :class:`Result`. The SQL is
here and nowhere else, parameterised; each query is led by an index of its table (the
migrations in ``globalmart/migrations/versions``), checked with EXPLAIN by the tests.

"The last N minutes / hours" count back from the newest data in the mart, not from the wall
clock: a mart whose writer stopped still shows its last figures, and ``as_of`` tells how old.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg2 import sql
from psycopg2.extras import RealDictCursor

from globalmart.readmodel.result import (
    SESSIONS_RUN, STREAMING_RUN, SUPERVISION_RUN, Result, page, plain,
)

ALL = "ALL"  # the category of a country's totals in sales_window_metrics
GRANULARITIES = ("1m", "1h")
STOCK_STATES = ("critical", "low")
ANOMALY_KINDS = ("high_value", "unusual_quantity", "rapid_fire_count", "rapid_fire_amount")

# the newest data time of each source: cheap (an index's first entry, or a small table)
NEWEST = {
    "sales_window_metrics": "SELECT window_end FROM sales_window_metrics WHERE granularity = %s "
                            "ORDER BY window_start DESC LIMIT 1",
    "product_window_sales": "SELECT window_start, window_end FROM product_window_sales WHERE granularity = %s "
                            "ORDER BY window_start DESC LIMIT 1",
    "anomalies": "SELECT max(detected_at) FROM anomalies",
    "inventory_stock": "SELECT max(updated_at) FROM inventory_stock",
    "inventory_history": "SELECT max(recorded_at) FROM inventory_history WHERE product_id = %s",
    "sessions": "SELECT session_start FROM sessions ORDER BY session_start DESC LIMIT 1",
    "cart_abandonments": "SELECT abandoned_at FROM cart_abandonments ORDER BY abandoned_at DESC LIMIT 1",
    "stream_status": "SELECT max(last_seen_at) FROM stream_status",
    "stream_incidents": "SELECT opened_at FROM stream_incidents ORDER BY opened_at DESC LIMIT 1",
    "dead_letters": "SELECT detected_at FROM dead_letters ORDER BY detected_at DESC LIMIT 1",
}


def _rows(conn, query, params=()) -> list[dict]:
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute(query, params)
        return [{key: plain(value) for key, value in row.items()} for row in cur.fetchall()]


def _scalar(conn, query, params=()):
    with conn.cursor() as cur:
        cur.execute(query, params)
        row = cur.fetchone()
        return row[0] if row else None


def newest(conn, source: str, *params):
    return _scalar(conn, NEWEST[source], params)


def _where(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")


# --- sales --------------------------------------------------------------------------------

SALES_SOURCE = "PostgreSQL mart sales_window_metrics (streaming app sales_metrics)"


def sales_summary(conn, minutes: int, granularity: str = "1m") -> Result:
    """Revenue, transactions, units and average order value of the ``minutes`` ending with the
    newest window of ``granularity`` (country totals, summed over the countries)."""
    end = newest(conn, "sales_window_metrics", granularity)
    if end is None:
        return Result(SALES_SOURCE, [], None, STREAMING_RUN)
    start = end - timedelta(minutes=minutes)
    rows = _rows(conn, """
        SELECT coalesce(sum(revenue), 0) AS revenue, coalesce(sum(transactions), 0)::bigint AS transactions,
               coalesce(sum(units), 0)::bigint AS units
        FROM sales_window_metrics
        WHERE granularity = %s AND window_start >= %s AND window_start < %s AND category = %s
    """, (granularity, start, end, ALL))
    for row in rows:
        row.update(window_from=start, window_to=end,
                   avg_order_value=round(row["revenue"] / row["transactions"], 2) if row["transactions"] else None)
    return Result(SALES_SOURCE, rows, end, STREAMING_RUN, details={"from": start, "to": end})


def sales_breakdown(conn, by: str, minutes: int, limit: int = 20, granularity: str = "1m") -> Result:
    """Sales of the last ``minutes`` per ``by`` ("country" or "category"), best revenue first."""
    if by not in ("country", "category"):
        raise ValueError(f"by must be country or category, not {by!r}")
    end = newest(conn, "sales_window_metrics", granularity)
    if end is None:
        return Result(SALES_SOURCE, [], None, STREAMING_RUN)
    start = end - timedelta(minutes=minutes)
    # a country's totals are its ALL rows; a category's are its rows summed over the countries
    scope = sql.SQL("category = %s") if by == "country" else sql.SQL("category <> %s")
    query = sql.SQL("""
        SELECT {by} AS {by}, sum(revenue) AS revenue, sum(transactions)::bigint AS transactions, sum(units)::bigint AS units,
               round(sum(revenue) / nullif(sum(transactions), 0), 2) AS avg_order_value
        FROM sales_window_metrics
        WHERE granularity = %s AND window_start >= %s AND window_start < %s AND {scope}
        GROUP BY {by} ORDER BY revenue DESC, {by} LIMIT %s
    """).format(by=sql.Identifier(by), scope=scope)
    rows = _rows(conn, query, (granularity, start, end, ALL, limit))
    return Result(SALES_SOURCE, rows, end, STREAMING_RUN, limit=limit, details={"from": start, "to": end})


def sales_series(conn, granularity: str, periods: int, country: str | None = None) -> Result:
    """One row per window of the newest ``periods`` windows: revenue, transactions, units and
    average order value of the whole shop (or of ``country``), oldest first."""
    end = newest(conn, "sales_window_metrics", granularity)
    if end is None:
        return Result(SALES_SOURCE, [], None, STREAMING_RUN)
    step = timedelta(minutes=1) if granularity == "1m" else timedelta(hours=1)
    start = end - step * periods
    conditions = [sql.SQL("granularity = %s"), sql.SQL("window_start >= %s"), sql.SQL("category = %s")]
    params: list = [granularity, start, ALL]
    if country:
        conditions.append(sql.SQL("country = %s"))
        params.append(country)
    rows = _rows(conn, sql.SQL("""
        SELECT window_start, sum(revenue) AS revenue, sum(transactions)::bigint AS transactions, sum(units)::bigint AS units,
               round(sum(revenue) / nullif(sum(transactions), 0), 2) AS avg_order_value
        FROM sales_window_metrics {where} GROUP BY window_start ORDER BY window_start
    """).format(where=_where(conditions)), params)
    return Result(SALES_SOURCE, rows, end, STREAMING_RUN, details={"from": start, "to": end})


def sales_metrics(conn, granularity: str = "1m", since: datetime | None = None, until: datetime | None = None,
                  category: str | None = None, country: str | None = None, limit: int = 100,
                  offset: int = 0) -> Result:
    """The windows themselves, newest first: one row per window × category × country."""
    end = newest(conn, "sales_window_metrics", granularity)
    conditions = [sql.SQL("granularity = %s")]
    params: list = [granularity]
    for column, operator, value in (("window_start", ">=", since), ("window_start", "<", until),
                                    ("category", "=", category), ("country", "=", country)):
        if value is not None:
            conditions.append(sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(operator)))
            params.append(value)
    rows = _rows(conn, sql.SQL("""
        SELECT granularity, window_start, window_end, category, country, revenue, transactions, units,
               avg_order_value, updated_at
        FROM sales_window_metrics {where}
        ORDER BY window_start DESC, category, country LIMIT %s OFFSET %s
    """).format(where=_where(conditions)), [*params, limit + 1, offset])
    return page(SALES_SOURCE, rows, end, STREAMING_RUN, limit, offset)


PRODUCTS_SOURCE = "PostgreSQL mart product_window_sales (streaming app sales_metrics), names from product_catalog"


def top_products(conn, granularity: str = "1m", limit: int = 10) -> Result:
    """The best-selling products (by revenue) of the newest window of ``granularity``."""
    window = _rows(conn, NEWEST["product_window_sales"], (granularity,))
    if not window:
        return Result(PRODUCTS_SOURCE, [], None, STREAMING_RUN)
    start, end = window[0]["window_start"], window[0]["window_end"]
    rows = _rows(conn, """
        SELECT s.product_id, c.name, s.category, s.revenue, s.units, s.transactions
        FROM product_window_sales s LEFT JOIN product_catalog c USING (product_id)
        WHERE s.granularity = %s AND s.window_start = %s
        ORDER BY s.revenue DESC, s.product_id LIMIT %s
    """, (granularity, start, limit))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return Result(PRODUCTS_SOURCE, rows, end, STREAMING_RUN, limit=limit, details={"from": start, "to": end})


# --- anomalies ----------------------------------------------------------------------------

ANOMALIES_SOURCE = "PostgreSQL mart anomalies (streaming app anomaly_detector)"


def _anomaly_filters(kinds, since, until, min_score) -> tuple[list[sql.Composable], list]:
    conditions, params = [], []
    if kinds:
        conditions.append(sql.SQL("kind = ANY(%s)"))
        params.append(list(kinds))
    for operator, value in ((">=", since), ("<", until)):
        if value is not None:
            conditions.append(sql.SQL("last_event_time {} %s").format(sql.SQL(operator)))
            params.append(value)
    if min_score:
        conditions.append(sql.SQL("score >= %s"))
        params.append(min_score)
    return conditions, params


def anomalies(conn, kinds: list[str] | None = None, since: datetime | None = None, until: datetime | None = None,
              min_score: float = 0.0, limit: int = 100, offset: int = 0) -> Result:
    """Detected anomalies, latest first (by the time of their last transaction), each with its
    latest fraud review (``globalmart.decisions``): open, or closed with the outcome, who and when."""
    conditions, params = _anomaly_filters(kinds, since, until, min_score)
    rows = _rows(conn, sql.SQL("""
        SELECT a.anomaly_id, a.kind, a.score, a.user_id, a.country, a.amount, a.observed, a.threshold,
               a.description, a.transaction_ids, a.first_event_time, a.last_event_time, a.detected_at,
               r.status AS review_status, r.outcome AS review_outcome, r.decided_by AS reviewed_by,
               r.decided_at AS reviewed_at
        FROM (SELECT * FROM anomalies {where} ORDER BY last_event_time DESC, anomaly_id LIMIT %s OFFSET %s) a
        LEFT JOIN LATERAL (
            SELECT status, outcome, decided_by, decided_at FROM decisions
            WHERE kind = 'fraud' AND subject_key = a.anomaly_id
            ORDER BY closed_at DESC NULLS FIRST LIMIT 1
        ) r ON true
        ORDER BY a.last_event_time DESC, a.anomaly_id
    """).format(where=_where(conditions)), [*params, limit + 1, offset])
    return page(ANOMALIES_SOURCE, rows, newest(conn, "anomalies"), STREAMING_RUN, limit, offset)


def anomaly_counts(conn, since: datetime | None = None, until: datetime | None = None) -> Result:
    """Anomalies per kind: how many, their total amount, the highest score."""
    conditions, params = _anomaly_filters(None, since, until, 0.0)
    rows = _rows(conn, sql.SQL("""
        SELECT kind, count(*) AS anomalies, sum(amount) AS amount, max(score) AS max_score
        FROM anomalies {where} GROUP BY kind ORDER BY anomalies DESC, kind
    """).format(where=_where(conditions)), params)
    return Result(ANOMALIES_SOURCE, rows, newest(conn, "anomalies"), STREAMING_RUN)


# --- inventory ----------------------------------------------------------------------------

STOCK_SOURCE = "PostgreSQL mart inventory_stock (streaming app inventory_tracker), names from product_catalog"


def low_stock(conn, states: list[str] | None = None, category: str | None = None, limit: int = 100,
              offset: int = 0) -> Result:
    """Products in low or critical state, critical first, least stock first."""
    conditions = [sql.SQL("s.state <> 'ok'")]
    params: list = []
    if states:
        conditions.append(sql.SQL("s.state = ANY(%s)"))
        params.append(list(states))
    if category:
        conditions.append(sql.SQL("s.category = %s"))
        params.append(category)
    rows = _rows(conn, sql.SQL("""
        SELECT s.product_id, c.name, s.category, s.state, s.stock, s.initial_stock, s.units_sold,
               s.units_restocked, s.oversold_units, s.last_event_time, s.updated_at
        FROM inventory_stock s LEFT JOIN product_catalog c USING (product_id)
        {where} ORDER BY s.state, s.stock, s.product_id LIMIT %s OFFSET %s
    """).format(where=_where(conditions)), [*params, limit + 1, offset])
    result = page(STOCK_SOURCE, rows, newest(conn, "inventory_stock"), STREAMING_RUN, limit, offset)
    if result.as_of is not None and not result.rows and not (states or category or offset):
        return Result(STOCK_SOURCE, [], result.as_of, STREAMING_RUN, limit=limit,
                      empty_note="every tracked product is above the low-stock threshold")
    return result


def stock_state_counts(conn) -> Result:
    """How many products are low and critical."""
    rows = _rows(conn, "SELECT state, count(*) AS products FROM inventory_stock WHERE state <> 'ok' "
                       "GROUP BY state ORDER BY state")
    return Result(STOCK_SOURCE, rows, newest(conn, "inventory_stock"), STREAMING_RUN)


HISTORY_SOURCE = "PostgreSQL mart inventory_history (streaming app inventory_tracker)"


def stock_history(conn, product_id: str, limit: int = 100, offset: int = 0) -> Result:
    """One product's stock movements, one row per micro-batch that moved it, latest first."""
    rows = _rows(conn, """
        SELECT product_id, first_event_time, last_event_time, stock_before, units_sold, units_restocked,
               stock_after, state_before, state_after, recorded_at
        FROM inventory_history WHERE product_id = %s
        ORDER BY last_event_time DESC, recorded_at DESC LIMIT %s OFFSET %s
    """, (product_id, limit + 1, offset))
    return page(HISTORY_SOURCE, rows, newest(conn, "inventory_history", product_id), STREAMING_RUN, limit, offset)


# --- funnel and abandonment ---------------------------------------------------------------

FUNNEL_SOURCE = "PostgreSQL mart sessions (streaming app sessions)"
ABANDONMENT_SOURCE = "PostgreSQL mart cart_abandonments (streaming app sessions)"


def funnel(conn, hours: int = 24, country: str | None = None) -> Result:
    """Per hour of session start (the newest ``hours`` hours): sessions, and how many viewed,
    carted, checked out and purchased, with the purchases' value; newest hour first."""
    start_of_newest = newest(conn, "sessions")
    if start_of_newest is None:
        return Result(FUNNEL_SOURCE, [], None, SESSIONS_RUN)
    since = start_of_newest.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    conditions = [sql.SQL("session_start >= %s")]
    params: list = [since]
    if country:
        conditions.append(sql.SQL("country = %s"))
        params.append(country)
    rows = _rows(conn, sql.SQL("""
        SELECT date_trunc('hour', session_start) AS hour, count(*) AS sessions,
               count(*) FILTER (WHERE views > 0) AS viewed, count(*) FILTER (WHERE cart_adds > 0) AS carted,
               count(*) FILTER (WHERE checkouts > 0) AS checked_out,
               count(*) FILTER (WHERE purchases > 0) AS purchased, sum(purchase_value) AS purchase_value
        FROM sessions {where} GROUP BY 1 ORDER BY 1 DESC
    """).format(where=_where(conditions)), params)
    return Result(FUNNEL_SOURCE, rows, start_of_newest, SESSIONS_RUN, details={"from": since})


def abandonment_hourly(conn, hours: int = 24) -> Result:
    """Abandoned carts per hour of abandonment (the newest ``hours`` hours): count, items, value."""
    latest = newest(conn, "cart_abandonments")
    if latest is None:
        return Result(ABANDONMENT_SOURCE, [], None, SESSIONS_RUN)
    since = latest.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    rows = _rows(conn, """
        SELECT date_trunc('hour', abandoned_at) AS hour, count(*) AS abandoned_carts, sum(items)::bigint AS items,
               sum(cart_value) AS abandoned_value
        FROM cart_abandonments WHERE abandoned_at >= %s GROUP BY 1 ORDER BY 1 DESC
    """, (since,))
    return Result(ABANDONMENT_SOURCE, rows, latest, SESSIONS_RUN, details={"from": since})


def abandoned_carts(conn, limit: int = 100, offset: int = 0) -> Result:
    """The latest abandoned carts."""
    rows = _rows(conn, """
        SELECT user_id, country, items, cart_value, categories, cart_started_at, last_activity_at, abandoned_at
        FROM cart_abandonments ORDER BY abandoned_at DESC, user_id LIMIT %s OFFSET %s
    """, (limit + 1, offset))
    return page(ABANDONMENT_SOURCE, rows, newest(conn, "cart_abandonments"), SESSIONS_RUN, limit, offset)


# --- platform health ----------------------------------------------------------------------

QUERIES_SOURCE = "PostgreSQL stream_status and stream_progress (each streaming query's heartbeat and last batch)"


def _lag(end_offsets, latest_offsets) -> int | None:
    """Records the query has not read yet: Spark's latest offsets minus the batch's end offsets,
    summed over its sources' partitions (Spark reports one offsets object per source)."""
    if not end_offsets or not latest_offsets:
        return None
    lag = 0
    for ends, latests in zip(end_offsets, latest_offsets, strict=False):
        for topic, partitions in (latests or {}).items():
            done = (ends or {}).get(topic, {})
            lag += sum(max(offset - done.get(partition, 0), 0) for partition, offset in partitions.items())
    return lag


def stream_queries(conn) -> Result:
    """Each streaming query: state, heartbeat, its last batch (time, rows, rates) and lag."""
    rows = _rows(conn, """
        SELECT s.app, s.query_name, s.status, s.last_seen_at, s.last_batch_id, s.error,
               p.trigger_at AS last_batch_at, p.input_rows AS last_batch_rows, p.duration_ms AS last_batch_ms,
               p.input_rows_per_second, p.processed_rows_per_second, p.watermark, p.end_offsets, p.latest_offsets
        FROM stream_status s
        LEFT JOIN LATERAL (
            SELECT * FROM stream_progress p WHERE p.app = s.app AND p.query_name = s.query_name
            ORDER BY p.trigger_at DESC LIMIT 1
        ) p ON true
        ORDER BY s.app, s.query_name
    """)
    for row in rows:
        row["lag_records"] = _lag(row.pop("end_offsets"), row.pop("latest_offsets"))
    return Result(QUERIES_SOURCE, rows, newest(conn, "stream_status"), STREAMING_RUN)


INCIDENTS_SOURCE = "PostgreSQL stream_incidents (the streaming_pipeline DAG's supervisors)"


def incidents(conn, since: datetime | None = None, limit: int = 50) -> Result:
    """Open incidents, then the ones opened since ``since`` (default: the last day), latest first."""
    latest = newest(conn, "stream_incidents")
    if latest is None:
        return Result(INCIDENTS_SOURCE, [], None, SUPERVISION_RUN, empty_note="no incident has been recorded")
    since = since or latest - timedelta(days=1)
    rows = _rows(conn, """
        SELECT incident_id, subject, problem, reason, opened_at, opened_by, closed_at, closed_by,
               closed_at IS NULL AS open
        FROM stream_incidents WHERE closed_at IS NULL OR opened_at >= %s
        ORDER BY closed_at IS NULL DESC, opened_at DESC LIMIT %s
    """, (since, limit))
    return Result(INCIDENTS_SOURCE, rows, latest, SUPERVISION_RUN, limit=limit)


DEAD_LETTERS_SOURCE = "PostgreSQL dead_letters (records that broke their contract, with the reason)"
REASON_CHARS = 120  # reasons quote the offending value: grouped by their start


def dead_letters_hourly(conn, hours: int = 24, limit: int = 200) -> Result:
    """Dead letters per hour of detection, source topic, stage and reason (the newest ``hours``)."""
    latest = newest(conn, "dead_letters")
    if latest is None:
        return Result(DEAD_LETTERS_SOURCE, [], None, STREAMING_RUN, empty_note="no record has broken its contract")
    since = latest.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    rows = _rows(conn, """
        SELECT date_trunc('hour', detected_at) AS hour, source_topic, stage,
               left(split_part(reason, E'\\n', 1), %s) AS reason, count(*) AS records
        FROM dead_letters WHERE detected_at >= %s
        GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC, records DESC LIMIT %s
    """, (REASON_CHARS, since, limit))
    return Result(DEAD_LETTERS_SOURCE, rows, latest, STREAMING_RUN, limit=limit, details={"from": since})


# --- the executive summary ----------------------------------------------------------------

SUMMARY_SOURCE = ("PostgreSQL marts sales_window_metrics (1-hour windows), anomalies, inventory_stock "
                  "(streaming apps sales_metrics, anomaly_detector, inventory_tracker)")


def dashboard_summary(conn) -> Result:
    """The day so far (the UTC day of the newest sales window): revenue, transactions, average
    order value, the best category and country, anomalies detected, products short of stock."""
    end = newest(conn, "sales_window_metrics", "1h")
    if end is None:
        return Result(SUMMARY_SOURCE, [], None, STREAMING_RUN)
    day_start = (end - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    totals = _rows(conn, """
        SELECT coalesce(sum(revenue), 0) AS revenue, coalesce(sum(transactions), 0)::bigint AS transactions,
               coalesce(sum(units), 0)::bigint AS units
        FROM sales_window_metrics WHERE granularity = '1h' AND window_start >= %s AND category = %s
    """, (day_start, ALL))[0]
    best = {}
    for by, scope in (("category", "category <> %s"), ("country", "category = %s")):
        best[by] = _scalar(conn, sql.SQL("""
            SELECT {by} FROM sales_window_metrics WHERE granularity = '1h' AND window_start >= %s AND {scope}
            GROUP BY {by} ORDER BY sum(revenue) DESC, {by} LIMIT 1
        """).format(by=sql.Identifier(by), scope=sql.SQL(scope)), (day_start, ALL))
    row = {
        "day": day_start.date(), "revenue": totals["revenue"], "transactions": totals["transactions"],
        "units": totals["units"],
        "avg_order_value": round(totals["revenue"] / totals["transactions"], 2) if totals["transactions"] else None,
        "top_category": best["category"], "top_country": best["country"],
        "anomalies": _scalar(conn, "SELECT count(*) FROM anomalies WHERE last_event_time >= %s", (day_start,)),
        "products_low": 0, "products_critical": 0,
    }
    for state_count in stock_state_counts(conn).rows:
        row[f"products_{state_count['state']}"] = state_count["products"]
    return Result(SUMMARY_SOURCE, [row], end, STREAMING_RUN, details={"from": day_start, "to": end})
