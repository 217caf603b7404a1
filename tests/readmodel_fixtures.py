"""Known rows for the read side: marts written with SQL into a sandbox database, warehouse
documents into a private MongoDB database; the figures the API and the dashboards must show."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from pymongo import MongoClient

from globalmart import db
from globalmart.settings import Settings

# the newest 1-minute window ends here; the three windows before it hold the sales below
NEWEST_WINDOW_END = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=2)
MINUTES = [NEWEST_WINDOW_END - timedelta(minutes=offset) for offset in (3, 2, 1)]  # window starts
# per minute: (country, category) → (revenue, transactions, units); ALL rows are the country totals
MINUTE_SALES = {
    ("USA", "Electronics > Phones"): (1000.00, 4, 5),
    ("USA", "Home > Kitchen"): (200.50, 2, 3),
    ("UK", "Electronics > Phones"): (300.25, 1, 1),
}
REVENUE_PER_MINUTE = sum(revenue for revenue, _, _ in MINUTE_SALES.values())  # 1500.75
TRANSACTIONS_PER_MINUTE = sum(count for _, count, _ in MINUTE_SALES.values())  # 7
TOP_PRODUCT = ("P000001", "Pocket Phone X", "Electronics > Phones", 900.00, 3, 3)
SECOND_PRODUCT = ("P000002", "Chef Knife", "Home > Kitchen", 120.00, 2, 2)
ANOMALY_ID = "high_value:T-seeded-1"
LOW_PRODUCT, CRITICAL_PRODUCT = "P000002", "P000003"
ANALYSIS_DATE = datetime(2026, 11, 30)
SEGMENT_SIZES = {"Champions": 2, "At Risk": 1}


def _minute_rows() -> list[tuple]:
    rows = []
    for start in MINUTES:
        totals: dict[str, list] = {}
        for (country, category), (revenue, transactions, units) in MINUTE_SALES.items():
            rows.append(("1m", start, start + timedelta(minutes=1), category, country, revenue, transactions, units))
            total = totals.setdefault(country, [0.0, 0, 0])
            total[0] += revenue
            total[1] += transactions
            total[2] += units
        rows += [("1m", start, start + timedelta(minutes=1), "ALL", country, round(revenue, 2), transactions, units)
                 for country, (revenue, transactions, units) in totals.items()]
    return rows


def seed_marts(settings: Settings) -> None:
    minute_rows = _minute_rows()
    hour_start = NEWEST_WINDOW_END.replace(minute=0) - timedelta(hours=1)
    # one hourly rollup per (category, country): the three minutes' sums
    hour_rows = {}
    for _, _, _, category, country, revenue, transactions, units in minute_rows:
        total = hour_rows.setdefault((category, country), [0.0, 0, 0])
        total[0] += revenue
        total[1] += transactions
        total[2] += units
    now = datetime.now(timezone.utc)
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.executemany("""
            INSERT INTO sales_window_metrics (granularity, window_start, window_end, category, country, revenue,
                                              transactions, units, avg_order_value, last_received_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, round(%s::numeric / %s, 2), now())
        """, [(*row, row[5], row[6]) for row in minute_rows])
        cur.executemany("""
            INSERT INTO sales_window_metrics (granularity, window_start, window_end, category, country, revenue,
                                              transactions, units, avg_order_value, last_received_at)
            VALUES ('1h', %s, %s, %s, %s, %s, %s, %s, round(%s::numeric / %s, 2), now())
        """, [(hour_start, hour_start + timedelta(hours=1), category, country, round(revenue, 2), transactions,
               units, revenue, transactions) for (category, country), (revenue, transactions, units) in hour_rows.items()])
        cur.executemany("""
            INSERT INTO product_catalog (product_id, name, category, department, price, initial_stock, catalog_fingerprint)
            VALUES (%s, %s, %s, split_part(%s, ' > ', 1), 100, 50, 'seeded')
        """, [(TOP_PRODUCT[0], TOP_PRODUCT[1], TOP_PRODUCT[2], TOP_PRODUCT[2]),
              (SECOND_PRODUCT[0], SECOND_PRODUCT[1], SECOND_PRODUCT[2], SECOND_PRODUCT[2]),
              (CRITICAL_PRODUCT, "Desk Lamp", "Home > Lighting", "Home > Lighting")])
        newest_minute = MINUTES[-1]
        cur.executemany("""
            INSERT INTO product_window_sales (granularity, window_start, window_end, product_id, category, revenue,
                                              units, transactions)
            VALUES ('1m', %s, %s, %s, %s, %s, %s, %s)
        """, [(newest_minute, NEWEST_WINDOW_END, pid, category, revenue, units, transactions)
              for pid, _, category, revenue, units, transactions in (SECOND_PRODUCT, TOP_PRODUCT)])
        cur.executemany("""
            INSERT INTO anomalies (anomaly_id, kind, user_id, country, transaction_ids, first_event_time,
                                   last_event_time, amount, observed, threshold, score, description, last_received_at,
                                   purchase_amounts, purchase_times)
            VALUES (%s, %s, %s, 'USA', %s, %s, %s, %s, %s, %s, %s, %s, now(), %s, %s)
        """, [
            (ANOMALY_ID, "high_value", "U00000001", ["T-seeded-1"], newest_minute, newest_minute, 7500.00, 7500,
             5000, 0.9, "a $7,500.00 purchase", [7500.0], [newest_minute]),
            ("unusual_quantity:T-seeded-2", "unusual_quantity", "U00000002", ["T-seeded-2"], MINUTES[0], MINUTES[0],
             120.00, 40, 10, 0.6, "40 units of one product", [120.0], [MINUTES[0]]),
        ])
        cur.executemany("""
            INSERT INTO inventory_stock (product_id, category, initial_stock, units_sold, stock, state, in_catalog,
                                         last_event_time)
            VALUES (%s, 'Home > Kitchen', 50, %s, %s, %s, true, %s)
        """, [(TOP_PRODUCT[0], 10, 40, "ok", newest_minute), (LOW_PRODUCT, 42, 8, "low", newest_minute),
              (CRITICAL_PRODUCT, 47, 3, "critical", newest_minute)])
        cur.executemany("""
            INSERT INTO inventory_history (product_id, checkpoint_id, batch_id, stock_before, units_sold,
                                           units_restocked, stock_after, state_before, state_after,
                                           first_event_time, last_event_time)
            VALUES (%s, %s, %s, %s, %s, 0, %s, %s, %s, %s, %s)
        """, [(CRITICAL_PRODUCT, str(uuid.uuid4()), 1, 10, 4, 6, "low", "low", MINUTES[0], MINUTES[0]),
              (CRITICAL_PRODUCT, str(uuid.uuid4()), 2, 6, 3, 3, "low", "critical", MINUTES[1], MINUTES[1])])
        session_start = NEWEST_WINDOW_END - timedelta(minutes=50)
        cur.executemany("""
            INSERT INTO sessions (user_id, session_start, session_end, duration_seconds, country, events, views,
                                  cart_adds, cart_removes, cart_updates, checkouts, purchases, purchase_value,
                                  categories_viewed, categories_carted, categories_purchased, session_ids)
            VALUES (%s, %s, %s, 600, 'USA', 5, %s, %s, 0, 0, %s, %s, %s, '{}', '{}', '{}', '{}')
        """, [("U1", session_start, session_start + timedelta(minutes=10), 3, 1, 1, 1, 99.5),
              ("U2", session_start, session_start + timedelta(minutes=10), 2, 1, 0, 0, 0),
              ("U3", session_start, session_start + timedelta(minutes=10), 4, 0, 0, 0, 0)])
        cur.execute("""
            INSERT INTO cart_abandonments (user_id, cart_started_at, last_activity_at, abandoned_at, country, items,
                                           cart_value, categories, session_ids)
            VALUES ('U2', %s, %s, %s, 'USA', 2, 45.10, '{Home > Kitchen}', '{S2}')
        """, (session_start, session_start + timedelta(minutes=5), session_start + timedelta(minutes=20)))
        cur.execute("""
            INSERT INTO stream_status (query_name, app, run_id, checkpoint_id, status, last_batch_id, last_seen_at)
            VALUES ('sales_metrics.windows', 'sales_metrics', %s, %s, 'running', 7, %s)
        """, (str(uuid.uuid4()), str(uuid.uuid4()), now))
        cur.execute("""
            INSERT INTO stream_progress (query_name, run_id, batch_id, app, checkpoint_id, trigger_at, duration_ms,
                                         input_rows, end_offsets, latest_offsets)
            VALUES ('sales_metrics.windows', %s, 7, 'sales_metrics', %s, %s, 250, 12,
                    '[{"transactions": {"0": 100, "1": 90}}]', '[{"transactions": {"0": 130, "1": 95}}]')
        """, (str(uuid.uuid4()), str(uuid.uuid4()), now))
        cur.execute("""
            INSERT INTO stream_incidents (subject, problem, reason, opened_by)
            VALUES ('sessions', 'stalled', 'input waiting, no batch for 6 minutes', 'seeded')
        """)
        cur.execute("""
            INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, source_topic, stage, reason, payload)
            VALUES ('transactions', 0, 5, 'transactions', 'contract', 'total_amount: not the sum of its lines', '{}')
        """)


def seed_day_of_windows(settings: Settings, countries: list[str], categories: list[str],
                        products_per_window: int = 10) -> int:
    """A day of 1-minute windows before the seeded minutes (``MINUTES``): every category × country
    each minute with their country totals (category ALL), the hourly rollups and each minute's
    best products; figures vary by a hash of the window, so every window differs. Written after
    :func:`seed_marts`, whose rows it leaves as they are. Returns the 1-minute rows written."""
    day_start, day_end = MINUTES[0] - timedelta(days=1), MINUTES[0]
    with db.connect(settings) as conn, conn.cursor() as cur:
        cur.execute("""
            INSERT INTO sales_window_metrics (granularity, window_start, window_end, category, country, revenue,
                                              transactions, units, avg_order_value, last_received_at)
            SELECT '1m', minute, minute + interval '1 minute', category, country, revenue, transactions,
                   transactions + transactions / 2, round(revenue / transactions, 2), now()
            FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',
                                 interval '1 minute') AS minute,
                 unnest(%(categories)s::text[]) AS category, unnest(%(countries)s::text[]) AS country,
                 LATERAL (SELECT 1 + abs(hashtext(minute::text || category || country)) %% 6 AS transactions) t,
                 LATERAL (SELECT round((transactions * (20 + abs(hashtext(category || minute::text || country))
                                                        %% 30000 / 100.0))::numeric, 2) AS revenue) r
            ON CONFLICT DO NOTHING
        """, {"start": day_start, "end": day_end, "categories": categories, "countries": countries})
        written = cur.rowcount
        cur.execute("""
            INSERT INTO sales_window_metrics (granularity, window_start, window_end, category, country, revenue,
                                              transactions, units, avg_order_value, last_received_at)
            SELECT '1m', window_start, window_end, 'ALL', country, sum(revenue), sum(transactions), sum(units),
                   round(sum(revenue) / sum(transactions), 2), now()
            FROM sales_window_metrics WHERE granularity = '1m' AND window_start >= %s AND window_start < %s
            GROUP BY window_start, window_end, country
            ON CONFLICT DO NOTHING
        """, (day_start, day_end))
        written += cur.rowcount
        cur.execute("""
            INSERT INTO sales_window_metrics (granularity, window_start, window_end, category, country, revenue,
                                              transactions, units, avg_order_value, last_received_at)
            SELECT '1h', date_trunc('hour', window_start), date_trunc('hour', window_start) + interval '1 hour',
                   category, country, sum(revenue), sum(transactions), sum(units),
                   round(sum(revenue) / sum(transactions), 2), now()
            FROM sales_window_metrics WHERE granularity = '1m' AND window_start >= %s AND window_start < %s
            GROUP BY 2, 3, category, country
            ON CONFLICT DO NOTHING
        """, (day_start, day_end))
        cur.execute("""
            INSERT INTO product_window_sales (granularity, window_start, window_end, product_id, category, units,
                                              revenue, transactions)
            SELECT '1m', minute, minute + interval '1 minute', 'P' || lpad(rank::text, 6, '0'),
                   (%(categories)s::text[])[1 + rank %% cardinality(%(categories)s::text[])],
                   1 + rank, round((1000.0 / rank + abs(hashtext(minute::text)) %% 100)::numeric, 2), 1 + rank / 2
            FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 minute',
                                 interval '1 minute') AS minute,
                 generate_series(1, %(products)s) AS rank
            ON CONFLICT DO NOTHING
        """, {"start": day_start, "end": day_end, "categories": categories, "products": products_per_window})
        cur.execute("ANALYZE sales_window_metrics; ANALYZE product_window_sales")
    return written


def seed_warehouse(settings: Settings) -> None:
    database = MongoClient(settings.mongo.uri)[settings.mongo.database]
    customers = [("U00000001", "Champions", 900.0), ("U00000002", "Champions", 700.0), ("U00000003", "At Risk", 50.0)]
    database.customer_rfm.insert_many([
        {"_id": f"2026-11-30:{user}", "analysis_date": ANALYSIS_DATE, "user_id": user, "rfm_segment": segment,
         "recency": 3, "frequency": 4, "monetary": monetary, "r_score": 5, "f_score": 4, "m_score": 4, "fm_score": 4,
         "last_purchase_date": ANALYSIS_DATE}
        for user, segment, monetary in customers
    ])
    database.product_performance.insert_many([
        {"_id": f"2026-11-30:{pid}", "date": ANALYSIS_DATE, "product_id": pid, "category": category,
         "total_revenue": revenue, "units_sold": units, "orders": units, "views": 10 * units,
         "conversion_rate": 0.1, "performance_score": score, "rank_in_category": 1}
        for pid, category, revenue, units, score in (("P000001", "Electronics > Phones", 5000.0, 20, 91.5),
                                                     ("P000002", "Home > Kitchen", 800.0, 9, 55.0))
    ])
    database.sales_trends.insert_many([
        {"_id": f"daily:2026-11-{day}:ALL:ALL", "granularity": "daily", "period_start": datetime(2026, 11, day),
         "period_end": datetime(2026, 11, day), "country": "ALL", "category": "ALL", "revenue": revenue,
         "transactions": 10, "units": 20, "avg_order_value": revenue / 10, "revenue_growth": growth,
         "transactions_growth": None, "revenue_moving_avg": None, "transactions_moving_avg": None}
        for day, revenue, growth in ((29, 1000.0, None), (30, 1250.0, 0.25))
    ])


@contextmanager
def private_warehouse(settings: Settings):
    """``settings`` with a MongoDB database of their own, dropped afterwards."""
    private = settings.model_copy(update={"mongo": settings.mongo.model_copy(
        update={"database": f"{settings.postgres.database}_warehouse"})})
    try:
        yield private
    finally:
        MongoClient(private.mongo.uri).drop_database(private.mongo.database)
