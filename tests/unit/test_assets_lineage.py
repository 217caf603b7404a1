"""Lineage as Airflow Assets: topics → raw archiver → lake → daily_batch's publish → every
warehouse collection, with no credentials in any URI."""

from pydantic import SecretStr

from globalmart.assets import LAKE_TOPICS, WAREHOUSE_SOURCES, lake_datasets, warehouse_collections
from globalmart.dag_parsing import parse_dag_files
from globalmart.settings import Settings
from globalmart.warehouse.sources import TABLES


def names(assets) -> set[str]:
    return {asset.name for asset in assets}


def test_every_published_table_is_an_asset_the_same_in_every_environment():
    """A sandbox's locations (another lake, database) name the same assets: Airflow keeps one
    asset per name and URI, and a second URI for a name would make it inactive."""
    settings = Settings()
    sandbox = settings.model_copy(update={
        "lake_dir": settings.lake_dir.parent / "sandbox_lake",
        "mongo": settings.mongo.model_copy(update={"database": "sandbox", "user": "warehouse",
                                                   "password": SecretStr("s3cret")})})
    assert set(WAREHOUSE_SOURCES) == set(TABLES)
    for make in (warehouse_collections, lake_datasets):
        assert [(a.name, a.uri) for a in make(settings)] == [(a.name, a.uri) for a in make(sandbox)]
    assert all("s3cret" not in a.uri and a.uri.startswith("x-globalmart://") for a in warehouse_collections(sandbox))
    assert names(lake_datasets(settings)) == {f"lake.{topic}" for topic in LAKE_TOPICS}


def test_the_archiver_writes_the_lake_and_publish_turns_it_into_the_warehouse():
    settings = Settings()
    dags = parse_dag_files().dags
    archiver = [task for task in dags["streaming_pipeline"].tasks if task.outlets]
    assert len(archiver) == 1 and names(archiver[0].outlets) == names(lake_datasets(settings))
    assert names(archiver[0].inlets) == {f"kafka.{topic}" for topic in LAKE_TOPICS}

    batch = dags["daily_batch"]
    publish = batch.get_task("publish")
    assert names(publish.inlets) == names(lake_datasets(settings)) | {"postgres.product_catalog"}
    assert names(publish.outlets) == {f"warehouse.{table}" for table in TABLES}
    # the completeness check records the archiver's progress on the lake's datasets
    assert names(batch.get_task("wait_for_complete_lake").outlets) == names(lake_datasets(settings))
