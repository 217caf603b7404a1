"""What the local platform runs: one entry per server process, built from settings."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from globalmart.platform.airflow_env import airflow_environment
from globalmart.settings import ENV_PREFIX, PROJECT_ROOT, Settings

KAFKA_LOG4J_CONFIG = Path(__file__).with_name("kafka-log4j2.properties")


@dataclass(frozen=True)
class Port:
    number: int
    setting: str  # env var that changes it
    what: str


@dataclass(frozen=True)
class Service:
    name: str
    title: str
    command: list[str]
    ports: list[Port] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    run_as: str | None = None  # OS user (supervisord drops privileges when started as root)
    http_health: str | None = None  # URL that answers 200 once the service is ready
    stop_signal: str = "TERM"
    stop_wait_seconds: int = 30
    priority: int = 100


def postgres_bin_dir() -> Path:
    """Debian's server binaries (newest installed major version)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        found = shutil.which("postgres")
        if not found:
            raise RuntimeError("PostgreSQL server binaries not found: run `make setup`")
        return Path(found).resolve().parent
    return candidates[-1].parent


def postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root; run it as Debian's `postgres` user in that case."""
    return "postgres" if os.geteuid() == 0 else None


def postgres_dirs(settings: Settings) -> tuple[Path, Path]:
    base = settings.state_dir / "postgres"
    return base / "data", base / "run"


def kafka_dir(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def kafka_java_command(settings: Settings, main_class: str, *args: str, heap: str | None = None) -> list[str]:
    heap = heap or settings.kafka.heap
    return [
        "java",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J_CONFIG}",
        "-cp",
        str(settings.jars_dir / "kafka" / "*"),
        main_class,
        *args,
    ]


def services(settings: Settings) -> list[Service]:
    pg = settings.postgres
    pg_data, pg_run = postgres_dirs(settings)
    secret = pg.password.get_secret_value() if pg.password else ""
    airflow_env = airflow_environment(settings)
    airflow = str(Path(sys.executable).with_name("airflow"))
    return [
        Service(
            name="postgres",
            title="PostgreSQL",
            command=[
                str(postgres_bin_dir() / "postgres"),
                "-D", str(pg_data),
                "-c", f"listen_addresses={pg.host}",
                "-c", f"port={pg.port}",
                "-c", f"unix_socket_directories={pg_run}",
                "-c", "unix_socket_permissions=0700",
                "-c", "max_connections=200",
                "-c", "shared_buffers=256MB",
            ],
            ports=[Port(pg.port, f"{ENV_PREFIX}POSTGRES__PORT", "PostgreSQL")],
            run_as=postgres_os_user(),
            stop_signal="INT",  # fast shutdown
            priority=10,
        ),
        Service(
            name="kafka",
            title="Apache Kafka (KRaft)",
            command=kafka_java_command(settings, "kafka.Kafka", str(kafka_dir(settings) / "server.properties")),
            ports=[
                Port(settings.kafka.port, f"{ENV_PREFIX}KAFKA__PORT", "Kafka broker"),
                Port(settings.kafka.controller_port, f"{ENV_PREFIX}KAFKA__CONTROLLER_PORT", "Kafka controller"),
            ],
            stop_wait_seconds=60,
            priority=20,
        ),
        Service(
            name="ferretdb",
            title="FerretDB (MongoDB wire protocol)",
            command=[str(settings.state_dir / "bin" / "ferretdb"), f"--listen-addr={settings.mongo.host}:{settings.mongo.port}"],
            env={"FERRETDB_POSTGRESQL_URL": f"postgres://{pg.user}:{secret}@{pg.host}:{pg.port}/{pg.ferretdb_database}"},
            ports=[Port(settings.mongo.port, f"{ENV_PREFIX}MONGO__PORT", "MongoDB wire protocol")],
            priority=30,
        ),
        Service(
            name="maildev",
            title="MailDev (SMTP + web inbox)",
            command=[
                "node",
                str(PROJECT_ROOT / "tools" / "maildev" / "node_modules" / "maildev" / "bin" / "maildev"),
                "--ip", settings.smtp.host,
                "--smtp", str(settings.smtp.port),
                "--web-ip", settings.smtp.host,
                "--web", str(settings.smtp.inbox_port),
                "--mail-directory", str(settings.state_dir / "maildev"),
            ],
            ports=[
                Port(settings.smtp.port, f"{ENV_PREFIX}SMTP__PORT", "SMTP"),
                Port(settings.smtp.inbox_port, f"{ENV_PREFIX}SMTP__INBOX_PORT", "mail inbox"),
            ],
            http_health=f"{settings.smtp.inbox_url}/healthz",
            priority=30,
        ),
        Service(
            name="airflow-api-server",
            title="Airflow API server and UI",
            command=[airflow, "api-server"],
            env=airflow_env,
            ports=[Port(settings.airflow.port, f"{ENV_PREFIX}AIRFLOW__PORT", "Airflow UI/API")],
            http_health=f"{settings.airflow.url}/api/v2/monitor/health",
            priority=50,
        ),
        # --skip-serve-logs: Airflow's own log server (`airflow serve-logs`) binds every interface;
        # the airflow-log-server service below serves the same app on the platform's host only.
        Service(
            name="airflow-scheduler",
            title="Airflow scheduler",
            command=[airflow, "scheduler", "--skip-serve-logs"],
            env=airflow_env,
            ports=[
                Port(settings.airflow.scheduler_health_port, f"{ENV_PREFIX}AIRFLOW__SCHEDULER_HEALTH_PORT", "scheduler health")
            ],
            http_health=f"http://{settings.airflow.host}:{settings.airflow.scheduler_health_port}/health",
            priority=50,
        ),
        Service(
            name="airflow-dag-processor", title="Airflow DAG processor", command=[airflow, "dag-processor"], env=airflow_env, priority=50
        ),
        Service(
            name="airflow-triggerer",
            title="Airflow triggerer",
            command=[airflow, "triggerer", "--skip-serve-logs"],
            env=airflow_env,
            priority=50,
        ),
        # the UI reads a running or deferred task's log from here (finished ones from the log
        # folder): Airflow's log server app (JWT-checked, the API's secret key) on loopback, serving
        # task and trigger logs on one port (airflow_env sets both ports to it)
        Service(
            name="airflow-log-server",
            title="Airflow task log server",
            command=[
                str(Path(sys.executable).with_name("uvicorn")), "--factory",
                "airflow.utils.serve_logs.log_server:create_app",
                "--host", settings.airflow.host, "--port", str(settings.airflow.log_server_port),
                "--no-access-log",
            ],
            env=airflow_env,
            ports=[Port(settings.airflow.log_server_port, f"{ENV_PREFIX}AIRFLOW__LOG_SERVER_PORT", "Airflow log server")],
            priority=50,
        ),
        # event time moves while traffic pauses: sessions and carts close on time
        Service(
            name="streaming-clock",
            title="Clock ticks on the event topics",
            command=[str(Path(sys.executable).with_name("globalmart")), "clock"],
            priority=40,
        ),
        # the read API and the dashboards read the marts and the warehouse; their key and
        # password come from the secrets file, which each reads through the settings
        Service(
            name="api",
            title="Read API (FastAPI)",
            command=[
                str(Path(sys.executable).with_name("uvicorn")), "--factory", "api.app:create_app",
                "--app-dir", str(PROJECT_ROOT),
                "--host", settings.api.host, "--port", str(settings.api.port),
                "--workers", str(settings.api.workers),
                "--no-access-log",  # request counts and latencies are at /metrics
            ],
            ports=[Port(settings.api.port, f"{ENV_PREFIX}API__PORT", "read API")],
            http_health=f"{settings.api.url}/api/v1/health",
            priority=60,
        ),
        Service(
            name="dashboards",
            title="Dashboards (Streamlit)",
            command=[
                str(Path(sys.executable).with_name("streamlit")), "run", str(PROJECT_ROOT / "dashboards" / "app.py"),
                "--server.address", settings.dashboards.host, "--server.port", str(settings.dashboards.port),
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
                # a service, not a development server: no file watcher, no deploy button
                "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
            ],
            ports=[Port(settings.dashboards.port, f"{ENV_PREFIX}DASHBOARDS__PORT", "dashboards")],
            http_health=f"{settings.dashboards.url}/_stcore/health",
            priority=60,
        ),
    ]


def service_by_name(settings: Settings, name: str) -> Service:
    for service in services(settings):
        if service.name == name:
            return service
    raise KeyError(f"unknown service {name!r}")
