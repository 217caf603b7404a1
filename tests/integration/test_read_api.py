"""The read API against the real PostgreSQL and FerretDB: keys, validation, every route on
seeded marts and warehouse, and the "no data yet" answer of empty ones."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import KEY_HEADER, create_app
from globalmart import db
from tests.readmodel_fixtures import (
    ANOMALY_ID, CRITICAL_PRODUCT, LOW_PRODUCT, REVENUE_PER_MINUTE, TOP_PRODUCT, TRANSACTIONS_PER_MINUTE,
    private_warehouse, seed_marts, seed_warehouse,
)

# every keyed route, with its path parameters filled in
DATA_ROUTES = [
    "/api/v1/monitoring/dashboard", "/api/v1/sales/summary", "/api/v1/sales/metrics", "/api/v1/sales/breakdown",
    "/api/v1/sales/series", "/api/v1/sales/top-products", "/api/v1/monitoring/anomalies",
    "/api/v1/monitoring/streaming", "/api/v1/inventory/low-stock", f"/api/v1/inventory/{CRITICAL_PRODUCT}/history",
    "/api/v1/funnel/hourly", "/api/v1/funnel/abandonment", "/api/v1/funnel/abandoned-carts",
    "/api/v1/customers/segments", "/api/v1/customers/segments/distribution", "/api/v1/customers/U00000001/history",
    "/api/v1/products/performance", "/api/v1/products/top-performers", "/api/v1/trends/sales",
]


@pytest.fixture
def empty_env(stream_env):
    with private_warehouse(stream_env) as settings:
        yield settings


@pytest.fixture
def seeded_env(empty_env):
    seed_marts(empty_env)
    seed_warehouse(empty_env)
    return empty_env


def client_for(settings) -> TestClient:
    return TestClient(create_app(settings), headers={KEY_HEADER: settings.api.key.get_secret_value()})


@pytest.fixture
def api(seeded_env):
    with client_for(seeded_env) as client:
        yield client


def data(response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_the_routes_cover_every_data_route_of_the_spec(api):
    spec_paths = {path for path in api.get("/openapi.json").json()["paths"] if path != "/api/v1/health"}
    templates = {route.replace(CRITICAL_PRODUCT, "{product_id}").replace("U00000001", "{user_id}")
                 for route in DATA_ROUTES}
    assert spec_paths == templates


def test_every_data_route_needs_the_key_and_health_does_not(api, seeded_env):
    for route in DATA_ROUTES:
        assert api.get(route, headers={KEY_HEADER: ""}).status_code == 401, route
        assert api.get(route, headers={KEY_HEADER: "not-the-key"}).status_code == 401, route
    anonymous = TestClient(api.app)
    assert anonymous.get("/api/v1/sales/summary").status_code == 401
    assert anonymous.get("/api/v1/health").json() == {"status": "ok", "version": "1.0.0", "postgres": "ok",
                                                       "warehouse": "ok"}
    assert seeded_env.api.key.get_secret_value() not in api.get("/openapi.json").text


def test_empty_sources_answer_what_to_run(empty_env):
    with client_for(empty_env) as client:
        for route in DATA_ROUTES:
            response = client.get(route)
            assert response.status_code == 200, (route, response.text)
            body = response.json()
            assert body["data"] == [] and body["as_of"] is None, route
            assert body["message"].startswith("no data yet: run "), route
            assert body["source"].startswith(("PostgreSQL", "MongoDB")), route


def test_sales_routes_return_the_seeded_windows(api):
    summary = data(api.get("/api/v1/sales/summary", params={"minutes": 3}))[0]
    assert summary["revenue"] == pytest.approx(3 * REVENUE_PER_MINUTE)
    assert summary["transactions"] == 3 * TRANSACTIONS_PER_MINUTE
    assert summary["avg_order_value"] == pytest.approx(round(REVENUE_PER_MINUTE / TRANSACTIONS_PER_MINUTE, 2))
    assert api.get("/api/v1/sales/summary").json()["as_of"] is not None

    first = api.get("/api/v1/sales/metrics", params={"limit": 2, "country": "USA", "category": "ALL"}).json()
    assert first["count"] == 2 and first["next_offset"] == 2
    rest = api.get("/api/v1/sales/metrics", params={"limit": 2, "offset": 2, "country": "USA", "category": "ALL"})
    assert rest.json()["count"] == 1 and rest.json()["next_offset"] is None
    assert [row["revenue"] for row in first["data"] + rest.json()["data"]] == [1200.50] * 3

    countries = data(api.get("/api/v1/sales/breakdown", params={"by": "country", "minutes": 3}))
    assert [(row["country"], row["revenue"]) for row in countries] == [("USA", 3 * 1200.50), ("UK", 3 * 300.25)]
    categories = data(api.get("/api/v1/sales/breakdown", params={"by": "category", "minutes": 3}))
    assert categories[0]["category"] == "Electronics > Phones" and categories[0]["transactions"] == 15
    assert [row["revenue"] for row in data(api.get("/api/v1/sales/series", params={"periods": 3}))] == \
        [pytest.approx(REVENUE_PER_MINUTE)] * 3

    top = data(api.get("/api/v1/sales/top-products"))
    assert [(row["rank"], row["product_id"], row["name"]) for row in top] == \
        [(1, TOP_PRODUCT[0], TOP_PRODUCT[1]), (2, "P000002", "Chef Knife")]

    day = data(api.get("/api/v1/monitoring/dashboard"))[0]
    assert day["revenue"] == pytest.approx(3 * REVENUE_PER_MINUTE)
    assert (day["top_category"], day["top_country"], day["products_low"], day["products_critical"]) == \
        ("Electronics > Phones", "USA", 1, 1)


def test_monitoring_inventory_and_funnel_routes(api):
    anomalies = data(api.get("/api/v1/monitoring/anomalies", params={"kind": "high_value"}))
    assert [(row["anomaly_id"], row["score"], row["amount"]) for row in anomalies] == [(ANOMALY_ID, 0.9, 7500.0)]
    assert len(data(api.get("/api/v1/monitoring/anomalies", params={"min_score": 0.5}))) == 2
    exported = api.get("/api/v1/monitoring/anomalies", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("anomaly_id,kind,score") and len(lines) == 3 and "T-seeded-1" in lines[1]

    streaming = data(api.get("/api/v1/monitoring/streaming"))
    assert [(row["query_name"], row["status"], row["lag_records"]) for row in streaming] == \
        [("sales_metrics.windows", "running", 35)]

    short = data(api.get("/api/v1/inventory/low-stock"))
    assert [(row["product_id"], row["state"], row["stock"]) for row in short] == \
        [(CRITICAL_PRODUCT, "critical", 3), (LOW_PRODUCT, "low", 8)]
    assert [row["product_id"] for row in data(api.get("/api/v1/inventory/low-stock", params={"state": "low"}))] == \
        [LOW_PRODUCT]
    history = data(api.get(f"/api/v1/inventory/{CRITICAL_PRODUCT}/history"))
    assert [row["stock_after"] for row in history] == [3, 6]

    hour = data(api.get("/api/v1/funnel/hourly"))[0]
    assert [hour[stage] for stage in ("sessions", "viewed", "carted", "checked_out", "purchased")] == [3, 3, 2, 1, 1]
    abandoned = data(api.get("/api/v1/funnel/abandonment"))
    assert [(row["abandoned_carts"], row["abandoned_value"]) for row in abandoned] == [(1, 45.10)]
    assert data(api.get("/api/v1/funnel/abandoned-carts"))[0]["categories"] == ["Home > Kitchen"]


def test_warehouse_routes(api):
    segments = data(api.get("/api/v1/customers/segments/distribution"))
    assert [(row["segment"], row["customers"], row["share"]) for row in segments] == \
        [("Champions", 2, 0.6667), ("At Risk", 1, 0.3333)]
    champions = api.get("/api/v1/customers/segments", params={"segment": "Champions", "limit": 1}).json()
    assert [row["user_id"] for row in champions["data"]] == ["U00000001"] and champions["next_offset"] == 1
    assert data(api.get("/api/v1/customers/U00000003/history"))[0]["rfm_segment"] == "At Risk"
    assert api.get("/api/v1/customers/U-unknown/history").json()["message"] == "no rows match these filters"

    assert [row["product_id"] for row in data(api.get("/api/v1/products/performance"))] == ["P000001", "P000002"]
    top = data(api.get("/api/v1/products/top-performers", params={"metric": "units_sold", "limit": 1}))
    assert [(row["rank"], row["product_id"], row["units_sold"]) for row in top] == [(1, "P000001", 20)]
    assert data(api.get("/api/v1/products/performance", params={"date": "2026-11-29"})) == []

    trends = data(api.get("/api/v1/trends/sales"))
    assert [(row["period_start"][:10], row["revenue"], row["revenue_growth"]) for row in trends] == \
        [("2026-11-30", 1250.0, 0.25), ("2026-11-29", 1000.0, None)]


@pytest.mark.parametrize("route, params", [
    ("/api/v1/sales/metrics", {"limit": 0}),
    ("/api/v1/sales/metrics", {"limit": 100_000}),
    ("/api/v1/sales/metrics", {"offset": -1}),
    ("/api/v1/monitoring/anomalies", {"offset": 2**63}),
    ("/api/v1/sales/metrics", {"granularity": "2m"}),
    ("/api/v1/sales/metrics", {"since": "yesterday"}),
    ("/api/v1/sales/summary", {"minutes": 0}),
    ("/api/v1/monitoring/anomalies", {"kind": "fraud"}),
    ("/api/v1/monitoring/anomalies", {"min_score": 2}),
    ("/api/v1/inventory/low-stock", {"state": "ok"}),
    ("/api/v1/products/performance", {"date": "2026-13-01"}),
    ("/api/v1/products/top-performers", {"metric": "price"}),
    ("/api/v1/trends/sales", {"granularity": "hourly"}),
    ("/api/v1/trends/sales", {"format": "xml"}),
    ("/api/v1/sales/metrics", {"country": "U\x00K"}),  # PostgreSQL text cannot hold it
    ("/api/v1/sales/metrics", {"until": "0001-01-01T00:00:00+01:00"}),  # before year 1 in UTC
])
def test_a_bad_parameter_is_a_422_naming_it(api, route, params):
    response = api.get(route, params=params)
    assert response.status_code == 422, response.text
    assert any(name in response.text for name in (*params, "format"))


def test_metrics_count_requests_by_route(api):
    api.get("/api/v1/sales/summary")
    api.get("/api/v1/sales/summary", headers={KEY_HEADER: "wrong"})
    text = api.get("/metrics").text
    assert 'globalmart_api_requests_total{method="GET",route="/api/v1/sales/summary",status="200"} 1.0' in text
    assert 'globalmart_api_requests_total{method="GET",route="/api/v1/sales/summary",status="401"} 1.0' in text
    assert 'globalmart_api_request_seconds_count{method="GET",route="/api/v1/sales/summary"} 2.0' in text


@pytest.fixture
def marts_env(stream_env):
    """Seeded marts only: the cached routes read no warehouse."""
    seed_marts(stream_env)
    return stream_env


def with_cache(settings, seconds: float):
    return settings.model_copy(update={"api": settings.api.model_copy(update={"cache_seconds": seconds})})


def test_the_summary_is_kept_for_cache_seconds_and_read_again_after(marts_env):
    route = "/api/v1/monitoring/dashboard"
    with client_for(with_cache(marts_env, 300)) as kept, client_for(with_cache(marts_env, 0)) as uncached:
        first = kept.get(route)
        assert first.headers["Age"] == "0" and first.headers["Cache-Control"] == "private, max-age=300"
        with db.connect(marts_env) as conn, conn.cursor() as cur:  # the streaming app adds a sale to the hour
            cur.execute("UPDATE sales_window_metrics SET revenue = revenue + 1000 "
                        "WHERE granularity = '1h' AND category = 'ALL' AND country = 'USA'")
        again = kept.get(route)
        assert again.json() == first.json() and again.headers["Age"] in ("0", "1")
        assert uncached.get(route).json()["data"][0]["revenue"] == pytest.approx(first.json()["data"][0]["revenue"] + 1000)
        assert "Age" not in uncached.get(route).headers
        # a kept answer still needs the key, and counts under its route
        assert kept.get(route, headers={KEY_HEADER: "not-the-key"}).status_code == 401
        assert kept.get(route, headers={KEY_HEADER: ""}).status_code == 401
        assert ('globalmart_api_requests_total{method="GET",route="/api/v1/monitoring/dashboard",status="200"} 2.0'
                in kept.get("/metrics").text)
        # other parameters are other answers
        assert kept.get("/api/v1/sales/metrics", params={"limit": 1}).json()["count"] == 1
        assert kept.get("/api/v1/sales/metrics", params={"limit": 2}).json()["count"] == 2


def test_requests_arriving_while_the_summary_is_read_share_that_read(marts_env):
    reads = []
    app = create_app(with_cache(marts_env, 300))
    original = app.state.read_model.postgres

    def counted():
        reads.append(1)
        return original()

    app.state.read_model.postgres = counted

    async def many() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {KEY_HEADER: marts_env.api.key.get_secret_value()}
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client:
            return await asyncio.gather(*(client.get("/api/v1/monitoring/dashboard") for _ in range(20)))

    answers = asyncio.run(many())
    app.state.read_model.close()
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.text for answer in answers}) == 1
    assert len(reads) == 1


def test_health_answers_at_once_when_the_warehouse_hangs(stream_env):
    """A MongoDB that accepts connections and never answers (FerretDB with its pool exhausted did
    that): health says so within its budget instead of holding a thread, and data routes still answer."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = stream_env.model_copy(update={"mongo": stream_env.mongo.model_copy(update={"port": silent.getsockname()[1]})})
        with client_for(hung) as client:
            started = time.monotonic()
            body = client.get("/api/v1/health").json()
            assert time.monotonic() - started < 3, body
            assert body["status"] == "degraded" and body["postgres"] == "ok", body
            assert body["warehouse"] == "no answer within 1.5 s"
            assert client.get("/api/v1/sales/summary").status_code == 200
