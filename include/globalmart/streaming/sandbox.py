"""A private corner of the running platform: its own topics, database, lake and checkpoints.

Benchmarks, quality runs and tests use one so that they neither read nor disturb the live
topics and marts; everything is removed on exit.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from globalmart import db
from globalmart.kafka_admin import delete_topics, ensure_topics, with_topic_prefix
from globalmart.platform.launcher import create_database, drop_database
from globalmart.settings import Settings


@contextmanager
def sandbox(settings: Settings, name: str, keep: bool = False) -> Iterator[tuple[Settings, Path]]:
    """(settings of the sandbox, its working folder for checkpoints and logs)."""
    tag = f"{name}_{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix=f"globalmart_{tag}_"))
    private = with_topic_prefix(settings, f"{tag}_")
    private = private.model_copy(update={
        "postgres": private.postgres.model_copy(update={"database": f"globalmart_{tag}"}),
        "lake_dir": folder / "lake",
    })
    ensure_topics(private)
    create_database(private, private.postgres.database)
    try:
        db.upgrade(private)
        yield private, folder
    finally:
        if not keep:
            drop_database(private, private.postgres.database)
            delete_topics(private, [t.name for t in private.kafka.topics()])
            shutil.rmtree(folder, ignore_errors=True)


def publish_closing_events(settings: Settings, at: datetime) -> None:
    """One view and one cart event of a marker shopper at ``at``: with ``at`` past the end of
    the traffic, the watermark passes every session and cart, so all of them close."""
    from confluent_kafka import Producer

    moment = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    shopper = {"schema_version": 1, "event_time": moment, "user_id": "U-closing", "session_id": "S-closing", "country": settings.catalog.countries[0]}
    records = {
        "product_views": shopper | {"event_id": "E-closing-view", "product_id": "P000001", "category": "closing",
                                    "action": "view", "duration_seconds": 0},
        "cart_events": shopper | {"event_id": "E-closing-cart", "action": "checkout", "quantity": 0, "cart_value": 0.0},
    }
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for key, event in records.items():
        producer.produce(getattr(settings.kafka, key).name, key=b"U-closing", value=json.dumps(event).encode())
    if producer.flush(10):
        raise RuntimeError("closing events not delivered")
