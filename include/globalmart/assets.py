"""The platform's data as Airflow Assets, so the Assets view shows where each table comes from.

    Kafka topic ──(streaming_pipeline: the raw archiver)──► lake dataset
    lake datasets + PostgreSQL product_catalog ──(daily_batch: publish)──► warehouse collections

- ``kafka.<topic>``: the event topics the raw archiver reads;
- ``lake.<topic>``: the lake's Parquet dataset of a topic. Its producers are the streaming task
  that runs the raw archiver, and daily_batch's ``wait_for_complete_lake``, which records an
  event when the archiver's committed progress shows a day archived whole;
- ``postgres.product_catalog``: the shop's products (the name, category and price of ``dim_product``);
- ``warehouse.<collection>``: a MongoDB collection of the warehouse, produced by daily_batch's
  ``publish``, whose inlets are the lake datasets and the catalog. Each collection's ``extra``
  names what it is built from.

URIs are logical (``x-globalmart://<layer>/<name>``), the same in every environment: Airflow
keeps one asset per name and URI, and a DAG parsed with another environment's locations (a
test sandbox, a benchmark, a cluster) would otherwise make the platform's assets inactive and
fail the tasks that name them. Where each one lives is in the settings.
"""

from __future__ import annotations

from airflow.sdk import Asset

from globalmart.settings import Settings

SCHEME = "x-globalmart"

LAKE_TOPICS = ("transactions", "product_views", "cart_events")
# each warehouse collection: the daily batch step that stages it and what it reads
WAREHOUSE_SOURCES = {
    "fact_sales": ("etl", ["lake.transactions"]),
    "dim_date": ("etl", ["the calendar and public holidays of the settings' countries"]),
    "dim_customer": ("rfm", ["lake.transactions", "the shop's customer registry (generator catalog)"]),
    "dim_product": ("etl", ["lake.transactions", "postgres.product_catalog", "the catalog's brands"]),
    "dim_geography": ("etl", ["settings: catalog.countries"]),
    "dim_payment_method": ("etl", ["settings: catalog.payment_methods"]),
    "customer_rfm": ("rfm", ["lake.transactions"]),
    "product_performance": ("products", ["lake.transactions", "lake.product_views", "lake.cart_events"]),
    "sales_trends": ("trends", ["lake.transactions"]),
}


def _asset(layer: str, name: str, **extra) -> Asset:
    return Asset(name=f"{layer}.{name}", uri=f"{SCHEME}://{layer}/{name}", group=layer, extra=extra)


def kafka_topic(settings: Settings, key: str) -> Asset:
    return _asset("kafka", key)


def lake_dataset(settings: Settings, key: str) -> Asset:
    return _asset("lake", key, format="parquet", partitioned_by="event_date, event_hour", writer="raw_archiver")


def product_catalog(settings: Settings) -> Asset:
    return _asset("postgres", "product_catalog")


def warehouse_collection(settings: Settings, collection: str) -> Asset:
    step, sources = WAREHOUSE_SOURCES[collection]
    return _asset("warehouse", collection, built_by=f"daily_batch.{step}", sources=sources,
                  published_by="daily_batch.publish")


def lake_datasets(settings: Settings) -> list[Asset]:
    return [lake_dataset(settings, key) for key in LAKE_TOPICS]


def warehouse_collections(settings: Settings) -> list[Asset]:
    return [warehouse_collection(settings, collection) for collection in WAREHOUSE_SOURCES]
