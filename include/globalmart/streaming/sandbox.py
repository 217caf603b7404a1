"""A private corner of the running platform: its own topics, database, lake and checkpoints.

Benchmarks, quality runs and tests use one so that they neither read nor disturb the live
topics and marts; everything is removed on exit.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
