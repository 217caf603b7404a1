"""The read side of GlobalMart: one query layer for the read API and the dashboards.

- :mod:`.marts`: the real-time marts in PostgreSQL (sales windows, anomalies, stock, sessions,
  the streaming apps' health);
- :mod:`.warehouse`: the MongoDB warehouse of the daily batch (RFM, product performance, trends);
- :mod:`.airflow`: the last runs of each DAG, through Airflow's REST API.

Every read returns a :class:`Result`: rows, the source's name, ``as_of`` (its newest data), and
a message when there is nothing to show ("no data yet: run X" for an empty source).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.pool import ThreadedConnectionPool
from pymongo import MongoClient
from pymongo.database import Database

from globalmart.readmodel.result import Result
from globalmart.settings import Settings

__all__ = ["ReadModel", "Result"]


class ReadModel:
    """Connections of a reader: a small PostgreSQL pool (read-only sessions) and a MongoDB client.
    Nothing connects until the first read, so a service starts while a database is still down."""

    def __init__(self, settings: Settings, postgres_connections: int = 4, wait_seconds: float = 10.0):
        self.settings = settings
        self._pool_size = postgres_connections
        # the pool refuses a borrower beyond its size (PoolError): more threads than connections
        # (a web server's thread pool under load) wait for one here instead
        self._free_connections = threading.BoundedSemaphore(postgres_connections)
        self._wait_seconds = wait_seconds
        self._pool: ThreadedConnectionPool | None = None
        # a bounded wait on every MongoDB read: without one, a warehouse that stops answering holds
        # each reading thread forever, and a web server runs out of threads for every other route
        self._mongo = MongoClient(settings.mongo.uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=30_000,
                                  connect=False)

    @contextmanager
    def postgres(self) -> Iterator:
        if not self._free_connections.acquire(timeout=self._wait_seconds):
            raise psycopg2.OperationalError(
                f"all {self._pool_size} PostgreSQL connections stayed busy for {self._wait_seconds:.0f} s")
        try:
            with self._borrowed() as conn:
                yield conn
        finally:
            self._free_connections.release()

    @contextmanager
    def _borrowed(self) -> Iterator:
        if self._pool is None:
            self._pool = ThreadedConnectionPool(0, self._pool_size, self.settings.postgres.dsn(),
                                                application_name="globalmart-readmodel")
        conn = self._pool.getconn()
        try:
            if conn.autocommit is False:
                conn.set_session(readonly=True, autocommit=True)
            yield conn
        except Exception:
            # a broken connection must not go back to the pool
            self._pool.putconn(conn, close=conn.closed != 0)
            raise
        else:
            self._pool.putconn(conn)

    @property
    def warehouse(self) -> Database:
        return self._mongo[self.settings.mongo.database]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.closeall()
        self._mongo.close()
