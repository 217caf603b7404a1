"""The platform_smoke walking skeleton: one tiny flow through every service.

Kafka (produce) → Spark (read Kafka, write PostgreSQL over JDBC) → PostgreSQL (check rows)
→ MongoDB wire protocol (record the run) → SMTP (email) → inbox API (check the email).
Each function checks the previous step's result and raises with what it saw.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx

SMOKE_TABLE = "platform_smoke_events"
DDL_PATH = Path(__file__).with_name("sql") / "platform_smoke.sql"
MONGO_COLLECTION = "platform_smoke_runs"


class SmokeCheckFailed(AssertionError):
    """A step of the walking skeleton did not find what the previous step produced."""


def smoke_events(run_id: str, count: int | str):
    """Producer function for ProduceToTopicOperator: ``count`` JSON events keyed by run id."""
    produced_at = datetime.now(timezone.utc).isoformat()
    for seq in range(int(count)):
        event = {
            "run_id": run_id,
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/{seq}")),  # stable across retries
            "seq": seq,
            "amount": round(10 + seq * 1.25, 2),
            "produced_at": produced_at,
        }
        yield run_id, json.dumps(event)


def count_loaded_rows(run_id: str, expected: int | str, postgres_conn_id: str = "postgres_default") -> int:
    """Rows the Spark job loaded for this run; raises unless exactly ``expected``."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    rows = PostgresHook(postgres_conn_id=postgres_conn_id).get_first(
        f"SELECT count(*), count(DISTINCT seq) FROM {SMOKE_TABLE} WHERE run_id = %s", parameters=(run_id,)
    )
    loaded, distinct = rows
    if loaded != int(expected) or distinct != int(expected):
        raise SmokeCheckFailed(f"expected {expected} rows for run {run_id!r}, found {loaded} ({distinct} distinct)")
    return loaded


def record_run_in_mongo(run_id: str, rows: int, mongo_conn_id: str = "mongo_default") -> dict:
    """Upsert one document describing the run, read it back, and return it."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    hook = MongoHook(mongo_conn_id=mongo_conn_id)
    document = {"_id": run_id, "rows_loaded": rows, "recorded_at": datetime.now(timezone.utc)}
    hook.replace_one(MONGO_COLLECTION, document, filter_doc={"_id": run_id}, upsert=True)
    stored = hook.find(MONGO_COLLECTION, {"_id": run_id}, find_one=True)
    if not stored or stored.get("rows_loaded") != rows:
        raise SmokeCheckFailed(f"document for run {run_id!r} not read back from Mongo: {stored!r}")
    return {"run_id": stored["_id"], "rows_loaded": stored["rows_loaded"]}


def email_subject(run_id: str) -> str:
    return f"[GlobalMart] platform smoke run {run_id} passed"


def email_body(run_id: str, rows: int | str) -> str:
    return (
        f"<h2>Platform smoke run passed</h2><p>Run <code>{run_id}</code>: {rows} events went "
        "Kafka → Spark → PostgreSQL, a document was written to MongoDB, and this email was sent over SMTP.</p>"
    )


def wait_for_email(inbox_url: str, subject: str, timeout: float = 60) -> dict:
    """Poll the inbox's REST API (MailDev ``GET /email``) until a message with ``subject`` arrives."""
    deadline = time.monotonic() + timeout
    while True:
        messages = httpx.get(f"{inbox_url}/email", timeout=10).raise_for_status().json()
        found = [m for m in messages if m.get("subject") == subject]
        if found:
            message = found[-1]
            return {"subject": message["subject"], "to": [t["address"] for t in message.get("to", [])]}
        if time.monotonic() > deadline:
            raise SmokeCheckFailed(f"no email with subject {subject!r} in {inbox_url} after {timeout:.0f} s")
        time.sleep(1)
