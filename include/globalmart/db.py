"""The ``globalmart`` PostgreSQL database: versioned migrations (Alembic) and connections."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import psycopg2
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import URL

from globalmart.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlalchemy_url(settings: Settings) -> URL:
    pg = settings.postgres
    return URL.create(
        "postgresql+psycopg2",
        username=pg.user,
        password=pg.password.get_secret_value() if pg.password else None,
        host=pg.host,
        port=pg.port,
        database=pg.database,
    )


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(settings: Settings, revision: str = "head") -> str:
    """Apply the migrations up to ``revision``; returns the revision the database is at."""
    engine = create_engine(sqlalchemy_url(settings))
    try:
        with engine.begin() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


@contextmanager
def connect(settings: Settings):
    """A psycopg2 connection to the globalmart database; commits on success, rolls back on error."""
    connection = psycopg2.connect(settings.postgres.dsn())
    try:
        with connection:
            yield connection
    finally:
        connection.close()
