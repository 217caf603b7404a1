"""Secrets backend for the DAG policy test: any connection or variable lookup raises.

Used only while parsing DAG files, to prove that no DAG reads connections or variables at
parse time (that would hit the secrets backend / metadata DB on every parse).
"""

from airflow.secrets import BaseSecretsBackend


class ParseTimeLookup(RuntimeError):
    pass


class ForbidLookupsBackend(BaseSecretsBackend):
    def get_conn_value(self, conn_id):
        raise ParseTimeLookup(f"connection {conn_id!r} looked up at DAG parse time")

    def get_connection(self, conn_id):
        raise ParseTimeLookup(f"connection {conn_id!r} looked up at DAG parse time")

    def get_variable(self, key):
        raise ParseTimeLookup(f"variable {key!r} looked up at DAG parse time")
