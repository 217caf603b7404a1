"""Alembic environment of the ``globalmart`` PostgreSQL database (the real-time marts).

Migrations are plain SQL in ``versions/``; run them with ``globalmart db upgrade`` (the local
platform does it on ``make run``). The connection is handed over by ``globalmart.db``.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
