"""Shared fixtures: Airflow environment, one local SparkSession, the running platform.

Airflow reads its configuration when first imported, so the environment the platform gives
its own processes is applied here, before any test module imports Airflow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from globalmart.platform.airflow_env import airflow_environment
from globalmart.platform.secrets import ensure_secrets
from globalmart.settings import load_settings

SETTINGS = ensure_secrets(load_settings())
os.environ.update(airflow_environment(SETTINGS))

TESTS_DIR = Path(__file__).parent
# py4j logs "closing" at interpreter exit, after pytest has closed its capture streams
logging.getLogger("py4j").setLevel(logging.WARNING)


def pytest_collection_modifyitems(items):
    """Mark each test by its folder: tests/unit → unit, tests/integration → integration, ..."""
    for item in items:
        kind = Path(item.fspath).relative_to(TESTS_DIR).parts[0]
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def settings():
    return SETTINGS


@pytest.fixture(scope="session")
def spark(settings):
    """One local SparkSession for every test, with the platform's connector jars."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("globalmart-tests")
        .config("spark.jars", ",".join(str(jar) for jar in settings.spark_jars))
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def platform(settings):
    """The local platform: reused when already up, otherwise started here and stopped after.

    Only a session that started the supervisor stops it: a service that is briefly down (a test
    restarting the triggerer, a slow health check) is started again, never a reason to stop a
    platform someone else is using."""
    from globalmart.platform import launcher
    from globalmart.platform.supervisor import Supervisor

    supervisor_was_running = Supervisor(settings).is_running()
    if not (supervisor_was_running and launcher.status(settings)):
        launcher.up(settings)  # starts only what is missing, then waits until every service answers
    yield settings
    if not supervisor_was_running:
        launcher.down(settings)
