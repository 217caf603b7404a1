"""Bring the local platform up, down, and report its status.

``up`` is idempotent: it prepares what is missing (secrets, PostgreSQL cluster, Kafka storage,
roles and databases, topics, Airflow metadata), starts under supervisord only what is not
already running, in dependency order, and waits until each service answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg2
from psycopg2 import sql

from globalmart import db
from globalmart.kafka_admin import ensure_topics
from globalmart.platform import supervisor as sv
from globalmart.platform.airflow_env import airflow_environment, write_passwords_file
from globalmart.platform.secrets import ensure_secrets
from globalmart.platform.services import (
    Service,
    kafka_dir,
    kafka_java_command,
    postgres_bin_dir,
    postgres_dirs,
    postgres_os_user,
    services,
)
from globalmart.settings import Settings, load_settings

# start order: each stage is started together, then waited for before the next
STAGES = [
    ["postgres"],
    ["kafka", "ferretdb", "maildev"],
    ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-log-server"],
    ["streaming-clock"],  # ticks on the topics created after the Kafka stage
    ["api", "dashboards"],  # read the marts, migrated after the PostgreSQL stage
]
READY_TIMEOUT_SECONDS = 180


class PlatformError(RuntimeError):
    """A problem the user can act on; the message says what to do."""


def say(message: str) -> None:
    print(f"[platform] {message}", flush=True)


# --- checks -------------------------------------------------------------------------------


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(to_start: list[Service], host: str = "127.0.0.1") -> None:
    """Refuse to start a service whose port another process holds, naming the setting to change."""
    taken = [
        f"  port {port.number} ({port.what}, for {service.title}) is in use by another process: "
        f"stop that process or set {port.setting} to a free port"
        for service in to_start
        for port in service.ports
        if not port_is_free(host, port.number)
    ]
    if taken:
        raise PlatformError("cannot start the platform:\n" + "\n".join(taken))


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# --- one-time preparation -----------------------------------------------------------------


def _as_postgres_user() -> dict:
    user = postgres_os_user()
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def prepare_postgres(settings: Settings) -> None:
    data, run = postgres_dirs(settings)
    base = data.parent
    base.parent.mkdir(parents=True, exist_ok=True)
    if postgres_os_user() and subprocess.run(["test", "-x", str(base.parent)], **_as_postgres_user()).returncode:
        raise PlatformError(
            f"PostgreSQL runs as OS user {postgres_os_user()!r}, which cannot reach {base.parent}: "
            "set GLOBALMART_STATE_DIR to a directory every user can traverse"
        )
    for path in (base, run):
        path.mkdir(parents=True, exist_ok=True)
        if user := postgres_os_user():
            shutil.chown(path, user, user)
        path.chmod(0o700)
    if (data / "PG_VERSION").exists():
        return
    say("initializing PostgreSQL cluster")
    subprocess.run(
        [
            str(postgres_bin_dir() / "initdb"),
            "-D", str(data),
            "-U", settings.postgres.superuser,
            "--auth-local=trust",  # the socket directory is private to the server's OS user
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=base,
        **_as_postgres_user(),
    )


def _superuser_connection(settings: Settings):
    """Superuser session over the server's private socket (trust auth, no password)."""
    _, run = postgres_dirs(settings)
    conn = psycopg2.connect(host=str(run), port=settings.postgres.port, user=settings.postgres.superuser, dbname="postgres")
    conn.autocommit = True
    return conn


def bootstrap_databases(settings: Settings) -> None:
    """Application role (password kept in sync with the secrets file) and its databases."""
    pg = settings.postgres
    conn = _superuser_connection(settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(pg.user)))
            cur.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD %s").format(sql.Identifier(pg.user)),
                (pg.password.get_secret_value(),),
            )
    finally:
        conn.close()
    for database in (pg.database, pg.airflow_database, pg.ferretdb_database):
        create_database(settings, database)


def create_database(settings: Settings, database: str) -> None:
    """A database owned by the application role, unless it exists."""
    conn = _superuser_connection(settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(settings.postgres.user)))
    finally:
        conn.close()


def drop_database(settings: Settings, database: str) -> None:
    conn = _superuser_connection(settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    finally:
        conn.close()


def kafka_server_properties(settings: Settings) -> str:
    k = settings.kafka
    return "\n".join(
        [
            "# generated by `globalmart platform up` from settings; do not edit",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{k.host}:{k.controller_port}",
            f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
            f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={kafka_dir(settings) / 'data'}",
            "num.partitions=3",
            # topics are created by the platform with settings' partitions and retention
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]
    )


def prepare_kafka(settings: Settings) -> None:
    directory = kafka_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    properties = directory / "server.properties"
    properties.write_text(kafka_server_properties(settings))
    if (directory / "data" / "meta.properties").exists():
        return
    say("formatting Kafka KRaft storage")
    cluster_id = subprocess.run(
        kafka_java_command(settings, "kafka.tools.StorageTool", "random-uuid", heap="256m"),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip().splitlines()[-1]
    subprocess.run(
        kafka_java_command(
            settings, "kafka.tools.StorageTool", "format", "--config", str(properties), "--cluster-id", cluster_id,
            heap="256m",
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def migrate_airflow(settings: Settings) -> None:
    say("migrating the Airflow metadata database")
    env = {**os.environ, **airflow_environment(settings)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise PlatformError(f"`airflow db migrate` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


# --- readiness ----------------------------------------------------------------------------


def _log_tail(settings: Settings, name: str, lines: int = 25) -> str:
    path = settings.logs_dir / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def readiness_check(service: Service, host: str) -> Callable[[], bool]:
    if service.http_health:
        return lambda: _http_ok(service.http_health)
    if service.ports:
        return lambda: all(port_answers(host, p.number) for p in service.ports)
    return lambda: True  # no port: RUNNING in supervisord is the signal


def wait_ready(settings: Settings, supervisor: sv.Supervisor, stage: list[Service]) -> None:
    pending = {s.name: readiness_check(s, settings.kafka.host) for s in stage}
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while pending:
        for name, ready in list(pending.items()):
            state = supervisor.state(name)
            if state in ("FATAL", "EXITED", "BACKOFF", "STOPPED"):
                raise PlatformError(
                    f"{name} failed to start ({state}); last lines of {settings.logs_dir / (name + '.log')}:\n"
                    + _log_tail(settings, name)
                )
            if state == "RUNNING" and ready():
                pending.pop(name)
        if time.monotonic() > deadline:
            raise PlatformError(f"timed out waiting for {', '.join(pending)}; see logs in {settings.logs_dir}")
        time.sleep(0.5)


# --- commands -----------------------------------------------------------------------------


def up(settings: Settings | None = None) -> Settings:
    started_at = time.monotonic()
    settings = ensure_secrets(settings or load_settings())
    missing_tools = [
        str(path)
        for path in (settings.state_dir / "bin" / "ferretdb", settings.jars_dir / "kafka")
        if not path.exists()
    ]
    if missing_tools:
        raise PlatformError(f"not set up ({', '.join(missing_tools)} missing): run `make setup` first")
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    all_services = {s.name: s for s in services(settings)}
    sv.supervisor_dir(settings).mkdir(parents=True, exist_ok=True)
    sv.config_path(settings).write_text(sv.render_config(settings, list(all_services.values())))

    supervisor = sv.Supervisor(settings)
    if supervisor.is_running():
        supervisor.reload_config()
        running = {n for n, info in supervisor.processes().items() if info["statename"] in ("RUNNING", "STARTING")}
    else:
        running = set()
    check_ports([s for n, s in all_services.items() if n not in running])

    prepare_postgres(settings)
    prepare_kafka(settings)
    write_passwords_file(settings)
    if not supervisor.is_running():
        say("starting supervisord")
        supervisor.start_daemon()

    for stage_names in STAGES:
        stage = [all_services[n] for n in stage_names]
        if "airflow-api-server" in stage_names and "airflow-api-server" not in running:
            migrate_airflow(settings)
        for service in stage:
            if service.name not in running:
                say(f"starting {service.title}")
                supervisor.start(service.name)
        wait_ready(settings, supervisor, stage)
        if stage_names == ["postgres"]:
            bootstrap_databases(settings)
            say(f"globalmart database at migration {db.upgrade(settings)}")
        if "kafka" in stage_names:
            created = ensure_topics(settings)
            if created:
                say(f"created Kafka topics: {', '.join(created)}")

    say(f"platform is up ({time.monotonic() - started_at:.0f} s)")
    print(summary(settings))
    return settings


def summary(settings: Settings) -> str:
    af, pg = settings.airflow, settings.postgres
    password = af.admin_password.get_secret_value() if af.admin_password else "?"
    dashboard_password = settings.dashboards.password.get_secret_value() if settings.dashboards.password else "?"
    api_key = settings.api.key.get_secret_value() if settings.api.key else "?"
    rows = [
        ("Airflow UI", f"{af.url}   login: {af.admin_user} / {password}"),
        ("Dashboards", f"{settings.dashboards.url}   login: {settings.dashboards.user} / {dashboard_password}"),
        ("Read API", f"{settings.api.url}/docs   key (X-API-Key header): {api_key}"),
        ("Mail inbox", settings.smtp.inbox_url),
        ("SMTP", f"{settings.smtp.host}:{settings.smtp.port}"),
        ("Kafka", settings.kafka.bootstrap_servers),
        ("PostgreSQL", f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}  (password in {settings.secrets_file})"),
        ("MongoDB API", f"{settings.mongo.uri}{settings.mongo.database}  (FerretDB)"),
        ("Logs", str(settings.logs_dir)),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def down(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    supervisor = sv.Supervisor(settings)
    if not supervisor.is_running():
        say("platform is not running")
        return
    say("stopping all services")
    supervisor.shutdown()
    deadline = time.monotonic() + 120
    while sv.socket_path(settings).exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    say("platform stopped")


def status(settings: Settings | None = None) -> bool:
    """Print each service's state; True when every service is running and answering."""
    settings = settings or load_settings()
    supervisor = sv.Supervisor(settings)
    if not supervisor.is_running():
        say("platform is not running (start it with `make run`)")
        return False
    processes = supervisor.processes()
    healthy = True
    print(f"  {'service':<24}{'state':<10}{'pid':>8}  {'uptime':>9}  address")
    for service in services(settings):
        info = processes.get(service.name, {})
        state = info.get("statename", "MISSING")
        ok = state == "RUNNING" and readiness_check(service, settings.kafka.host)()
        healthy &= ok
        uptime = info["now"] - info["start"] if state == "RUNNING" else 0
        address = service.http_health or ", ".join(f"{settings.kafka.host}:{p.number}" for p in service.ports) or "-"
        mark = state if ok or state != "RUNNING" else "STARTING"
        print(f"  {service.name:<24}{mark:<10}{info.get('pid') or '-':>8}  {_fmt_uptime(uptime):>9}  {address}")
    return healthy


def _fmt_uptime(seconds: int) -> str:
    if not seconds:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
