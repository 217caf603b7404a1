import json

from globalmart.platform.airflow_env import airflow_environment, connections
from globalmart.settings import Settings, env_overrides, load_settings


def test_env_overrides_nested_settings(monkeypatch):
    monkeypatch.setenv("GLOBALMART_KAFKA__PORT", "19092")
    monkeypatch.setenv("GLOBALMART_THRESHOLDS__LOW_STOCK", "25")
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.thresholds.low_stock == 25


def test_a_child_process_given_env_overrides_sees_the_sandbox_paths(monkeypatch, tmp_path):
    """A benchmark's spark-submits must write their lake, staging and Data Docs in its sandbox."""
    sandbox = Settings().model_copy(update={"lake_dir": tmp_path / "lake", "warehouse_dir": tmp_path / "warehouse",
                                            "great_expectations_dir": tmp_path / "gx"})
    for name, value in env_overrides(sandbox).items():
        monkeypatch.setenv(name, value)
    child = load_settings()
    assert (child.lake_dir, child.warehouse_dir, child.great_expectations_dir) == (
        tmp_path / "lake", tmp_path / "warehouse", tmp_path / "gx")


def test_seed_thresholds_are_the_defaults():
    t = Settings().thresholds
    assert (t.high_value_transaction, t.unusual_quantity, t.rapid_transactions_per_minute) == (5000.0, 10, 5)
    assert (t.low_stock, t.critical_stock, t.anomaly_alert_score) == (10, 5, 0.8)
    assert (t.cart_abandonment_minutes, t.session_timeout_minutes, t.abandonment_spike_per_hour) == (15, 30, 20)


def test_topics_come_from_settings(monkeypatch):
    monkeypatch.setenv("GLOBALMART_KAFKA__TRANSACTIONS__PARTITIONS", "6")
    topics = {t.name: t for t in load_settings().kafka.topics()}
    assert {"transactions", "product_views", "cart_events", "alerts", "dead_letters"} <= set(topics)
    assert topics["transactions"].partitions == 6


def test_generated_secrets_are_private_and_reach_airflow(settings):
    assert settings.secrets_file.stat().st_mode & 0o077 == 0
    env = airflow_environment(settings)
    password = settings.postgres.password.get_secret_value()
    assert len(password) >= 16
    assert password in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert json.loads(env["AIRFLOW_CONN_POSTGRES_DEFAULT"])["password"] == password


def test_every_connection_the_project_uses_is_defined(settings):
    conns = connections(settings)
    assert set(conns) == {"kafka_default", "spark_default", "postgres_default", "mongo_default", "smtp_default",
                          settings.alerting.watcher_conn_id}
    # the alerts DAG's watcher: the provider's shared-stream trigger refuses auto-commit
    assert conns[settings.alerting.watcher_conn_id]["extra"]["enable.auto.commit"] == "false"
    assert conns["spark_default"]["host"] == "local[*]"
    assert conns["kafka_default"]["extra"]["bootstrap.servers"] == settings.kafka.bootstrap_servers
