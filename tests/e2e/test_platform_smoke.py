"""platform_smoke end to end with dag.test() against the real services."""

import httpx
import psycopg2
from pymongo import MongoClient

from globalmart import smoke
from globalmart.dag_parsing import parse_dag_files


def test_platform_smoke_touches_every_service(platform):
    bag = parse_dag_files()
    dag_run = bag.dags["platform_smoke"].test(run_conf={"events": 12})

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert set(states.values()) == {"success"}
    run_id = dag_run.run_id

    with psycopg2.connect(platform.postgres.dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT count(*), count(DISTINCT event_id), min(seq), max(seq), sum(amount) FROM {smoke.SMOKE_TABLE} WHERE run_id = %s",
            (run_id,),
        )
        rows, distinct, first, last, total = cur.fetchone()
    assert (rows, distinct, first, last) == (12, 12, 0, 11)
    assert float(total) == sum(10 + i * 1.25 for i in range(12))

    client = MongoClient(platform.mongo.uri, serverSelectionTimeoutMS=5000)
    document = client[platform.mongo.database][smoke.MONGO_COLLECTION].find_one({"_id": run_id})
    client.close()
    assert document["rows_loaded"] == 12

    inbox = httpx.get(f"{platform.smtp.inbox_url}/email", timeout=10).json()
    emails = [m for m in inbox if m["subject"] == smoke.email_subject(run_id)]
    assert len(emails) == 1
    assert "12 events" in emails[0]["html"]
    assert [t["address"] for t in emails[0]["to"]] == platform.smtp.alert_recipients
