"""The settings cluster mode adds, and what they change: Kafka's broker list and replication,
MongoDB's credentials, the jars' folder, Spark's bind address. Local defaults stay as they were."""

from __future__ import annotations

import json

import pytest

from globalmart.kafka_admin import topic_config
from globalmart.platform.airflow_env import connections
from globalmart.settings import Settings
from globalmart.spark import submit_environment

pytestmark = pytest.mark.cluster


def test_local_defaults_are_unchanged():
    settings = Settings(_env_file=None)
    assert settings.kafka.bootstrap_servers == f"{settings.kafka.host}:{settings.kafka.port}"
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (1, 1)
    assert settings.mongo.uri == f"mongodb://{settings.mongo.host}:{settings.mongo.port}/"
    assert "login" not in connections(settings)["mongo_default"]
    assert settings.jars_dir == settings.state_dir / "jars"
    assert submit_environment(settings)["SPARK_LOCAL_IP"] == "127.0.0.1"


def test_cluster_settings_reach_clients_and_connections(monkeypatch, tmp_path):
    monkeypatch.setenv("GLOBALMART_KAFKA__BOOTSTRAP", "kafka-1:9092,kafka-2:9092,kafka-3:9092")
    monkeypatch.setenv("GLOBALMART_KAFKA__MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("GLOBALMART_MONGO__USER", "globalmart")
    monkeypatch.setenv("GLOBALMART_MONGO__PASSWORD", "p@ss/word:1")
    monkeypatch.setenv("GLOBALMART_JARS_DIR", str(tmp_path))
    monkeypatch.setenv("GLOBALMART_SPARK__LOCAL_IP", "")
    settings = Settings(_env_file=None)

    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    kafka = connections(settings)["kafka_default"]
    assert kafka["extra"]["bootstrap.servers"] == settings.kafka.bootstrap_servers
    assert topic_config(settings.kafka.transactions, settings.kafka.min_insync_replicas)["min.insync.replicas"] == "2"

    # the password is escaped in the URI and handed to the MongoHook as the connection's own
    assert settings.mongo.uri == "mongodb://globalmart:p%40ss%2Fword%3A1@127.0.0.1:27017/"
    mongo = json.loads(json.dumps(connections(settings)["mongo_default"]))
    assert (mongo["login"], mongo["password"], mongo["extra"]["authSource"]) == ("globalmart", "p@ss/word:1", "admin")

    assert settings.spark_jars == sorted((tmp_path / "spark").glob("*.jar"))
    assert "SPARK_LOCAL_IP" not in submit_environment(settings)


def test_the_mongo_hook_authenticates_against_admin(monkeypatch):
    """The provider's hook builds its client from that connection: credentials in the URI, the
    admin database as the authentication source."""
    from airflow.models.connection import Connection
    from airflow.providers.mongo.hooks.mongo import MongoHook

    settings = Settings(_env_file=None, mongo={"host": "mongodb", "user": "globalmart", "password": "s3cret"})
    conn = connections(settings)["mongo_default"]
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_CLUSTER_PROBE", json.dumps(conn))
    hook = MongoHook(mongo_conn_id="mongo_cluster_probe")
    assert hook.uri == "mongodb://globalmart:s3cret@mongodb:27017/globalmart"
    client = hook.get_conn()  # connects lazily: nothing is sent
    try:
        assert client.options.pool_options._credentials.source == "admin"
    finally:
        client.close()
