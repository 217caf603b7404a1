"""The platform's data as Airflow Assets, so the Assets view shows where each table comes from.

    Kafka topic ──(streaming_pipeline: the raw archiver)──► lake dataset
    lake datasets + PostgreSQL product_catalog ──(daily_batch: publish)──► warehouse collections

- ``kafka.<topic>``: the event topics the raw archiver reads (``kafka://<bootstrap>/<topic>``);
- ``lake.<topic>``: the lake's Parquet dataset of a topic (``file://<lake_dir>/<topic>``). Its
  producers are the streaming task that runs the raw archiver, and daily_batch's
  ``wait_for_complete_lake``, which records an event when the archiver's committed progress
  shows a day archived whole;
- ``postgres.product_catalog``: the shop's products (the name, category and price of ``dim_product``);
- ``warehouse.<collection>``: a MongoDB collection of the warehouse
  (``mongodb://<host>:<port>/<database>/<collection>``, never with credentials), produced by
  daily_batch's ``publish``, whose inlets are the lake datasets and the catalog. Each
  collection's ``extra`` names what it is built from.
"""

from __future__ import annotations

from airflow.sdk import Asset

from globalmart.settings import Settings

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


def kafka_topic(settings: Settings, key: str) -> Asset:
    name = getattr(settings.kafka, key).name
    server = settings.kafka.bootstrap_servers.split(",")[0]
    return Asset(name=f"kafka.{key}", uri=f"kafka://{server}/{name}", group="kafka")


def lake_dataset(settings: Settings, key: str) -> Asset:
    return Asset(name=f"lake.{key}", uri=f"file://{settings.lake_dir.resolve()}/{key}", group="lake",
                 extra={"format": "parquet", "partitioned_by": "event_date, event_hour", "writer": "raw_archiver"})


def product_catalog(settings: Settings) -> Asset:
    postgres = settings.postgres
    return Asset(name="postgres.product_catalog",
                 uri=f"postgres://{postgres.host}:{postgres.port}/{postgres.database}/public/product_catalog",
                 group="postgres")


def warehouse_collection(settings: Settings, collection: str) -> Asset:
    mongo = settings.mongo
    step, sources = WAREHOUSE_SOURCES[collection]
    return Asset(name=f"warehouse.{collection}",
                 uri=f"mongodb://{mongo.host}:{mongo.port}/{mongo.database}/{collection}", group="warehouse",
                 extra={"built_by": f"daily_batch.{step}", "from": sources, "published_by": "daily_batch.publish"})


def lake_datasets(settings: Settings) -> list[Asset]:
    return [lake_dataset(settings, key) for key in LAKE_TOPICS]


def warehouse_collections(settings: Settings) -> list[Asset]:
    return [warehouse_collection(settings, collection) for collection in WAREHOUSE_SOURCES]
