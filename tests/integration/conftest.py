"""A private corner of the platform per test: its own topics, database and lake."""

from __future__ import annotations

import pytest

from globalmart.streaming.sandbox import sandbox


@pytest.fixture
def stream_env(platform):
    """Settings whose topics, PostgreSQL database (migrated) and lake belong to this test alone."""
    with sandbox(platform, "test") as (settings, _folder):
        yield settings
