"""Replay dead letters (manual trigger): re-validate them and re-publish the ones that now pass."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from globalmart.dag_defaults import default_args
from globalmart.dead_letters import ReplayRequest
from globalmart.events import TOPIC_CONTRACTS
from globalmart.settings import get_settings

settings = get_settings()
replayable_topics = [getattr(settings.kafka, key).name for key in TOPIC_CONTRACTS if key != "dead_letters"]
replayable_topics.append(settings.kafka.alerts.name)

with DAG(
    dag_id="replay_dead_letters",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    tags=["dead-letters", "kafka", "action"],
    params={
        "topic": Param(None, type=["null", "string"], enum=[None, *replayable_topics],
                       description="Only dead letters of this source topic. Empty: every topic."),
        "detected_from": Param(None, type=["null", "string"], format="date-time",
                               description="Only dead letters detected at or after this time (UTC). Empty: no lower bound."),
        "detected_to": Param(None, type=["null", "string"], format="date-time",
                             description="Only dead letters detected before this time (UTC). Empty: no upper bound."),
        "ids": Param([], type="array", items={"type": "string", "pattern": r"^.+:\d+:\d+$"},
                     description="Only these dead letters, one per line as topic:partition:offset (the Kafka "
                     "coordinates in the dead_letters table). Empty: any that match the other filters."),
        "dry_run": Param(True, type="boolean",
                         description="Only report what would be re-published and what still fails; send and change nothing."),
        "limit": Param(ReplayRequest.limit, type="integer", minimum=1, maximum=100_000,
                       description="At most this many dead letters, oldest first."),
    },
    doc_md="""
### Replay dead letters

Records that broke their topic's contract wait in PostgreSQL's `dead_letters` table with the
reason. After fixing the cause — correcting the payload in the table, or deploying a contract
that accepts it — press **Trigger**, pick the dead letters (topic, detection time range or
ids) and untick **dry_run**:

- each selected dead letter is checked against the current contract (`globalmart.events`, or
  the alert message model for the alerts topic);
- those that pass are re-published to their source topic and marked `replayed_at`: a second
  replay never sends them again;
- those that still fail keep their row with the current reason (the first one stays in
  `original_reason`).

**dry_run** (ticked by default) only reports. The result (XCom and log) gives counts per topic,
the most common remaining reasons and the ids re-published. Logic:
`globalmart.dead_letters.replay`.
""",
) as dag:

    @task(execution_timeout=timedelta(hours=1))
    def replay_dead_letters(params: dict | None = None) -> dict:
        from globalmart.dead_letters import replay, request_from_params

        request = request_from_params(params or {})
        print(f"replaying: {request}")
        report = replay(settings, request).as_dict()
        print(f"result: {report}")
        return report

    replay_dead_letters()
