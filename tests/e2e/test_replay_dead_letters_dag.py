"""replay_dead_letters with dag.test(): the trigger form reaches the replay (dry run, one chosen dead letter)."""

import json
import uuid
from datetime import UTC, datetime

import psycopg2

from globalmart.dag_parsing import parse_dag_files


def test_the_form_selects_one_dead_letter_and_a_dry_run_changes_nothing(platform):
    coordinates = (f"e2e_replay_{uuid.uuid4().hex[:8]}", 0, 7)
    fixed = {"schema_version": 1, "event_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "event_id": "E-e2e-replay", "product_id": "P000001",
             "action": "restock", "quantity": 3}
    with psycopg2.connect(platform.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, source_topic, stage, reason, payload) "
            "VALUES (%s, %s, %s, %s, 'generator', 'quantity: Input should be greater than or equal to 1', %s)",
            (*coordinates, platform.kafka.inventory.name, json.dumps(fixed)),
        )
    try:
        dead_letter_id = ":".join(map(str, coordinates))
        dag = parse_dag_files().dags["replay_dead_letters"]
        run = dag.test(run_conf={"ids": [dead_letter_id], "dry_run": True, "limit": 10})
        (ti,) = run.get_task_instances()
        assert run.state == "success", ti.state
        report = ti.xcom_pull(task_ids="replay_dead_letters")
        assert report["dry_run"] is True and report["examined"] == 1
        assert report["republished_ids"] == [dead_letter_id]
        with psycopg2.connect(platform.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT replayed_at, revalidated_at FROM dead_letters WHERE (kafka_topic, kafka_partition, kafka_offset) "
                        "= (%s, %s, %s)", coordinates)
            assert cur.fetchone() == (None, None)
    finally:
        with psycopg2.connect(platform.postgres.dsn()) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM dead_letters WHERE kafka_topic = %s", (coordinates[0],))
