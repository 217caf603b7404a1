"""The alerts DAG's watcher and its task read the alerts topic through different, manual-commit groups."""

from globalmart.dag_parsing import DAGS_DIR
from globalmart.platform.airflow_env import connections
from globalmart.settings import Settings


def test_the_watcher_connection_commits_by_hand_in_a_group_of_its_own():
    settings = Settings()
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_DIR), collect_dags=False)
    bag.process_file(str(DAGS_DIR / "alerts.py"))
    dag = bag.dags["alerts"]
    (watcher,) = dag.timetable.asset_condition.watchers  # the one asset: the alerts topic
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath.endswith("KafkaSharedStreamTrigger")  # commits only once the asset event is stored
    assert kwargs["topics"] == [settings.kafka.alerts.name]

    extra = connections(settings)[kwargs["kafka_config_id"]]["extra"]
    # the shared-stream trigger refuses to run with auto-commit on
    assert extra["enable.auto.commit"] == "false"
    assert extra["group.id"] == settings.alerting.watcher_group != settings.alerting.consumer_group
    assert dag.max_active_runs == 1
