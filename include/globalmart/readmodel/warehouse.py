"""Reads of the MongoDB warehouse (published by the daily_batch DAG).

Every function takes a pymongo ``Database`` and returns a :class:`Result`; each query is led by
one of the indexes the publish step creates (``globalmart.warehouse.publish.INDEXES``). Days are
stored as UTC midnights; a result without an explicit day reads the newest one published.
"""

from __future__ import annotations

from datetime import date, datetime, time

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from globalmart.readmodel.result import WAREHOUSE_RUN, Result, page

# collection names of globalmart.warehouse.sources, repeated here because that module imports
# pyspark, which the API and the dashboards have no use for
CUSTOMER_RFM = "customer_rfm"
PRODUCT_PERFORMANCE = "product_performance"
SALES_TRENDS = "sales_trends"
TREND_GRANULARITIES = ("daily", "weekly", "monthly")
PERFORMANCE_METRICS = ("performance_score", "total_revenue", "units_sold", "conversion_rate", "views")
ALL = "ALL"  # a sales trend over every country or every category


def _source(collection: str) -> str:
    return f"MongoDB warehouse {collection} (daily_batch DAG)"


def stored_day(day: date) -> datetime:
    """How the warehouse stores a day: its UTC midnight, naive."""
    return datetime.combine(day, time())


def _newest(database: Database, collection: str, field: str, query: dict | None = None):
    document = database[collection].find_one(query or {}, {field: 1}, sort=[(field, DESCENDING)])
    return document[field] if document else None


def _plain(document: dict) -> dict:
    document.pop("_id", None)
    return document


def _day_or_newest(database: Database, collection: str, field: str, day: date | None):
    """The stored day asked for, or the newest one published; None when the collection is empty."""
    newest = _newest(database, collection, field)
    if newest is None:
        return None, None
    return newest, stored_day(day) if day else newest


# --- customers (RFM) ----------------------------------------------------------------------

def rfm_dates(database: Database, limit: int = 90) -> Result:
    """The analysis dates of the RFM table, newest first."""
    dates = sorted(database[CUSTOMER_RFM].distinct("analysis_date"), reverse=True)[:limit]
    return Result(_source(CUSTOMER_RFM), [{"analysis_date": d} for d in dates], dates[0] if dates else None,
                  WAREHOUSE_RUN, limit=limit)


def rfm_segments(database: Database, analysis_date: date | None = None) -> Result:
    """Per RFM segment on the analysis date: customers, their share, total and average value,
    average recency and frequency; largest segment first."""
    newest, day = _day_or_newest(database, CUSTOMER_RFM, "analysis_date", analysis_date)
    if newest is None:
        return Result(_source(CUSTOMER_RFM), [], None, WAREHOUSE_RUN)
    groups = list(database[CUSTOMER_RFM].aggregate([
        {"$match": {"analysis_date": day}},
        # FerretDB 1.x has no $avg accumulator: averages are the sums over the customers
        {"$group": {"_id": "$rfm_segment", "customers": {"$sum": 1}, "monetary": {"$sum": "$monetary"},
                    "recency": {"$sum": "$recency"}, "frequency": {"$sum": "$frequency"}}},
    ]))
    total = sum(group["customers"] for group in groups)
    rows = sorted(({"segment": g["_id"], "customers": g["customers"], "share": round(g["customers"] / total, 4),
                    "monetary": round(g["monetary"], 2), "avg_monetary": round(g["monetary"] / g["customers"], 2),
                    "avg_recency": round(g["recency"] / g["customers"], 1),
                    "avg_frequency": round(g["frequency"] / g["customers"], 2)}
                   for g in groups), key=lambda row: (-row["customers"], row["segment"]))
    return Result(_source(CUSTOMER_RFM), rows, newest, WAREHOUSE_RUN, details={"analysis_date": day})


def rfm_segment_history(database: Database, dates: int = 30) -> Result:
    """Customers and value per segment on each of the newest ``dates`` analysis dates, oldest first."""
    recent = rfm_dates(database, dates)
    if not recent.rows:
        return Result(_source(CUSTOMER_RFM), [], None, WAREHOUSE_RUN)
    first = recent.rows[-1]["analysis_date"]
    groups = database[CUSTOMER_RFM].aggregate([
        {"$match": {"analysis_date": {"$gte": first}}},
        {"$group": {"_id": {"analysis_date": "$analysis_date", "segment": "$rfm_segment"},
                    "customers": {"$sum": 1}, "monetary": {"$sum": "$monetary"}}},
    ])
    rows = sorted(({**g["_id"], "customers": g["customers"], "monetary": round(g["monetary"], 2)} for g in groups),
                  key=lambda row: (row["analysis_date"], row["segment"]))
    return Result(_source(CUSTOMER_RFM), rows, recent.as_of, WAREHOUSE_RUN)


def customers(database: Database, segment: str | None = None, analysis_date: date | None = None,
              limit: int = 100, offset: int = 0) -> Result:
    """Scored customers on the analysis date (of ``segment``), most valuable first."""
    newest, day = _day_or_newest(database, CUSTOMER_RFM, "analysis_date", analysis_date)
    if newest is None:
        return Result(_source(CUSTOMER_RFM), [], None, WAREHOUSE_RUN)
    query = {"analysis_date": day, **({"rfm_segment": segment} if segment else {})}
    cursor = (database[CUSTOMER_RFM].find(query).sort([("monetary", DESCENDING), ("user_id", ASCENDING)])
              .skip(offset).limit(limit + 1))
    return page(_source(CUSTOMER_RFM), [_plain(d) for d in cursor], newest, WAREHOUSE_RUN, limit, offset,
                analysis_date=day)


def customer_history(database: Database, user_id: str, limit: int = 365) -> Result:
    """One customer's RFM scores and segment on every analysis date, newest first."""
    cursor = database[CUSTOMER_RFM].find({"user_id": user_id}).sort("analysis_date", DESCENDING).limit(limit)
    return Result(_source(CUSTOMER_RFM), [_plain(d) for d in cursor], _newest(database, CUSTOMER_RFM, "analysis_date"),
                  WAREHOUSE_RUN, limit=limit)


# --- products -----------------------------------------------------------------------------

def product_dates(database: Database, limit: int = 90) -> Result:
    dates = sorted(database[PRODUCT_PERFORMANCE].distinct("date"), reverse=True)[:limit]
    return Result(_source(PRODUCT_PERFORMANCE), [{"date": d} for d in dates], dates[0] if dates else None,
                  WAREHOUSE_RUN, limit=limit)


def product_performance(database: Database, day: date | None = None, category: str | None = None,
                        limit: int = 100, offset: int = 0) -> Result:
    """Products' daily performance: best score first, or a category's revenue ranking."""
    newest, stored = _day_or_newest(database, PRODUCT_PERFORMANCE, "date", day)
    if newest is None:
        return Result(_source(PRODUCT_PERFORMANCE), [], None, WAREHOUSE_RUN)
    query = {"date": stored}
    order = [("performance_score", DESCENDING), ("product_id", ASCENDING)]
    if category:
        query["category"] = category
        order = [("rank_in_category", ASCENDING), ("product_id", ASCENDING)]
    cursor = database[PRODUCT_PERFORMANCE].find(query).sort(order).skip(offset).limit(limit + 1)
    return page(_source(PRODUCT_PERFORMANCE), [_plain(d) for d in cursor], newest, WAREHOUSE_RUN, limit, offset,
                date=stored)


def top_performers(database: Database, metric: str = "performance_score", day: date | None = None,
                   limit: int = 10) -> Result:
    """The ``limit`` best products of the day by ``metric``."""
    if metric not in PERFORMANCE_METRICS:
        raise ValueError(f"metric must be one of {', '.join(PERFORMANCE_METRICS)}, not {metric!r}")
    newest, stored = _day_or_newest(database, PRODUCT_PERFORMANCE, "date", day)
    if newest is None:
        return Result(_source(PRODUCT_PERFORMANCE), [], None, WAREHOUSE_RUN)
    cursor = (database[PRODUCT_PERFORMANCE].find({"date": stored})
              .sort([(metric, DESCENDING), ("product_id", ASCENDING)]).limit(limit))
    rows = [{"rank": rank, **_plain(d)} for rank, d in enumerate(cursor, start=1)]
    return Result(_source(PRODUCT_PERFORMANCE), rows, newest, WAREHOUSE_RUN, limit=limit,
                  details={"date": stored, "metric": metric})


# --- sales trends -------------------------------------------------------------------------

def sales_trends(database: Database, granularity: str = "daily", country: str = ALL, category: str = ALL,
                 limit: int = 90, offset: int = 0) -> Result:
    """One series of the sales trends (revenue, transactions, units, growth, moving averages),
    newest period first."""
    if granularity not in TREND_GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(TREND_GRANULARITIES)}, not {granularity!r}")
    newest = _newest(database, SALES_TRENDS, "period_start", {"granularity": granularity})
    if newest is None:
        return Result(_source(SALES_TRENDS), [], None, WAREHOUSE_RUN)
    cursor = (database[SALES_TRENDS]
              .find({"granularity": granularity, "country": country, "category": category})
              .sort("period_start", DESCENDING).skip(offset).limit(limit + 1))
    return page(_source(SALES_TRENDS), [_plain(d) for d in cursor], newest, WAREHOUSE_RUN, limit, offset)
