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
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

import psycopg2
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
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


def answer(result: Result) -> Response:
    """The answer as JSON, rendered once by pydantic-core (a returned Response skips FastAPI's second
    validation and encoding of the response model; the model still documents the route)."""
    body = Answer.model_construct(source=result.source, as_of=result.as_of, message=result.message,
                                  count=len(result.rows), limit=result.limit, offset=result.offset,
                                  next_offset=result.next_offset, details=result.details, data=result.rows)
    return Response(body.model_dump_json(), media_type="application/json")


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


def respond(result: Result, output: str, name: str) -> Response:
    return csv_response(result, name) if output == "csv" else answer(result)


CACHED_ROUTES = ("/monitoring/dashboard", "/sales/summary", "/sales/metrics", "/sales/breakdown", "/sales/series",
                 "/sales/top-products")


class AnswerCache:
    """The answers of the busiest routes (the dashboard summary and the sales routes), each kept
    for ``api.cache_seconds`` (1 s) after it was read: at hundreds of requests a second the marts
    are read about once a second per answer and worker, not once per request. Honest by
    construction: the marts themselves change once a second (the streaming apps' trigger), the
    body's ``as_of`` says how fresh the data is, and the ``Age`` header how long ago it was read.
    One read at a time per answer: requests arriving meanwhile wait for it and share it.

    A plain ASGI middleware in front of the routes: a kept answer costs a key check and a send,
    none of the parameter parsing, validation and dependencies of the route. Only 200 answers to
    a valid key are kept, per path and exact query string (the same string validates the same)."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.seconds = settings.api.cache_seconds
        self.key = settings.api.key.get_secret_value().encode() if settings.api.key else None
        self.paths = {f"/api/v1{route}" for route in CACHED_ROUTES}
        self._answers: dict[tuple[str, bytes], tuple[float, list, bytes, Any]] = {}
        self._reading: dict[tuple[str, bytes], asyncio.Future] = {}

    def _keyed(self, scope) -> bool:
        given = next((value for name, value in scope["headers"] if name == b"x-api-key"), None)
        return self.key is not None and given is not None and secrets.compare_digest(given, self.key)

    async def __call__(self, scope, receive, send) -> None:
        if (self.seconds <= 0 or scope["type"] != "http" or scope["method"] != "GET"
                or scope["path"] not in self.paths or not self._keyed(scope)):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        kept = self._answers.get(key)
        if kept is None or time.monotonic() - kept[0] >= self.seconds:
            reading = self._reading.get(key)
            if reading is not None:
                kept = await asyncio.shield(reading)
            else:
                kept = await self._read(key, scope, receive, send)
            if kept is None:  # not kept (no 200, or this request was the read and is answered)
                if reading is not None:
                    await self.app(scope, receive, send)
                return
        read_at, headers, body, route = kept
        if route is not None:
            scope["route"] = route  # the request counts under its route in /metrics
        await send({"type": "http.response.start", "status": 200, "headers": [
            *headers, (b"age", str(int(time.monotonic() - read_at)).encode()),
            (b"cache-control", f"private, max-age={self.seconds:g}".encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _read(self, key, scope, receive, send):
        """Runs the route, answering this request, and keeps a 200 answer for the next ones.
        Returns None: this request is answered."""
        reading = self._reading[key] = asyncio.get_running_loop().create_future()
        start: dict = {}
        chunks: list[bytes] = []

        async def keeping(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                message = {**message, "headers": [*message["headers"], (b"age", b"0"),
                                                  (b"cache-control", f"private, max-age={self.seconds:g}".encode())]
                           if message["status"] == 200 else message["headers"]}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        kept = None
        try:
            await self.app(scope, receive, keeping)
            if start.get("status") == 200:
                headers = [(name, value) for name, value in start["headers"] if name != b"date"]
                kept = self._answers[key] = (time.monotonic(), headers, b"".join(chunks), scope.get("route"))
        finally:
            reading.set_result(kept)
            del self._reading[key]
        return None


# --- dependencies -------------------------------------------------------------------------

key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="the key in GLOBALMART_API__KEY")


async def require_key(request: Request, key: Annotated[str | None, Depends(key_header)]) -> None:
    expected = request.app.state.settings.api.key
    if expected is None or key is None or not secrets.compare_digest(key, expected.get_secret_value()):
        raise HTTPException(401, f"a valid {KEY_HEADER} header is required", headers={"WWW-Authenticate": KEY_HEADER})


async def no_nul_characters(request: Request) -> None:
    """PostgreSQL text cannot hold a NUL character: a parameter with one is a 422, not a 500."""
    for location, items in (("query", request.query_params.multi_items()), ("path", request.path_params.items())):
        for name, value in items:
            if "\x00" in str(value):
                raise RequestValidationError([{"type": "value_error", "loc": (location, name), "input": value,
                                               "msg": "must not contain a NUL (0x00) character"}])


async def read_model(request: Request) -> ReadModel:
    return request.app.state.read_model


# The dependencies and routes are coroutines: a sync one costs a hop to a worker thread each, and
# a request had six. A read makes exactly one: it borrows a pooled connection, runs the query
# function and gives the connection back, all in one worker thread.
Read = Callable[..., Awaitable[Result]]


async def postgres(request: Request, model: Annotated[ReadModel, Depends(read_model)]) -> Read:
    """Reads through one of the pool's connections. A read waits for a free one on the event loop
    (waiting in a worker thread instead deadlocks under load: the threads that would give
    connections back need a worker thread of their own to run in); a cached answer waits for none."""
    slots = request.app.state.postgres_slots

    async def read(query: Callable[..., Result], *args) -> Result:
        def borrowed() -> Result:
            with model.postgres() as conn:
                return query(conn, *args)
        async with slots:
            return await run_in_threadpool(borrowed)
    return read


async def mongo(model: Annotated[ReadModel, Depends(read_model)]):
    async def read(query: Callable[..., Result], *args) -> Result:
        return await run_in_threadpool(query, model.warehouse, *args)
    return read


Model = Annotated[ReadModel, Depends(read_model)]
Postgres = Annotated[Read, Depends(postgres)]
Mongo = Annotated[Read, Depends(mongo)]
Output = Annotated[Literal["json", "csv"], Query(alias="format", description="json, or csv for a spreadsheet")]
MAX_OFFSET = 2**31 - 1  # what MongoDB's skip takes; PostgreSQL's OFFSET too, well within its bigint
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip (the previous answer's next_offset)")]


async def page_size(request: Request, limit: Annotated[int | None, Query(ge=1, description="rows per page")] = None) -> int:
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


HEALTH_SECONDS = 1.5  # each store's answer to the health probe; a health check must answer fast


async def _probe(check: Callable[[], object]) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(check), HEALTH_SECONDS)
        return "ok"
    except TimeoutError:
        return f"no answer within {HEALTH_SECONDS:g} s"
    except (psycopg2.Error, PyMongoError) as error:
        return f"unreachable: {str(error).strip()}"


@public.get("/health", response_model=Health, tags=["health"])
async def health(model: Model) -> Health:
    """Whether the API reaches PostgreSQL (the marts) and MongoDB (the warehouse), each within
    1.5 s; no key needed. A store that does not answer makes the status "degraded", never a hang."""
    def postgres_answers() -> None:
        with model.postgres() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")

    postgres_state, warehouse_state = await asyncio.gather(
        _probe(postgres_answers), _probe(lambda: model.warehouse.command("ping")))
    status = "ok" if postgres_state == warehouse_state == "ok" else "degraded"
    return Health(status=status, version=VERSION, postgres=postgres_state, warehouse=warehouse_state)


@keyed.get("/monitoring/dashboard", response_model=Answer, tags=["monitoring"])
async def dashboard_summary(read: Postgres) -> Response:
    """The day so far: revenue, transactions, average order value, best category and country,
    anomalies, products low or critical. Cached for ``api.cache_seconds`` (the ``Age`` header)."""
    return answer(await read(marts.dashboard_summary))


@keyed.get("/sales/summary", response_model=Answer, tags=["sales"])
async def sales_summary(read: Postgres,
                        minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60) -> Response:
    """Revenue, transactions, units and average order value of the last ``minutes`` (up to the
    newest window): 1-minute windows up to 3 hours, hourly windows beyond."""
    return answer(await read(marts.sales_summary, minutes, "1m" if minutes <= 180 else "1h"))


@keyed.get("/sales/metrics", response_model=None, tags=["sales"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def sales_metrics(read: Postgres, limit: Limit, offset: Offset = 0,
                        output: Output = "json", granularity: Literal["1m", "1h"] = "1m", since: Instant = None,
                        until: Instant = None, category: str | None = None,
                        country: str | None = None) -> Response:
    """Sales windows (category × country; category ``ALL`` is a country's total), newest first.
    Cached for ``api.cache_seconds`` (the ``Age`` header)."""
    return respond(await read(marts.sales_metrics, granularity, since, until, category, country, limit, offset),
                   output, "sales_metrics")


@keyed.get("/sales/breakdown", response_model=Answer, tags=["sales"])
async def sales_breakdown(read: Postgres, by: Literal["country", "category"] = "country",
                          minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60)] = 60,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Response:
    """Sales of the last ``minutes`` per country or per category, best first."""
    return answer(await read(marts.sales_breakdown, by, minutes, limit, "1m" if minutes <= 180 else "1h"))


@keyed.get("/sales/series", response_model=Answer, tags=["sales"])
async def sales_series(read: Postgres, granularity: Literal["1m", "1h"] = "1m",
                       periods: Annotated[int, Query(ge=1, le=1440)] = 60, country: str | None = None) -> Response:
    """The shop's (or a country's) sales per window, the newest ``periods`` windows, oldest first."""
    return answer(await read(marts.sales_series, granularity, periods, country))


@keyed.get("/sales/top-products", response_model=Answer, tags=["sales"])
async def top_products(read: Postgres, granularity: Literal["1m", "1h"] = "1m",
                       limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Response:
    """Best-selling products of the newest window, by revenue."""
    return answer(await read(marts.top_products, granularity, limit))


@keyed.get("/monitoring/anomalies", response_model=None, tags=["monitoring"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def anomalies(read: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json",
                    kind: Annotated[list[Literal[marts.ANOMALY_KINDS]] | None, Query()] = None,
                    since: Instant = None, until: Instant = None,
                    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0) -> Response:
    """Detected anomalies, latest first; ``kind`` may repeat."""
    return respond(await read(marts.anomalies, kind, since, until, min_score, limit, offset), output, "anomalies")


@keyed.get("/monitoring/streaming", response_model=Answer, tags=["monitoring"])
async def streaming_queries(read: Postgres) -> Response:
    """Each streaming query: state, heartbeat, last batch, lag."""
    return answer(await read(marts.stream_queries))


@keyed.get("/inventory/low-stock", response_model=None, tags=["inventory"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def low_stock(read: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json",
                    state: Annotated[list[Literal["low", "critical"]] | None, Query()] = None,
                    category: str | None = None) -> Response:
    """Products in low or critical state, critical first, least stock first."""
    return respond(await read(marts.low_stock, state, category, limit, offset), output, "low_stock")


@keyed.get("/inventory/{product_id}/history", response_model=Answer, tags=["inventory"])
async def stock_history(read: Postgres, product_id: str, limit: Limit, offset: Offset = 0) -> Response:
    """One product's stock movements, latest first."""
    return answer(await read(marts.stock_history, product_id, limit, offset))


@keyed.get("/funnel/hourly", response_model=Answer, tags=["funnel"])
async def funnel(read: Postgres, hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24, country: str | None = None) -> Response:
    """Sessions → viewed → carted → checked out → purchased, per hour of session start."""
    return answer(await read(marts.funnel, hours, country))


@keyed.get("/funnel/abandonment", response_model=Answer, tags=["funnel"])
async def abandonment(read: Postgres, hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24) -> Response:
    """Abandoned carts per hour: how many, their items and value."""
    return answer(await read(marts.abandonment_hourly, hours))


@keyed.get("/funnel/abandoned-carts", response_model=None, tags=["funnel"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def abandoned_carts(read: Postgres, limit: Limit, offset: Offset = 0, output: Output = "json") -> Response:
    """The latest abandoned carts."""
    return respond(await read(marts.abandoned_carts, limit, offset), output, "abandoned_carts")


@keyed.get("/customers/segments", response_model=None, tags=["customers"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def customer_segments(read: Mongo, limit: Limit, offset: Offset = 0, output: Output = "json",
                            segment: str | None = None, analysis_date: date | None = None) -> Response:
    """Customers with their RFM scores and segment on the analysis date (default: the newest),
    most valuable first."""
    return respond(await read(warehouse.customers, segment, analysis_date, limit, offset), output, "customers")


@keyed.get("/customers/segments/distribution", response_model=Answer, tags=["customers"])
async def segment_distribution(read: Mongo, analysis_date: date | None = None) -> Response:
    """Customers, share and value per RFM segment on the analysis date (default: the newest)."""
    return answer(await read(warehouse.rfm_segments, analysis_date))


@keyed.get("/customers/{user_id}/history", response_model=Answer, tags=["customers"])
async def customer_history(read: Mongo, user_id: str) -> Response:
    """One customer's RFM scores and segment on every analysis date, newest first."""
    return answer(await read(warehouse.customer_history, user_id))


@keyed.get("/products/performance", response_model=None, tags=["products"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def product_performance(read: Mongo, limit: Limit, offset: Offset = 0, output: Output = "json",
                              day: Annotated[date | None, Query(alias="date")] = None,
                              category: str | None = None) -> Response:
    """Products' daily performance (default: the newest day): best score first, or a category's
    revenue ranking."""
    return respond(await read(warehouse.product_performance, day, category, limit, offset), output,
                   "product_performance")


@keyed.get("/products/top-performers", response_model=Answer, tags=["products"])
async def top_performers(read: Mongo, metric: Literal[warehouse.PERFORMANCE_METRICS] = "performance_score",
                         day: Annotated[date | None, Query(alias="date")] = None,
                         limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Response:
    """The best products of the day by a metric."""
    return answer(await read(warehouse.top_performers, metric, day, limit))


@keyed.get("/trends/sales", response_model=None, tags=["trends"],
           responses={200: {"model": Answer, "content": {"text/csv": {}}}})
async def sales_trends(read: Mongo, limit: Limit, offset: Offset = 0, output: Output = "json",
                       granularity: Literal[warehouse.TREND_GRANULARITIES] = "daily",
                       country: str = warehouse.ALL, category: str = warehouse.ALL) -> Response:
    """One sales-trend series (``ALL`` = every country / category): revenue, transactions, units,
    growth and moving averages, newest period first."""
    return respond(await read(warehouse.sales_trends, granularity, country, category, limit, offset), output,
                   "sales_trends")


# --- the application ----------------------------------------------------------------------

class Instrumented:
    """Request counts and latencies per route template, in Prometheus text format at /metrics.
    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` runs every request through
    an extra task and stream, which cost about as much as a cached answer."""

    def __init__(self, app, registry: CollectorRegistry):
        self.app = app
        self.requests = Counter("globalmart_api_requests", "API requests", ["method", "route", "status"],
                                registry=registry)
        self.latency = Histogram("globalmart_api_request_seconds", "API request latency", ["method", "route"],
                                 registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the application starts an answer

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # set by the router on the shared scope
            template = route.path if route is not None else "unmatched"
            self.latency.labels(scope["method"], template).observe(time.perf_counter() - started)
            self.requests.labels(scope["method"], template, str(status)).inc()


def _instrument(app: FastAPI) -> None:
    registry = CollectorRegistry()
    app.add_middleware(Instrumented, registry=registry)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
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

    app.add_middleware(AnswerCache, settings=settings)
    _instrument(app)  # added last: outermost, so kept answers are counted too
    app.include_router(public)
    app.include_router(keyed)
    return app
