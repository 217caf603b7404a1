"""A private corner of the platform per test: its own topics, database, lake and checkpoints."""

from __future__ import annotations

import uuid

import pytest

from globalmart import db
from globalmart.kafka_admin import delete_topics, ensure_topics, with_topic_prefix
from globalmart.platform.launcher import create_database, drop_database


@pytest.fixture
def stream_env(platform, tmp_path):
    """Settings whose topics, PostgreSQL database (migrated) and lake belong to this test alone."""
    tag = uuid.uuid4().hex[:8]
    settings = with_topic_prefix(platform, f"test_{tag}_")
    database = f"globalmart_test_{tag}"
    settings = settings.model_copy(update={
        "postgres": settings.postgres.model_copy(update={"database": database}),
        "lake_dir": tmp_path / "lake",
    })
    ensure_topics(settings)
    create_database(settings, database)
    db.upgrade(settings)
    yield settings
    drop_database(settings, database)
    delete_topics(settings, [t.name for t in settings.kafka.topics()])
