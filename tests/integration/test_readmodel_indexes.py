"""Every SQL statement of the read model is led by an index: each query function runs on seeded
marts while its statements are recorded, then each statement is EXPLAINed with sequential scans
disabled, and no table may still need one (a disabled Seq Scan means no index can serve it).

The seeded tables are a few rows, where the planner would rather join by reading a small table
whole: joins are held to nested loops, as a page of a real mart is joined, so that each lookup
must find an index too."""

from __future__ import annotations

import json
from datetime import timedelta

from globalmart import db
from globalmart.readmodel import marts
from tests.readmodel_fixtures import CRITICAL_PRODUCT, MINUTES, NEWEST_WINDOW_END, seed_marts

# one row per streaming query (a handful): a sequential scan is its cheapest read at any size
TINY_TABLES = {"stream_status"}
# plan nodes that read all their input before giving a row: an index scan below one of them is
# not stopped early by a LIMIT above it
BLOCKING_NODES = {"Sort", "Aggregate", "Hash", "Materialize", "SetOp", "WindowAgg"}


class RecordingCursor:
    def __init__(self, cursor, statements: list[str]):
        self._cursor = cursor
        self._statements = statements

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._cursor.close()

    def execute(self, query, params=()):
        self._statements.append(self._cursor.mogrify(query, params).decode())
        self._cursor.execute(query, params)

    def fetchall(self):
        return self._cursor.fetchall()

    def fetchone(self):
        return self._cursor.fetchone()


class RecordingConnection:
    """A connection that notes every statement its cursors run, parameters bound."""

    def __init__(self, connection):
        self._connection = connection
        self.statements: list[str] = []

    def cursor(self, **kwargs):
        return RecordingCursor(self._connection.cursor(**kwargs), self.statements)


# every query function of the marts, with each of its filters used at least once
SINCE, UNTIL = MINUTES[0], NEWEST_WINDOW_END
READS = {
    "sales_summary": lambda conn: marts.sales_summary(conn, minutes=15),
    "sales_summary_hourly": lambda conn: marts.sales_summary(conn, minutes=180, granularity="1h"),
    "sales_breakdown_country": lambda conn: marts.sales_breakdown(conn, "country", minutes=15),
    "sales_breakdown_category": lambda conn: marts.sales_breakdown(conn, "category", minutes=15),
    "sales_series": lambda conn: marts.sales_series(conn, "1m", periods=60),
    "sales_series_country": lambda conn: marts.sales_series(conn, "1h", periods=24, country="USA"),
    "sales_metrics": lambda conn: marts.sales_metrics(conn),
    "sales_metrics_filtered": lambda conn: marts.sales_metrics(conn, since=SINCE, until=UNTIL, category="ALL",
                                                               country="UK", limit=10, offset=5),
    "top_products": lambda conn: marts.top_products(conn),
    "anomalies": lambda conn: marts.anomalies(conn),
    "anomalies_filtered": lambda conn: marts.anomalies(conn, kinds=["high_value"], since=SINCE, until=UNTIL,
                                                       min_score=0.5),
    "anomalies_since": lambda conn: marts.anomalies(conn, since=SINCE),
    "anomaly_counts": lambda conn: marts.anomaly_counts(conn, since=SINCE, until=UNTIL),
    "low_stock": lambda conn: marts.low_stock(conn),
    "low_stock_filtered": lambda conn: marts.low_stock(conn, states=["critical"], category="Home > Kitchen"),
    "stock_state_counts": marts.stock_state_counts,
    "stock_history": lambda conn: marts.stock_history(conn, CRITICAL_PRODUCT),
    "funnel": lambda conn: marts.funnel(conn, hours=24),
    "funnel_country": lambda conn: marts.funnel(conn, hours=6, country="USA"),
    "abandonment_hourly": lambda conn: marts.abandonment_hourly(conn),
    "abandoned_carts": lambda conn: marts.abandoned_carts(conn),
    "stream_queries": marts.stream_queries,
    "incidents": lambda conn: marts.incidents(conn),
    "incidents_since": lambda conn: marts.incidents(conn, since=UNTIL - timedelta(hours=1)),
    "dead_letters_hourly": lambda conn: marts.dead_letters_hourly(conn),
    "dashboard_summary": marts.dashboard_summary,
}


def _scans_without_index(plan: dict, partial_indexes: set[str], stoppable: bool = False) -> list[str]:
    """The table reads that no index leads: a Seq Scan, or an index read from end to end (no
    Index Cond) that is neither partial (its predicate is the filter) nor stopped early by a
    LIMIT. ``stoppable``: a LIMIT above reaches this node without a blocking node in between."""
    node = plan["Node Type"]
    stoppable = node == "Limit" or (stoppable and node not in BLOCKING_NODES)
    found = []
    table = plan.get("Relation Name")
    if table and table not in TINY_TABLES:
        if node == "Seq Scan":
            found.append(f"Seq Scan on {table}")
        elif (node in ("Index Scan", "Index Only Scan") and "Index Cond" not in plan and not stoppable
              and plan["Index Name"] not in partial_indexes):
            found.append(f"whole index {plan['Index Name']} of {table}")
    for child in plan.get("Plans", []):
        found += _scans_without_index(child, partial_indexes, stoppable)
    return found


def test_each_read_model_query_is_led_by_an_index(stream_env):
    seed_marts(stream_env)
    unindexed = {}
    with db.connect(stream_env) as conn:
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
            cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexdef LIKE '%% WHERE %%'")
            partial_indexes = {name for (name,) in cur.fetchall()}
        for name, read in READS.items():
            recording = RecordingConnection(conn)
            read(recording)
            assert recording.statements, name
            with conn.cursor() as cur:
                cur.execute("SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off")
                for statement in recording.statements:
                    cur.execute(f"EXPLAIN (FORMAT JSON) {statement}")
                    plan = cur.fetchone()[0][0]["Plan"]
                    if missing := _scans_without_index(plan, partial_indexes):
                        unindexed[f"{name}: {' '.join(statement.split())}"] = missing
    assert not unindexed, json.dumps(unindexed, indent=1)
