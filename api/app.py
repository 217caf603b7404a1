"""GlobalMart's read API: the real-time marts and the warehouse, keyed, versioned, documented.

Serve it with ``uvicorn --factory api.app:create_app --app-dir <project root>`` (the platform
does). Every data route needs the ``X-API-Key`` header (``GLOBALMART_API__KEY``, generated into
the secrets file); ``/api/v1/health``, ``/metrics`` and the docs (``/docs``, ``/openapi.json``)
do not. Every answer names its source and freshness (``as_of``); an empty source answers 200
with ``"message": "no data yet: run …"``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import time
from contextlib import asynccontextmanager
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

import psycopg2
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import AfterValidator, BaseModel
from pymongo.errors import PyMongoError

from globalmart.readmodel import ReadModel, Result, marts, warehouse
from globalmart.settings import Settings, load_settings

VERSION = "1.0.0"
KEY_HEADER = "X-API-Key"


class Answer(BaseModel):
    """Rows of one source, with where they come from and how fresh that source is."""

    source: str
    as_of: datetime | date | None = None
    message: str | None = None  # set when there are no rows: why, and what to run
    count: int
    limit: int | None = None
    offset: int = 0
    next_offset: int | None = None  # pass as ``offset`` for the next page
    details: dict[str, Any] = {}
    data: list[dict[str, Any]]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    postgres: str
    warehouse: str


def answer(result: Result) -> Answer:
    return Answer(source=result.source, as_of=result.as_of, message=result.message, count=len(result.rows),
                  limit=result.limit, offset=result.offset, next_offset=result.next_offset,
                  details=result.details, data=result.rows)


def csv_response(result: Result, name: str) -> Response:
    """The rows as a spreadsheet; lists (transaction ids, categories) joined with ``;``."""
    buffer = io.StringIO()
    columns = list(dict.fromkeys(key for row in result.rows for key in row))
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for row in result.rows:
        writer.writerow({key: ";".join(map(str, value)) if isinstance(value, list) else value
                         for key, value in row.items()})
    return Response(buffer.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "X-Source": result.source, "X-As-Of": str(result.as_of or "")})


def respond(result: Result, output: str, name: str) -> Answer | Response:
    return csv_response(result, name) if output == "csv" else answer(result)


# --- dependencies -------------------------------------------------------------------------

key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="the key in GLOBALMART_API__KEY")


def require_key(request: Request, key: Annotated[str | None, Depends(key_header)]) -> None:
    expected = request.app.state.settings.api.key
    if expected is None or key is None or not secrets.compare_digest(key, expected.get_secret_value()):
        raise HTTPException(401, f"a valid {KEY_HEADER} header is required", headers={"WWW-Authenticate": KEY_HEADER})


def no_nul_characters(request: Request) -> None:
    """PostgreSQL text cannot hold a NUL character: a parameter with one is a 422, not a 500."""
    for location, items in (("query", request.query_params.multi_items()), ("path", request.path_params.items())):
        for name, value in items:
            if "\x00" in str(value):
                raise RequestValidationError([{"type": "value_error", "loc": (location, name), "input": value,
                                               "msg": "must not contain a NUL (0x00) character"}])


def read_model(request: Request) -> ReadModel:
    return request.app.state.read_model


async def postgres_slot(request: Request):
    """A request waits here, on the event loop, for one of the pool's connections. Waiting in a
    worker thread instead deadlocks under load: the threads that would give connections back
    need a worker thread of their own to run in."""
    async with request.app.state.postgres_slots:
        yield


def postgres(_slot: Annotated[None, Depends(postgres_slot)], model: Annotated[ReadModel, Depends(read_model)]):
    with model.postgres() as conn:
        yield conn


def mongo(model: Annotated[ReadModel, Depends(read_model)]):
    return model.warehouse


Model = Annotated[ReadModel, Depends(read_model)]
Postgres = Annotated[Any, Depends(postgres)]
Mongo = Annotated[Any, Depends(mongo)]
Output = Annotated[Literal["json", "csv"], Query(alias="format", description="json, or csv for a spreadsheet")]
MAX_OFFSET = 2**31 - 1  # what MongoDB's skip takes; PostgreSQL's OFFSET too, well within its bigint
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip (the previous answer's next_offset)")]


def page_size(request: Request, limit: Annotated[int | None, Query(ge=1, description="rows per page")] = None) -> int:
    api = request.app.state.settings.api
    if limit is not None and limit > api.max_page_size:
        raise HTTPException(422, f"limit must be at most {api.max_page_size}")
    return limit or api.default_page_size


Limit = Annotated[int, Depends(page_size)]


def in_utc(moment: datetime | None) -> datetime | None:
    """A time filter in UTC (a time without offset is UTC): PostgreSQL refuses offsets beyond ±15:59,
    which ISO 8601 allows."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as error:
        raise ValueError("the time is out of range once in UTC") from error


Instant = Annotated[datetime | None, AfterValidator(in_utc)]

# --- routes -------------------------------------------------------------------------------

public = APIRouter(prefix="/api/v1")
keyed = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key), Depends(no_nul_characters)])


@public.get("/health", response_model=Health, tags=["health"])
def health(model: Model) -> Health:
    """Whether the API reaches PostgreSQL (the marts) and MongoDB (the warehouse); no key needed."""
    try:
        with model.postgres() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
        postgres_state = "ok"
    except psycopg2.Error as error:
        postgres_state = f"unreachable: {str(error).strip()}"
    try:
        model.warehouse.command("ping")
        warehouse_state = "ok"
    except PyMongoError as error:
        warehouse_state = f"unreachable: {error}"
    status = "ok" if postgres_state == warehouse_state == "ok" else "degraded"
    return Health(status=status, version=VERSION, postgres=postgres_state, warehouse=warehouse_state)


@keyed.get("/monitoring/dashboard", response_model=Answer, tags=["monitoring"])
def dashboard_summary(conn: Postgres) -> Answer:
    """The day so far: revenue, transactions, average order value, best category and country,
    anomalies, products low or critical."""
    return answer(marts.dashboard_summary(conn))


@keyed.get("/sales/summary", response_model=Answer, tags=["sales"])
def sales_summary(conn: Postgres, minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60) -> Answer:
    """Revenue, transactions, units and average order value of the last ``minutes`` (up to the
    newest window): 1-minute windows up to 3 hours, hourly windows beyond."""
    return answer(marts.sales_summary(conn, minutes, "1m" if minutes <= 180 else "1h"))


@keyed.get("/sales/metrics", response_model=None, tags=["sales"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def sales_metrics(conn: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json",
                  granularity: Literal["1m", "1h"] = "1m", since: Instant = None,
                  until: Instant = None, category: str | None = None,
                  country: str | None = None) -> Answer | Response:
    """Sales windows (category × country; category ``ALL`` is a country's total), newest first."""
    return respond(marts.sales_metrics(conn, granularity, since, until, category, country, limit, offset),
                   output, "sales_metrics")


@keyed.get("/sales/breakdown", response_model=Answer, tags=["sales"])
def sales_breakdown(conn: Postgres, by: Literal["country", "category"] = "country",
                    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Answer:
    """Sales of the last ``minutes`` per country or per category, best first."""
    return answer(marts.sales_breakdown(conn, by, minutes, limit, "1m" if minutes <= 180 else "1h"))


@keyed.get("/sales/series", response_model=Answer, tags=["sales"])
def sales_series(conn: Postgres, granularity: Literal["1m", "1h"] = "1m",
                 periods: Annotated[int, Query(ge=1, le=1440)] = 60, country: str | None = None) -> Answer:
    """The shop's (or a country's) sales per window, the newest ``periods`` windows, oldest first."""
    return answer(marts.sales_series(conn, granularity, periods, country))


@keyed.get("/sales/top-products", response_model=Answer, tags=["sales"])
def top_products(conn: Postgres, granularity: Literal["1m", "1h"] = "1m",
                 limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Answer:
    """Best-selling products of the newest window, by revenue."""
    return answer(marts.top_products(conn, granularity, limit))


@keyed.get("/monitoring/anomalies", response_model=None, tags=["monitoring"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def anomalies(conn: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json",
              kind: Annotated[list[Literal[marts.ANOMALY_KINDS]] | None, Query()] = None,
              since: Instant = None, until: Instant = None,
              min_score: Annotated[float, Query(ge=0, le=1)] = 0.0) -> Answer | Response:
    """Detected anomalies, latest first; ``kind`` may repeat."""
    return respond(marts.anomalies(conn, kind, since, until, min_score, limit, offset), output, "anomalies")


@keyed.get("/monitoring/streaming", response_model=Answer, tags=["monitoring"])
def streaming_queries(conn: Postgres) -> Answer:
    """Each streaming query: state, heartbeat, last batch, lag."""
    return answer(marts.stream_queries(conn))


@keyed.get("/inventory/low-stock", response_model=None, tags=["inventory"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def low_stock(conn: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json",
              state: Annotated[list[Literal["low", "critical"]] | None, Query()] = None,
              category: str | None = None) -> Answer | Response:
    """Products in low or critical state, critical first, least stock first."""
    return respond(marts.low_stock(conn, state, category, limit, offset), output, "low_stock")


@keyed.get("/inventory/{product_id}/history", response_model=Answer, tags=["inventory"])
def stock_history(conn: Postgres, product_id: str, limit: Limit, offset: Offset = 0) -> Answer:
    """One product's stock movements, latest first."""
    return answer(marts.stock_history(conn, product_id, limit, offset))


@keyed.get("/funnel/hourly", response_model=Answer, tags=["funnel"])
def funnel(conn: Postgres, hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24, country: str | None = None) -> Answer:
    """Sessions → viewed → carted → checked out → purchased, per hour of session start."""
    return answer(marts.funnel(conn, hours, country))


@keyed.get("/funnel/abandonment", response_model=Answer, tags=["funnel"])
def abandonment(conn: Postgres, hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24) -> Answer:
    """Abandoned carts per hour: how many, their items and value."""
    return answer(marts.abandonment_hourly(conn, hours))


@keyed.get("/funnel/abandoned-carts", response_model=None, tags=["funnel"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def abandoned_carts(conn: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json") -> Answer | Response:
    """The latest abandoned carts."""
    return respond(marts.abandoned_carts(conn, limit, offset), output, "abandoned_carts")


@keyed.get("/customers/segments", response_model=None, tags=["customers"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def customer_segments(database: Mongo, limit: Limit, offset: Offset = 0, output: Output = "json",
                      segment: str | None = None, analysis_date: date | None = None) -> Answer | Response:
    """Customers with their RFM scores and segment on the analysis date (default: the newest),
    most valuable first."""
    return respond(warehouse.customers(database, segment, analysis_date, limit, offset), output, "customers")


@keyed.get("/customers/segments/distribution", response_model=Answer, tags=["customers"])
def segment_distribution(database: Mongo, analysis_date: date | None = None) -> Answer:
    """Customers, share and value per RFM segment on the analysis date (default: the newest)."""
    return answer(warehouse.rfm_segments(database, analysis_date))


@keyed.get("/customers/{user_id}/history", response_model=Answer, tags=["customers"])
def customer_history(database: Mongo, user_id: str) -> Answer:
    """One customer's RFM scores and segment on every analysis date, newest first."""
    return answer(warehouse.customer_history(database, user_id))


@keyed.get("/products/performance", response_model=None, tags=["products"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def product_performance(database: Mongo, limit: Limit, offset: Offset = 0, output: Output = "json",
                        day: Annotated[date | None, Query(alias="date")] = None,
                        category: str | None = None) -> Answer | Response:
    """Products' daily performance (default: the newest day): best score first, or a category's
    revenue ranking."""
    return respond(warehouse.product_performance(database, day, category, limit, offset), output,
                   "product_performance")


@keyed.get("/products/top-performers", response_model=Answer, tags=["products"])
def top_performers(database: Mongo, metric: Literal[warehouse.PERFORMANCE_METRICS] = "performance_score",
                   day: Annotated[date | None, Query(alias="date")] = None,
                   limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Answer:
    """The best products of the day by a metric."""
    return answer(warehouse.top_performers(database, metric, day, limit))


@keyed.get("/trends/sales", response_model=None, tags=["trends"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
def sales_trends(database: Mongo, limit: Limit, offset: Offset = 0, output: Output = "json",
                 granularity: Literal[warehouse.TREND_GRANULARITIES] = "daily",
                 country: str = warehouse.ALL, category: str = warehouse.ALL) -> Answer | Response:
    """One sales-trend series (``ALL`` = every country / category): revenue, transactions, units,
    growth and moving averages, newest period first."""
    return respond(warehouse.sales_trends(database, granularity, country, category, limit, offset), output,
                   "sales_trends")


# --- the application ----------------------------------------------------------------------

def _instrument(app: FastAPI) -> None:
    """Request counts and latencies per route template, in Prometheus text format at /metrics."""
    registry = CollectorRegistry()
    requests = Counter("globalmart_api_requests", "API requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("globalmart_api_request_seconds", "API request latency", ["method", "route"],
                        registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    @app.middleware("http")
    async def measure(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = route.path if route is not None else "unmatched"
        latency.labels(request.method, template).observe(time.perf_counter() - started)
        requests.labels(request.method, template, str(response.status_code)).inc()
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    read_model = ReadModel(settings, settings.api.postgres_connections)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        read_model.close()

    app = FastAPI(
        lifespan=lifespan,
        title="GlobalMart Analytics API", version=VERSION,
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        openapi_tags=[{"name": name} for name in ("health", "monitoring", "sales", "inventory", "funnel",
                                                  "customers", "products", "trends")],
    )
    app.state.settings = settings
    app.state.read_model = read_model
    app.state.postgres_slots = asyncio.Semaphore(settings.api.postgres_connections)

    @app.exception_handler(psycopg2.OperationalError)
    @app.exception_handler(PyMongoError)
    async def store_unreachable(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"a data store did not answer: {str(error).strip()}"}, status_code=503)

    _instrument(app)
    app.include_router(public)
    app.include_router(keyed)
    return app
