"""Environment for every Airflow process (and for tests that run DAGs with ``dag.test()``).

Airflow reads its whole configuration and its connections from these variables, so the
local platform and the cluster differ only in settings, never in code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from globalmart.settings import PROJECT_ROOT, Settings


def _secret(value) -> str:
    return value.get_secret_value() if value is not None else ""


def connections(settings: Settings) -> dict[str, dict]:
    """The Airflow connections the project's DAGs use, by connection id."""
    pg = settings.postgres
    return {
        "kafka_default": {
            "conn_type": "kafka",
            "extra": {"bootstrap.servers": settings.kafka.bootstrap_servers},
        },
        # the alerts DAG's AssetWatcher: the provider's shared-stream trigger commits only after the
        # asset event is stored, and refuses a connection with auto-commit on
        settings.alerting.watcher_conn_id: {
            "conn_type": "kafka",
            "extra": {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": settings.alerting.watcher_group,
                "enable.auto.commit": "false",
                "auto.offset.reset": "latest",
            },
        },
        "spark_default": {"conn_type": "spark", "host": settings.spark.master},
        "postgres_default": {
            "conn_type": "postgres",
            "host": pg.host,
            "port": pg.port,
            "login": pg.user,
            "password": _secret(pg.password),
            "schema": pg.database,
        },
        "mongo_default": {
            "conn_type": "mongo",
            "host": settings.mongo.host,
            "port": settings.mongo.port,
            "schema": settings.mongo.database,
            "extra": {"srv": False, "ssl": False},
            # MongoDB with authentication (cluster): the user is one of the admin database's
            **(
                {"login": settings.mongo.user, "password": _secret(settings.mongo.password),
                 "extra": {"srv": False, "ssl": False, "authSource": "admin"}}
                if settings.mongo.user else {}
            ),
        },
        "smtp_default": {
            "conn_type": "smtp",
            "host": settings.smtp.host,
            "port": settings.smtp.port,
            "extra": {
                "disable_tls": True,
                "disable_ssl": True,
                "from_email": settings.smtp.sender,
                "timeout": 10,
                "retry_limit": 2,
            },
        },
    }


def airflow_home(settings: Settings) -> Path:
    return settings.state_dir / "airflow"


def passwords_file(settings: Settings) -> Path:
    return airflow_home(settings) / "simple_auth_manager_passwords.json"


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Variables to add to ``os.environ`` for Airflow (server processes, CLI and tests)."""
    pg = settings.postgres
    af = settings.airflow
    venv_bin = str(Path(sys.executable).parent)
    metadata_db = (
        f"postgresql+psycopg2://{pg.user}:{_secret(pg.password)}@{pg.host}:{pg.port}/{pg.airflow_database}"
    )
    env = {
        "AIRFLOW_HOME": str(airflow_home(settings)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(af.parallelism),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": _secret(af.fernet_key),
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "utc",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{af.url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{af.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__API__HOST": af.host,
        "AIRFLOW__API__PORT": str(af.port),
        "AIRFLOW__API__BASE_URL": af.url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret(af.jwt_secret),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.logs_dir / "airflow"),
        # the UI reads a running or deferred task's log from the log server (the `airflow-log-server`
        # service) at the host the task recorded: the platform's host, where that server listens
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(af.log_server_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(af.log_server_port),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "globalmart.platform.airflow_env.platform_host",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": af.host,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(af.scheduler_health_port),
        # Spark: spark-submit from the venv, driver and executors bound to loopback
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": settings.spark.local_ip,
    }
    for conn_id, conn in connections(settings).items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


def platform_host() -> str:
    """The host name Airflow records for a task and a triggerer (``[core] hostname_callable``): the
    address every platform service listens on, so the UI finds the log server there. The default
    (the machine's FQDN) may resolve to an address nothing listens on (Debian's 127.0.1.1)."""
    from globalmart.settings import get_settings

    return get_settings().airflow.host


def write_passwords_file(settings: Settings) -> None:
    """SimpleAuthManager reads the UI login from this file (generated password, mode 0600)."""
    path = passwords_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({settings.airflow.admin_user: _secret(settings.airflow.admin_password)}))
    path.chmod(0o600)
